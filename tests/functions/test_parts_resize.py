"""resize: aspect ratio kept, no upscaling unless asked, good resampling."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from eventing.contract import ObjectRef
from functions.catalog import default_catalog
from functions.errors import BadParams
from functions.part import Picture, StepContext
from functions.parts.resize import ResizeParams, target_size

CONTEXT = StepContext(source=ObjectRef("uploads", "cat.jpg"))


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        pytest.param({"width": 200}, (200, 133), id="width"),
        pytest.param({"height": 150}, (226, 150), id="height"),
        pytest.param({"max_side": 100}, (100, 67), id="max-side"),
        pytest.param({"width": 300, "height": 50}, (75, 50), id="tightest-wins"),
        pytest.param({"width": 900}, (451, 300), id="no-upscale"),
        pytest.param({"width": 902, "upscale": True}, (902, 600), id="upscale"),
        pytest.param({"max_side": 1}, (1, 1), id="never-zero"),
    ],
)
def test_target_size(params: dict[str, object], expected: tuple[int, int]) -> None:
    assert target_size(451, 300, ResizeParams.model_validate(params)) == expected


@pytest.mark.parametrize(
    "params",
    [{}, {"upscale": True}, {"width": 0}, {"max_side": 16385}, {"width": "wide"}],
    ids=["nothing", "only-upscale", "zero", "too-big", "not-int"],
)
def test_bad_params_are_refused(params: dict[str, object]) -> None:
    with pytest.raises(BadParams):
        default_catalog().get("resize").parse_params(params)


@pytest.mark.parametrize("channels", [3, 4])
def test_run_resizes_the_picture(cat: npt.NDArray[np.uint8], channels: int) -> None:
    pixels = cat if channels == 3 else np.dstack([cat, np.full(cat.shape[:2], 255, np.uint8)])
    part = default_catalog().get("resize")
    result = part.run([Picture(pixels, "jpeg")], part.parse_params({"max_side": 226}), CONTEXT)
    assert result.picture is not None
    assert result.picture.pixels.shape == (150, 226, channels)
    assert result.picture.format == "jpeg"
    assert result.metadata == {"image": {"width": 226, "height": 150}, "resized": True}
    # Good resampling keeps the picture's tones.
    assert abs(result.picture.pixels.mean() - pixels.mean()) < 2


def test_run_without_change_keeps_the_pixels(cat: npt.NDArray[np.uint8]) -> None:
    part = default_catalog().get("resize")
    result = part.run([Picture(cat, "png")], part.parse_params({"width": 2000}), CONTEXT)
    assert result.picture is not None
    assert np.array_equal(result.picture.pixels, cat)
    assert result.metadata["resized"] is False
