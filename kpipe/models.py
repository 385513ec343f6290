"""The weights kpipe ships: copied out of installed wheels, never downloaded.

The only model whose weights an install carries is the PP-OCRv4 text detector
inside the ``rapidocr-onnxruntime`` wheel (Apache-2.0). ``install-weights``
copies it into the Triton model repository as ``text_detection/1/model.onnx``
(a gitignored file); ``make`` runs it after installing the dependencies.

Example:
    $ python -m kpipe.models install-weights
    installed triton/models/text_detection/1/model.onnx
"""

from __future__ import annotations

import filecmp
import logging
import os
import shutil
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

import click

from kpipe.errors import KpipeError

log = logging.getLogger(__name__)

DEFAULT_REPOSITORY = Path("triton/models")


class WeightsMissing(KpipeError, FileNotFoundError):
    """The package that carries a model's weights is not installed."""

    def __init__(self, model: str, package: str) -> None:
        super().__init__(
            f"weights of {model} come from the {package} package, which is not installed "
            "(pip install -e '.[local]')"
        )
        self.model = model
        self.package = package


@dataclass(frozen=True)
class PackagedWeights:
    """A model file that an installed Python package carries."""

    model: str
    package: str
    path_in_package: str

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


PACKAGED_WEIGHTS = (
    PackagedWeights(
        model="text_detection",
        package="rapidocr_onnxruntime",
        path_in_package="models/ch_PP-OCRv4_det_infer.onnx",
    ),
)


def install_weights(repository: Path = DEFAULT_REPOSITORY) -> list[Path]:
    """Copy every packaged model file into ``repository`` where missing or different.

    Args:
        repository: the Triton model repository (holds ``<model>/config.pbtxt``).

    Returns:
        The files written (empty when all were already up to date).

    Raises:
        WeightsMissing: a package that carries weights is not installed.
    """
    written: list[Path] = []
    for weights in PACKAGED_WEIGHTS:
        source, target = weights.source(), weights.target(repository)
        if target.is_file() and filecmp.cmp(source, target, shallow=False):
            log.debug("%s is up to date", target)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        # Copy to a temporary name then rename, so a Triton polling the
        # repository never sees a half-written model file.
        partial = target.with_suffix(".onnx.partial")
        shutil.copyfile(source, partial)
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
    default=DEFAULT_REPOSITORY,
    envvar="KPIPE_TRITON_MODELS",
    show_default=True,
    help="Triton model repository to install into.",
)
def install_weights_command(model_repository: Path) -> None:
    """Copy the weights that installed packages carry into the model repository."""
    try:
        written = install_weights(model_repository)
    except WeightsMissing as exc:
        raise click.ClickException(str(exc)) from None
    for path in written:
        click.echo(f"installed {path}")
    if not written:
        click.echo("model weights are up to date")


if __name__ == "__main__":
    cli()
