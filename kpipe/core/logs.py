"""Structured JSON logs with the run and step ids on every line.

Code that works for a run wraps the work in :func:`log_context`; every log
record made inside it, in any module, carries ``run`` and ``step``.

Example:
    >>> configure_logging("resize")  # doctest: +SKIP
    >>> with log_context(run="r1", step="small"):  # doctest: +SKIP
    ...     logging.getLogger("x").info("resized")
    {"time": "...", "level": "INFO", "component": "resize", "run": "r1", "step": "small", ...}
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from pythonjsonlogger.json import JsonFormatter

_RUN: ContextVar[str | None] = ContextVar("kpipe_run", default=None)
_STEP: ContextVar[str | None] = ContextVar("kpipe_step", default=None)


@contextmanager
def log_context(run: str | None, step: str | None = None) -> Iterator[None]:
    """Tag every log record made inside the block with this run and step."""
    run_token = _RUN.set(run)
    step_token = _STEP.set(step)
    try:
        yield
    finally:
        _RUN.reset(run_token)
        _STEP.reset(step_token)


class RunContextFilter(logging.Filter):
    """Adds the component name and the current run and step ids to each record."""

    def __init__(self, component: str) -> None:
        super().__init__()
        self.component = component

    def filter(self, record: logging.LogRecord) -> bool:
        record.component = self.component
        record.run = _RUN.get()
        record.step = _STEP.get()
        return True


def json_handler(component: str) -> logging.Handler:
    """A stderr handler that writes one JSON object per record."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RunContextFilter(component))
    handler.setFormatter(
        JsonFormatter(
            "{asctime}{levelname}{component}{run}{step}{name}{message}",
            style="{",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        )
    )
    return handler


def configure_logging(component: str, level: str = "INFO") -> None:
    """Send this process's logs to stderr as JSON lines (call once, from an entry point)."""
    root = logging.getLogger()
    root.handlers = [json_handler(component)]
    root.setLevel(level.upper())
    # Request lines from HTTP clients say nothing a run's own lines do not.
    logging.getLogger("httpx").setLevel(logging.WARNING)
