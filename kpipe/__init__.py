"""kpipe: serverless image-processing pipelines on Knative."""

from __future__ import annotations

from kpipe.errors import KpipeError

__all__ = ["KpipeError"]
__version__ = "0.1.0"
