"""In-process apps of each receiver: the router, the broker, the adapter and the parts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import flask
import functions_framework
from fastapi.testclient import TestClient

import functions
from eventing.sink import Backoff, HttpBrokerClient
from functions.catalog import Catalog
from kpipe.stack import PARTS
from router.api import create_app
from router.health import HealthChecker
from router.services import RouterServices
from router.settings import RouterSettings
from router.store import Store

MAIN = str(Path(functions.__file__).parent / "main.py")
TARGETS = PARTS


def router_services(
    home: Path, catalog: Catalog, sink_url: str | None = None, **settings: Any
) -> RouterServices:
    """Router services on an SQLite file in ``home``; events go to ``sink_url`` if given."""
    config = RouterSettings(KPIPE_HOME=home, **settings)
    store = Store(config.database())
    sink = (
        HttpBrokerClient(sink_url, timeout_s=5, retries=1, backoff=Backoff(0.01))
        if sink_url
        else None
    )
    return RouterServices(
        settings=config,
        store=store,
        catalog=catalog,
        health=HealthChecker({"database": store.ping}),
        sink=sink,
    )


def router_client(home: Path, catalog: Catalog, **settings: Any) -> TestClient:
    return TestClient(create_app(router_services(home, catalog, **settings)))


def part_app(target: str) -> flask.Flask:
    """A part as functions-framework serves it."""
    app: flask.Flask = functions_framework.create_app(target=target, source=MAIN)
    return app
