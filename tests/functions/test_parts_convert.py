"""convert: the format and quality the picture is written in."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from eventing.contract import ObjectRef
from functions.catalog import default_catalog
from functions.errors import BadParams
from functions.images import encode
from functions.part import Picture, StepContext

CONTEXT = StepContext(source=ObjectRef("uploads", "cat.jpg"))


@pytest.mark.parametrize(
    ("fmt", "extension"), [("png", ".png"), ("webp", ".webp"), ("jpeg", ".jpg")]
)
def test_convert_sets_the_output_format(
    cat: npt.NDArray[np.uint8], fmt: str, extension: str
) -> None:
    part = default_catalog().get("convert")
    params = part.parse_params({"format": fmt, "quality": 70})
    result = part.run([Picture(cat, "jpeg")], params, CONTEXT)
    assert result.picture is not None
    assert (result.picture.format, result.picture.quality) == (fmt, 70)
    assert np.array_equal(result.picture.pixels, cat)
    assert result.metadata == {"format": fmt, "quality": 70}
    assert encode(result.picture)[2] == extension


@pytest.mark.parametrize(
    "params",
    [{}, {"format": "gif"}, {"format": "png", "quality": 0}, {"format": "png", "quality": 101}],
    ids=["missing", "gif", "quality-low", "quality-high"],
)
def test_bad_params_are_refused(params: dict[str, object]) -> None:
    with pytest.raises(BadParams):
        default_catalog().get("convert").parse_params(params)
