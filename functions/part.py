"""What a part is: a named, typed image operation the step SDK can run.

A part works on decoded pictures in memory and knows nothing of events, HTTP
or the object store. The step SDK (:mod:`functions.step`) fetches and decodes
the inputs, calls :attr:`Part.run`, then encodes and stores the output. That
split is what lets a fused group run several parts with no intermediate
objects.

Example:
    >>> from functions.catalog import default_catalog
    >>> default_catalog().get("resize").group
    <Group.PRE: 'pre-processing'>
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel, ConfigDict

from eventing.contract import JSON, ObjectRef, StepOutput

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from functions.inference import InferenceClient


class Group(StrEnum):
    """The three kinds of parts a pipeline combines."""

    PRE = "pre-processing"
    AI = "ai"
    POST = "post-processing"


class Params(BaseModel):
    """Base of every part's params: unknown fields are an error."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class Picture:
    """A decoded image.

    ``pixels`` is an ``H x W x 3`` (RGB) or ``H x W x 4`` (RGBA) uint8 array,
    already upright (EXIF orientation applied). ``format`` is the format it
    will be written in unless a part changes it: ``jpeg``, ``png`` or
    ``webp``.
    """

    pixels: npt.NDArray[np.uint8]
    format: str
    ref: ObjectRef | None = None
    quality: int | None = None

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])


class Detector(Protocol):
    """Finds faces in a picture (used by detect_faces and blur_faces)."""

    def __call__(self, picture: Picture, /) -> list[JSON]: ...


@dataclass(frozen=True)
class StepContext:
    """What a part may use besides its input pictures.

    ``upstream`` maps each upstream step id to what it produced (its outputs
    and metadata, e.g. detections). ``inference`` opens the Triton client on
    first use, so parts that need no inference never connect.
    """

    source: ObjectRef
    upstream: Mapping[str, StepOutput] = field(default_factory=dict)
    inference: Callable[[], InferenceClient] | None = None
    step_id: str = ""
    # The W3C trace context of this step's span; parts pass it on to Triton.
    traceparent: str | None = None

    def inference_client(self) -> InferenceClient:
        if self.inference is None:
            raise RuntimeError("this step was started without an inference client")
        return self.inference()


@dataclass(frozen=True)
class PartResult:
    """What a part returns: a new picture, or None to pass its input through."""

    picture: Picture | None
    metadata: JSON = field(default_factory=dict)


RunFn = Callable[[list[Picture], Any, StepContext], PartResult]


@dataclass(frozen=True)
class Part:
    """One image-processing part of the catalogue."""

    name: str
    group: Group
    summary: str
    params: type[Params]
    run: RunFn
    output: str = "image"  # "image": makes a new picture; "detections": metadata only
    labels: tuple[str, ...] = ()
    uses_inference: bool = False
    # Whether it reads what upstream steps produced (``StepContext.upstream``);
    # the router sends upstream metadata only to the parts that read it, so a
    # request does not grow with the steps before it.
    reads_upstream: bool = False

    def parse_params(self, raw: Mapping[str, Any]) -> Params:
        """Validate raw params against this part's schema (BadParams if they break it)."""
        from pydantic import ValidationError

        from functions.errors import BadParams

        try:
            return self.params.model_validate(dict(raw))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or None
            raise BadParams(self.name, f"{where}: {first['msg']}", field=where) from None

    def schema(self) -> JSON:
        """The JSON Schema of this part's params."""
        return self.params.model_json_schema()
