"""The router's schema migrations, on the embedded SQLite file and a real PostgreSQL.

A database made by the previous release upgrades in place with every row
intact; a fresh one and an upgraded one both match ``router/schema.py``;
replicas that start at once upgrade once.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from click.testing import CliRunner

from eventing.contract import ObjectCreated
from router import migrations
from router.backfill_store import BackfillStatus, BackfillStore
from router.conditions import parse_condition
from router.errors import PipelineNotFound
from router.migrations.__main__ import main as migrations_cli
from router.migrations.__main__ import next_revision_id
from router.migrations.legacy_conditions import rewrite_condition
from router.schema import metadata
from router.settings import RouterSettings
from router.state import RunStatus
from router.store import RunQuery, Store
from tests.router import release_0_1 as release


@pytest.fixture
def engine(database_url: str) -> Iterator[sa.Engine]:
    made = sa.create_engine(database_url)
    yield made
    made.dispose()


def _schema_differences(engine: sa.Engine) -> list[Any]:
    """What Alembic's autogenerate would write to bring the database to router/schema.py."""
    with engine.connect() as conn:
        return list(compare_metadata(MigrationContext.configure(conn), metadata))


def _revisions() -> list[tuple[str, str]]:
    """Every revision and the one it revises (``base`` for the first), oldest first."""
    script = ScriptDirectory.from_config(migrations.alembic_config())
    found = [(rev.revision, str(rev.down_revision or "base")) for rev in script.walk_revisions()]
    return found[::-1]


# -- a database made by kpipe 0.1.0 ------------------------------------------------


def test_a_database_of_0_1_is_adopted_and_every_row_reads_back(
    database_url: str, engine: sa.Engine
) -> None:
    release.make_database(database_url)
    assert migrations.current_revision(engine) is None

    with Store(database_url) as store:
        assert migrations.current_revision(engine) == migrations.head_revision()

        rows = release.ROWS
        # pipelines and every stored version, with its spec as stored
        assert [(p.name, p.version, p.active_version) for p in store.list_pipelines()] == [
            ("privacy-blur", 1, 1),
            ("thumbs", 1, 1),
        ]
        for row in rows[release.versions]:
            stored = store.get_pipeline(row["name"], row["version"])
            # Revision 0002 rewrote old-grammar conditions in CEL; nothing else changed.
            expected = {
                **row["spec"],
                "steps": [
                    {**step, "when": [rewrite_condition(t) for t in step["when"]]}
                    for step in row["spec"]["steps"]
                ],
            }
            assert stored.spec.model_dump(mode="json") == expected
            assert stored.created_at == row["created_at"]
        assert [v.version for v in store.list_versions("privacy-blur")] == [1, 2]
        with pytest.raises(PipelineNotFound):
            store.get_pipeline("retired")

        # every run and step, column by column (later revisions may add columns)
        for row in rows[release.runs]:
            run = store.get_run(row["id"])
            assert {k: run.to_row()[k] for k in row} == row
            steps = [s for s in rows[release.steps] if s["run_id"] == row["id"]]
            assert sorted(run.steps) == sorted(s["step_id"] for s in steps)
            for step in steps:
                read = {"run_id": run.id, **run.steps[step["step_id"]].to_row()}
                assert {k: read[k] for k in step} == step
        found, total = store.list_runs(RunQuery())
        assert total == len(rows[release.runs])
        assert [r.id for r in found] == [
            release.BACKFILLED_RUN,
            release.CAT_RUN,
            release.ASTRONAUT_RUN,
            release.RETIRED_RUN,
        ]

        # the backfill, its items and its lease
        backfills = BackfillStore(store)
        backfill = backfills.get(release.BACKFILL)
        [row] = rows[release.backfills]
        assert (backfill.pipeline, backfill.version, backfill.bucket, backfill.prefix) == (
            row["pipeline"],
            row["version"],
            row["bucket"],
            row["prefix"],
        )
        assert (backfill.concurrency, backfill.status, backfill.created_at) == (
            1,
            BackfillStatus.RUNNING,
            row["created_at"],
        )
        assert (backfill.total, backfill.started, backfill.unfinished) == (3, 1, 1)
        assert backfills.pending(release.BACKFILL, 10) == [
            (item["seq"], ObjectCreated.from_data(item["object"]))
            for item in rows[release.items]
            if item["run_id"] is None
        ]
        lease = release.BACKFILL_LEASE_UNTIL
        assert not backfills.renew(release.BACKFILL, "another-replica", lease)
        assert backfills.renew(release.BACKFILL, release.BACKFILL_OWNER, lease)
        assert backfills.claim_expired("new-replica", now=lease - 1, lease_until=lease + 30) == []
        assert backfills.claim_expired("new-replica", now=lease + 1, lease_until=lease + 30) == [
            release.BACKFILL
        ]

        # and the upgraded database takes new writes where 0.1.0 left off
        assert store.put_pipeline(store.get_pipeline("privacy-blur", 2).spec) == 3
        with store.run_tx(release.BACKFILLED_RUN) as run:
            run.status = RunStatus.SUCCEEDED
        assert store.get_run(release.BACKFILLED_RUN).status is RunStatus.SUCCEEDED


@pytest.mark.parametrize(
    ("metadata", "holds"),
    [({"count": 2}, True), ({"count": 0}, False), ({"count": 0.5}, True), ({}, False)],
)
def test_a_stored_old_condition_means_the_same_in_cel(
    database_url: str, metadata: dict[str, Any], holds: bool
) -> None:
    release.make_database(database_url)
    with Store(database_url) as store:
        spec = store.get_pipeline("privacy-blur", 2).spec
    [condition] = spec.by_id["blur"].when
    assert "faces" in parse_condition(condition).steps
    assert parse_condition(condition).evaluate({"faces": metadata}) is holds


