"""kpipe's benchmark: ``python -m bench`` (``make bench``) measures kpipe against its goals.

Each figure lives in :mod:`bench.figures` and returns a :class:`bench.model.Figure`;
:mod:`bench.report` writes ``bench/results/latest.json`` and ``latest.md``.
The machines it runs on are noisy, so every comparison is measured side by
side in one run and reported as a ratio; the Celery peer kpipe's chains are
compared with is :mod:`bench.peer`.
"""

from __future__ import annotations

from bench.model import Figure, Goal

__all__ = ["Figure", "Goal"]
