"""The router's app over real services, as the API tests build it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from eventing.sink import HttpBrokerClient
from functions.catalog import Catalog
from functions.store import MinioStore
from router.api import create_app
from router.health import HealthChecker
from router.services import RouterServices
from router.settings import RouterSettings
from router.store import Store


def make_client(
    tmp_path: Path,
    catalog: Catalog,
    sink: HttpBrokerClient | None = None,
    objects: MinioStore | None = None,
    **settings: Any,
) -> TestClient:
    """A TestClient of the router on an SQLite file in ``tmp_path``."""
    config = RouterSettings(KPIPE_HOME=tmp_path, **settings)
    store = Store(config.database())
    services = RouterServices(
        settings=config,
        store=store,
        catalog=catalog,
        health=HealthChecker({"database": store.ping}),
        sink=sink,
        objects=objects,
    )
    return TestClient(create_app(services))
