"""What every figure gets: the mode, a scratch folder, the running stack, the photos, the peer."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bench._stack import BenchStack

# The machine's Redis: the Celery peer's broker and result backend.
PEER_REDIS = "redis://127.0.0.1:6379/0"


@dataclass(frozen=True)
class Context:
    """Shared inputs of the figures.

    Attributes:
        quick: a short smoke run (fewer photos, runs and parts).
        work: a scratch folder that is removed after the run.
        stack: the running local stack (``kpipe up``).
        photos: (name, 1080p JPEG) pairs.
        tiny: the 8x8 PNG the no-op chains run on.
        peer_redis: the Redis URL of the Celery peer (broker and result backend).
    """

    quick: bool
    work: Path
    stack: BenchStack
    photos: list[tuple[str, bytes]]
    tiny: bytes
    peer_redis: str = PEER_REDIS
