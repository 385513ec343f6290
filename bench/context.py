"""What every figure gets: the mode, a scratch folder, the running stack and the photos."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bench._stack import BenchStack


@dataclass(frozen=True)
class Context:
    """Shared inputs of the figures.

    Attributes:
        quick: a short smoke run (fewer photos, runs and parts).
        work: a scratch folder that is removed after the run.
        stack: the running local stack (``kpipe up``).
        photos: (name, 1080p JPEG) pairs.
        tiny: the 8x8 PNG the no-op chains run on.
    """

    quick: bool
    work: Path
    stack: BenchStack
    photos: list[tuple[str, bytes]]
    tiny: bytes
