"""The web page: the single-page app at ``/`` and its files under ``/static``.

Example:
    >>> app = create_app(services)  # doctest: +SKIP
    >>> mount_web(app)  # doctest: +SKIP
"""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from starlette.responses import Response
from starlette.staticfiles import PathLike, StaticFiles
from starlette.types import Scope

STATIC_DIR = Path(__file__).with_name("static")

# The page is a handful of small ES modules; revalidating them (a cheap 304)
# keeps an upgraded router from serving a stale mix of old and new modules.
_NO_CACHE = {"Cache-Control": "no-cache"}


class _RevalidatedFiles(StaticFiles):
    """StaticFiles whose answers ask the browser to revalidate on every load."""

    def file_response(
        self,
        full_path: PathLike,
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers.update(_NO_CACHE)
        return response


def mount_web(app: FastAPI) -> None:
    """Serve the web page: ``GET /`` answers index.html, ``/static/*`` its modules and styles."""
    app.mount("/static", _RevalidatedFiles(directory=STATIC_DIR), name="static")

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers=_NO_CACHE)
