"""What the API's routes depend on: the services, the token check, bounded bodies.

No route lets FastAPI read its request body: FastAPI would read it whole, and
before any dependency ran, so before the token check. Routes take the body
through :data:`Body`, :func:`json_body` or :func:`read_upload` instead, which
read it with :mod:`kpipe.core.http_body` (refused past the limit, not buffered
beyond it) once :func:`require_token` has passed.
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any, BinaryIO, TypeVar

from fastapi import Depends, Request
from fastapi.openapi.models import HTTPBearer as HTTPBearerModel
from fastapi.security.base import SecurityBase
from pydantic import BaseModel, ValidationError
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from kpipe.core import http_body
from kpipe.core.auth import check_bearer
from router.errors import BadQuery, RequestInvalid
from router.services import RouterServices

ModelT = TypeVar("ModelT", bound=BaseModel)


def get_services(request: Request) -> RouterServices:
    services: RouterServices = request.app.state.services
    return services


Services = Annotated[RouterServices, Depends(get_services)]


class _AuthorizationHeader(SecurityBase):
    """The ``Authorization`` header as sent; declares the bearer scheme in the OpenAPI document.

    (FastAPI's ``HTTPBearer`` would parse the header its own way; the one
    check is :func:`kpipe.core.auth.check_bearer`.)
    """

    def __init__(self) -> None:
        self.model = HTTPBearerModel(description="KPIPE_API_TOKEN, when the router sets one.")
        self.scheme_name = "bearer"

    async def __call__(self, request: Request) -> str | None:
        return request.headers.get("authorization")


Authorization = Annotated[str | None, Depends(_AuthorizationHeader())]


def require_token(services: Services, authorization: Authorization) -> None:
    """With ``KPIPE_API_TOKEN`` set, a call needs ``Authorization: Bearer <token>``.

    Raises:
        BearerRefused: the token is missing, malformed or wrong (401 or 400).
    """
    token = services.settings.api_token
    if token is not None:
        check_bearer(authorization, token)


GUARDED = [Depends(require_token)]


async def read_body(request: Request, services: Services) -> bytes:
    """The request body, refused (413) past ``KPIPE_MAX_BODY_BYTES`` without reading further."""
    return await http_body.read_body(request, services.settings.max_body_bytes)


Body = Annotated[bytes, Depends(read_body)]


def json_body(model: type[ModelT]) -> Callable[[bytes], Awaitable[ModelT]]:
    """A dependency: the bounded JSON body as ``model``; RequestInvalid (422) naming the field."""

    async def parse(body: Body) -> ModelT:
        try:
            return model.model_validate_json(body)
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            field = ".".join(str(p) for p in first["loc"]) or None
            raise RequestInvalid(first["msg"], field) from None

    return parse


def documented_body(model: type[BaseModel]) -> dict[str, Any]:
    """The OpenAPI ``requestBody`` of a route that takes ``model`` through :func:`json_body`."""
    schema = {"schema": model.model_json_schema()}
    return {"requestBody": {"required": True, "content": {"application/json": schema}}}


UPLOAD_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "string", "format": "binary"}},
                    "required": ["file"],
                }
            }
        },
    }
}


@dataclass(frozen=True)
class Upload:
    """The file of an upload form: spooled by the form parser (to disk past 1 MiB)."""

    filename: str
    content_type: str
    file: BinaryIO
    size: int


@asynccontextmanager
async def read_upload(request: Request, limit: int) -> AsyncIterator[Upload]:
    """The ``file`` field of a multipart/form-data body of at most ``limit`` bytes.

    The file is streamed to a spooled temporary file, never read whole into
    memory; it is open while the context lasts.

    Raises:
        BodyTooLarge: the body is over ``limit`` (reading stops there).
        BadQuery: the body is not a form with a file in ``file``.
    """
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise BadQuery("file", "an upload is a multipart/form-data body with a `file` field")
    stream = http_body.bounded_stream(request, limit)
    parser = MultiPartParser(request.headers, stream, max_files=1, max_fields=10)
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise BadQuery("file", exc.message) from None
    try:
        file = form.get("file")
        if not isinstance(file, UploadFile):
            raise BadQuery("file", "the form has no file in its `file` field")
        content_type = file.content_type or "application/octet-stream"
        size = file.file.seek(0, io.SEEK_END)
        file.file.seek(0)
        yield Upload(file.filename or "", content_type, file.file, size)
    finally:
        await form.close()
