"""Fixtures for router tests: a real catalogue, a file-backed store, sample specs."""

from __future__ import annotations

import os
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from functions.catalog import Catalog, default_catalog
from kpipe.local.s3.server import S3Server
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
# PostgreSQL: KPIPE_TEST_POSTGRES_URL's if set, else the one this machine runs
# on 127.0.0.1:5432, else a server started from the pgserver wheel.
POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def _answers(url: sa.URL) -> bool:
    engine = sa.create_engine(url, connect_args={"connect_timeout": 5})
    try:
        with engine.connect() as conn:
            conn.execute(sa.select(1))
    except sa.exc.OperationalError:
        return False
    finally:
        engine.dispose()
    return True


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[sa.URL]:
    """A running PostgreSQL that trusts its ``postgres`` user, as a URL to one of its databases."""
    configured = os.environ.get("KPIPE_TEST_POSTGRES_URL")
    url = sa.make_url(configured or POSTGRES_URL)
    if _answers(url):
        yield url
        return
    if configured:
        pytest.fail(f"KPIPE_TEST_POSTGRES_URL={configured} does not answer", pytrace=False)
    with warnings.catch_warnings():
        # platformdirs warns, on import, that XDG_RUNTIME_DIR is unset (as under CI).
        warnings.simplefilter("ignore")
        from pgserver.postgres_server import get_server

    # It listens on a Unix socket in its data directory only; as root it runs
    # the server as a user of its own, `pgserver`.
    server = get_server(tmp_path_factory.mktemp("postgres") / "data", cleanup_mode="delete")
    try:
        yield sa.make_url(server.get_uri()).set(drivername="postgresql+psycopg")
    finally:
        server.cleanup()


@pytest.fixture(scope="session")
def postgres_database(postgres_server: sa.URL) -> Iterator[str]:
    """A database of this test session's own, dropped at its end.

    Test sessions that run at once (several engineers, one server) never see
    each other's tables. Where the server refuses CREATE DATABASE, the
    configured database itself is used.
    """
    name = f"kpipe_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(postgres_server, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except sa.exc.ProgrammingError:
        admin.dispose()
        yield postgres_server.render_as_string(hide_password=False)
        return
    try:
        yield postgres_server.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def _fresh_postgres(url: str) -> str:
    """Drop every table of the test database (kpipe's and Alembic's), so a test starts empty."""
    engine = sa.create_engine(url)
    try:
        found = sa.MetaData()
        found.reflect(engine)
        found.drop_all(engine)
    finally:
        engine.dispose()
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'kpipe.db'}"
    return _fresh_postgres(request.getfixturevalue("postgres_database"))


@pytest.fixture
def postgres_url(postgres_database: str) -> str:
    """A real PostgreSQL with no tables, for tests of shared-database behaviour."""
    return _fresh_postgres(postgres_database)


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
