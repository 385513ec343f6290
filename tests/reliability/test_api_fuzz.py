"""The REST API fuzzed from its own OpenAPI document (schemathesis): no 5xx, ever.

In process, against the ASGI app over a real SQLite file, with the real
catalogue; the app's lifespan runs once for the whole module. ``/events`` and
``/dead-letters`` take CloudEvents, not the JSON their schema can describe:
their parsers are fuzzed in test_fuzz.py and their refusals in test_malformed.py.
"""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.python.asgi import ASGIClient

from functions.catalog import default_catalog
from router.api import create_app
from tests.reliability._apps import router_services

pytestmark = pytest.mark.slow

_HOME = Path(tempfile.mkdtemp(prefix="kpipe-schemathesis-"))
SERVICES = router_services(_HOME, default_catalog())
APP = create_app(SERVICES)


@asynccontextmanager
async def _no_lifespan(_: object) -> AsyncIterator[None]:
    # schemathesis may end and restart an app's lifespan between operations;
    # the services are owned by the fixture below instead (started once).
    yield


APP.router.lifespan_context = _no_lifespan
schema = schemathesis.openapi.from_dict(APP.openapi()).exclude(
    path_regex=r"^/(events|dead-letters)$"
)


@pytest.fixture(scope="module")
def api() -> Iterator[ASGIClient]:
    SERVICES.start()
    try:
        with ASGIClient(APP) as client:
            yield client
    finally:
        SERVICES.close()


@schema.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_operation_answers_5xx(api: ASGIClient, case: schemathesis.Case) -> None:
    response = case.call(session=api, base_url="http://testserver")
    assert response.status_code < 500, (case.method, case.formatted_path, response.text[:500])
