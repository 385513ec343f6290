"""What the API's routes depend on: the services, the token check, a bounded body."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Header, Request

from router.responses import TooLarge, Unauthorized
from router.services import RouterServices


def get_services(request: Request) -> RouterServices:
    services: RouterServices = request.app.state.services
    return services


Services = Annotated[RouterServices, Depends(get_services)]


def require_token(
    services: Services, authorization: Annotated[str | None, Header()] = None
) -> None:
    """Mutations need ``Authorization: Bearer <KPIPE_API_TOKEN>`` when a token is set."""
    token = services.settings.api_token
    if not token:
        return
    given = (authorization or "").removeprefix("Bearer ").strip()
    if not hmac.compare_digest(given.encode(), token.encode()):
        raise Unauthorized()


async def read_body(request: Request, services: Services) -> bytes:
    """The request body, refused (413) past ``KPIPE_MAX_BODY_BYTES`` before and after reading."""
    limit = services.settings.max_body_bytes
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise TooLarge(limit)
    body = await request.body()
    if len(body) > limit:
        raise TooLarge(limit)
    return body


Body = Annotated[bytes, Depends(read_body)]
MUTATING = [Depends(require_token)]
