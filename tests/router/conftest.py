"""Fixtures for router tests: a real catalogue, a file-backed store, sample specs."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from eventing.s3server import S3Server
from functions.catalog import Catalog, default_catalog
from router.store import Store

# Real HTTP subscribers (a broker stand-in that records what the router sends).
from tests.eventing.conftest import serve, subscriber  # noqa: F401


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    """A real S3 server with the buckets `uploads` and `processed`, and no webhook."""
    server = S3Server(port=0, buckets=("uploads", "processed"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def prefix() -> str:
    """A key prefix of the test's own, so tests sharing the S3 server do not meet."""
    return f"t{uuid.uuid4().hex[:8]}/"


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    return default_catalog()


# The router's state tests run against the embedded default and a real
# PostgreSQL (the one this machine runs; .ci/run starts it when it is not up).
POSTGRES_URL = os.environ.get(
    "KPIPE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def _fresh_postgres() -> str:
    import sqlalchemy as sa

    from router.store import metadata

    engine = sa.create_engine(POSTGRES_URL)
    try:
        metadata.drop_all(engine)
    except sa.exc.OperationalError as exc:
        pytest.fail(f"PostgreSQL is not reachable at {POSTGRES_URL}: {exc}")
    finally:
        engine.dispose()
    return POSTGRES_URL


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'kpipe.db'}"
    return _fresh_postgres()


@pytest.fixture
def postgres_url() -> str:
    """A real PostgreSQL with kpipe's tables dropped, for tests of shared-database behaviour."""
    return _fresh_postgres()


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    with Store(database_url) as s:
        yield s


def privacy_blur() -> dict[str, Any]:
    """The spec from the README: resize -> detect faces -> blur the faces."""
    return {
        "name": "privacy-blur",
        "trigger": {"bucket": "uploads", "prefix": "", "suffix": ".jpg"},
        "output": {"bucket": "processed"},
        "steps": [
            {"id": "small", "function": "resize", "params": {"max_side": 1024}},
            {"id": "faces", "function": "detect_faces", "after": ["small"]},
            {"id": "blur", "function": "blur", "after": ["faces"], "params": {"labels": ["face"]}},
        ],
    }


@pytest.fixture
def spec_data() -> dict[str, Any]:
    return privacy_blur()