def test_a_kpipe_home_of_0_1_upgrades_in_place(tmp_path: Path) -> None:
    settings = RouterSettings(KPIPE_HOME=str(tmp_path))
    release.make_database(settings.database())
    with Store(settings.database()) as store:  # as the router opens it on start
        assert [p.name for p in store.list_pipelines()] == ["privacy-blur", "thumbs"]
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".db"] == ["kpipe.db"]
    engine = sa.create_engine(settings.database())
    try:
        assert migrations.current_revision(engine) == migrations.head_revision()
    finally:
        engine.dispose()


def test_a_database_older_than_backfills_gets_their_tables(
    database_url: str, engine: sa.Engine
) -> None:
    release.make_database(database_url, release.CORE)
    with Store(database_url) as store:
        assert store.get_run(release.ASTRONAUT_RUN).status is RunStatus.SUCCEEDED
        assert BackfillStore(store).pending("none-yet", 10) == []
    assert _schema_differences(engine) == []


# -- the schema the revisions make is the schema the code uses ----------------------


@pytest.mark.parametrize("origin", ["empty", "release-0.1"])
def test_the_head_revision_is_router_schema(
    database_url: str, engine: sa.Engine, origin: str
) -> None:
    if origin == "release-0.1":
        release.make_database(database_url)
    migrations.upgrade(engine)
    assert _schema_differences(engine) == []


def test_every_revision_downgrades_and_upgrades_again(engine: sa.Engine) -> None:
    migrations.upgrade(engine)
    for _, previous in reversed(_revisions()):  # down one revision at a time, to nothing
        migrations.downgrade(engine, previous)
    assert set(sa.inspect(engine).get_table_names()) <= {"alembic_version"}
    for revision, _ in _revisions():
        migrations.upgrade(engine, revision)
        assert migrations.current_revision(engine) == revision
    assert _schema_differences(engine) == []


def test_a_database_from_a_newer_release_is_refused(database_url: str, engine: sa.Engine) -> None:
    migrations.upgrade(engine)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(CommandError, match="9999"):
        Store(database_url)


# -- replicas that start at once ----------------------------------------------------


REPO = Path(__file__).resolve().parents[2]

# A replica that waits for a line on stdin, then opens (and so upgrades) the database.
REPLICA = """
import sys
from router.store import Store
print("ready", flush=True)
sys.stdin.readline()
Store(sys.argv[1]).close()
"""


def _start_threads(url: str, count: int) -> list[str]:
    """Open the database from ``count`` threads at once; what went wrong in each."""
    barrier = threading.Barrier(count)
    failures: list[str] = []

    def start() -> None:
        barrier.wait(timeout=30)
        try:
            Store(url).close()
        except Exception as exc:  # collected: the test asserts there is none
            failures.append(repr(exc))

    threads = [threading.Thread(target=start, daemon=True) for _ in range(count)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 120
    for thread in threads:
        thread.join(timeout=max(0.0, deadline - time.monotonic()))
    return failures + [f"{thread.name} still upgrading" for thread in threads if thread.is_alive()]


def _start_processes(url: str, count: int) -> list[str]:
    """Open the database from ``count`` processes at once; what went wrong in each."""
    replicas = [
        subprocess.Popen(
            [sys.executable, "-c", REPLICA, url],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(count)
    ]
    failures = []
    try:
        for replica in replicas:  # every one imported everything: now only the upgrade is left
            assert replica.stdout is not None
            assert replica.stdout.readline() == "ready\n"
        for replica in replicas:
            assert replica.stdin is not None
            replica.stdin.write("go\n")
            replica.stdin.flush()
        for replica in replicas:
            _, err = replica.communicate(timeout=120)
            if replica.returncode != 0:
                errors = [line for line in err.splitlines() if "Error" in line] or [err]
                failures.append(errors[-1].strip())
    finally:
        for replica in replicas:
            if replica.poll() is None:
                replica.kill()
                replica.communicate()
    return failures


# Without the locks this fails every time: the replicas are released only once
# each has imported everything, so their upgrades overlap.
@pytest.mark.parametrize("start", [_start_threads, _start_processes], ids=["threads", "processes"])
def test_replicas_starting_at_once_upgrade_once(
    postgres_url: str, start: Callable[[str, int], list[str]]
) -> None:
    assert start(postgres_url, 3) == []
    engine = sa.create_engine(postgres_url)
    try:
        with engine.connect() as conn:
            versions = conn.execute(sa.text("SELECT version_num FROM alembic_version")).all()
        assert versions == [(migrations.head_revision(),)]
    finally:
        engine.dispose()


# -- the command line for whoever writes the next revision ---------------------------


def test_the_command_line_upgrades_and_reports(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    runner = CliRunner()
    before = runner.invoke(migrations_cli, ["current", "--url", url])
    assert before.exit_code == 0
    assert before.output.strip() == f"database: none; code: {migrations.head_revision()}"
    upgraded = runner.invoke(migrations_cli, ["upgrade", "--url", url])
    assert upgraded.exit_code == 0, upgraded.output
    assert upgraded.output.strip() == f"at revision {migrations.head_revision()}"


def test_the_next_revision_is_numbered_after_the_head() -> None:
    assert next_revision_id() == f"{int(migrations.head_revision()) + 1:04d}"
