"""The router's app over real services, as the API tests build it, and a raw ASGI driver."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

from fastapi.testclient import TestClient
from starlette.types import ASGIApp, Message, Scope

from eventing.contract import Event
from eventing.objectstore import MinioStore
from eventing.signing import Role, SigningKey, TrustedKeys, part_principal, signer_of
from eventing.sink import HttpBrokerClient
from functions.catalog import Catalog
from kpipe.local.config import PARTS
from router.api import create_app
from router.health import HealthChecker
from router.services import RouterServices
from router.settings import RouterSettings
from router.store import Store

# One key per role, trusted by every router these tests build (eventing/signing.py).
KEYS = {
    principal: SigningKey.generate(f"test-{principal.replace('/', '-')}")
    for principal in (Role.ROUTER, Role.ADAPTER, *map(part_principal, PARTS))
}
TRUSTED = TrustedKeys.of({principal: [key] for principal, key in KEYS.items()})


def signed(event: Event) -> Event:
    """``event`` signed by the one principal that may send it, as its real sender signs it."""
    return KEYS[signer_of(event)].sign(event)


def make_client(
    tmp_path: Path,
    catalog: Catalog,
    sink: HttpBrokerClient | None = None,
    objects: MinioStore | None = None,
    **settings: Any,
) -> TestClient:
    """A TestClient of the router on an SQLite file in ``tmp_path``, trusting :data:`KEYS`."""
    config = RouterSettings(KPIPE_HOME=tmp_path, **settings)
    store = Store(config.database())
    services = RouterServices(
        settings=config,
        store=store,
        catalog=catalog,
        health=HealthChecker({"database": store.ping}),
        sink=sink,
        objects=objects,
        trusted=TRUSTED,
        signer=KEYS[Role.ROUTER],
    )
    return TestClient(create_app(services))


class Driven(NamedTuple):
    """What one request sent straight through ASGI got: the status, and the body chunks read."""

    status: int
    chunks_read: int


def drive(
    app: ASGIApp,
    method: str,
    path: str,
    chunks: Iterable[bytes],
    headers: Mapping[str, str] | None = None,
) -> Driven:
    """Send one request to ``app`` over ASGI, its body as ``chunks`` (chunked, no length).

    ``chunks`` may be endless: the count of chunks the app asked for shows
    whether it stopped reading.
    """
    pending = iter(chunks)
    read = 0
    status = 0

    async def receive() -> Message:
        nonlocal read
        chunk = next(pending, None)
        if chunk is None:
            return {"type": "http.request", "body": b"", "more_body": False}
        read += 1
        return {"type": "http.request", "body": chunk, "more_body": True}

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    scope: Scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }

    async def call() -> None:
        await app(scope, receive, send)

    asyncio.run(call())
    return Driven(status, read)
