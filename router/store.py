"""The router's state: pipelines with their versions, runs and steps.

SQLAlchemy Core over any database it speaks to: an SQLite file by default
(``$KPIPE_HOME/kpipe.db``), PostgreSQL shared by router replicas in a
cluster. A run is changed only inside :meth:`Store.run_tx`, which holds the
run's row lock (``SELECT ... FOR UPDATE`` on PostgreSQL, a process lock on
SQLite), so two replicas that finish a fan-in's last two parents at once
cannot both start the joining step. Opening a store first upgrades its
database to the newest schema (:mod:`router.migrations`; the tables are in
:mod:`router.schema`).

Example:
    >>> store = Store("sqlite://")
    >>> store.list_pipelines()
    []
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from eventing.contract import Event
from eventing.http import from_http, to_http
from router import migrations
from router.errors import PipelineNotFound, RunNotFound
from router.schema import outbox, pipelines, runs, steps, versions
from router.spec import PipelineSpec
from router.state import RunState, RunStatus, StepState

# What an SQL INTEGER holds (SQLite and PostgreSQL BIGINT): a version, limit
# or offset outside it matches nothing, instead of failing in the driver.
_SQL_INTEGERS = range(-(2**63), 2**63)

# The first key of the PostgreSQL advisory locks that serialise the changes to
# one pipeline (the second is the hash of its name): "kpip" in ASCII.
_PIPELINE_LOCKS = int.from_bytes(b"kpip", "big")

# The statements of a run's transaction, built once: the router runs them for
# every event, and building (and hashing) a statement per call cost more CPU
# than executing it. Parameters are bound by name at each execution.
_SELECT_RUN = sa.select(runs).where(runs.c.id == sa.bindparam("run_id"))
_LOCK_RUN = _SELECT_RUN.with_for_update()
_SELECT_STEPS = sa.select(steps).where(steps.c.run_id == sa.bindparam("run_id"))
_UPDATE_RUN = (
    runs.update()
    .where(runs.c.id == sa.bindparam("_id"))
    .values({c.name: sa.bindparam(c.name) for c in runs.c if c.name != "id"})
)
_UPDATE_STEP = (
    steps.update()
    .where(steps.c.run_id == sa.bindparam("_run_id"), steps.c.step_id == sa.bindparam("_step_id"))
    .values({c.name: sa.bindparam(c.name) for c in steps.c if c.name not in ("run_id", "step_id")})
)


_REPLY_OF = (
    sa.select(outbox.c.headers, outbox.c.body)
    .where(outbox.c.cause == sa.bindparam("cause"), outbox.c.reply.is_(True))
    .order_by(outbox.c.seq.desc())
    .limit(1)
)


def _tune_sqlite(connection: Any, _record: object) -> None:
    """WAL and normal sync: a commit no longer waits for a full fsync of the file.

    A crash can lose the last commits, never corrupt the database; the
    sweeper re-drives whatever a lost commit had requested.
    """
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


@dataclass
class Emission:
    """The events one change of a run emits, committed in the change's transaction.

    ``reply_to`` is the id of the event the change answers: the first of the
    events is that answer (the caller returns it to the broker, which stores
    it), and is kept so that a redelivery of ``reply_to`` gets it again. The
    others are for the relay (router/outbox.py) to post.
    """

    reply_to: str | None = None
    events: list[Event] = field(default_factory=list)


@dataclass(frozen=True)
class Outgoing:
    """One event of the outbox that the relay is to post."""

    seq: int
    event: Event


@dataclass
class Claim:
    """Outbox rows taken by one relay: it notes which the broker took or refused."""

    rows: list[Outgoing]
    sent: list[int] = field(default_factory=list)
    refused: dict[int, str] = field(default_factory=dict)


@dataclass(frozen=True)
class StoredPipeline:
    """One version of a registered pipeline."""

    spec: PipelineSpec
    version: int
    created_at: float
    active_version: int | None = None

    @property
    def name(self) -> str:
        return self.spec.name


@dataclass(frozen=True)
class RunQuery:
    """Filters for listing runs; ``None`` means any."""

    pipeline: str | None = None
    version: int | None = None
    status: RunStatus | None = None
    source: tuple[str, str] | None = None
    since: float | None = None
    until: float | None = None
    # The ``code`` of a failed run's error (``undeliverable``: a dead letter).
    error_code: str | None = None
    role: str | None = None  # live, shadow or canary
    limit: int = 50
    offset: int = 0


class Store:
    """Pipelines, versions, runs and steps in one SQL database."""

    def __init__(self, url: str, clock: Callable[[], float] = time.time) -> None:
        # The clock of a run's progress (``updated_at``); tests pass a simulated one.
        self.clock = clock
        # Called after a commit that gave the relay events to post (router/outbox.py).
        self.on_emit: Callable[[], None] | None = None
        is_sqlite = url.startswith("sqlite")
        self._engine = sa.create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30} if is_sqlite else {},
            pool_pre_ping=not is_sqlite,
        )
        # SQLite has no row locks; one writer at a time inside this process
        # gives the same guarantee (a file database is never shared by replicas).
        self._lock: threading.RLock | None = threading.RLock() if is_sqlite else None
        if is_sqlite:
            sa.event.listen(self._engine, "connect", _tune_sqlite)
        try:
            migrations.upgrade(self._engine)
        except BaseException:
            self._engine.dispose()
            raise

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def ping(self) -> None:
        """Raise if the database cannot answer a trivial query."""
        with self._engine.connect() as conn:
            conn.execute(sa.select(1))

    @property
    def engine(self) -> sa.Engine:
        return self._engine

    @contextmanager
    def _tx(self) -> Iterator[sa.Connection]:
        with self._lock or nullcontext(), self._engine.begin() as conn:
            yield conn

    def transaction(self) -> AbstractContextManager[sa.Connection]:
        """A transaction with this store's write guarantees, for tables kept beside it."""
        return self._tx()

    # -- pipelines ---------------------------------------------------------

    @contextmanager
    def _pipeline_tx(self, name: str) -> Iterator[sa.Connection]:
        """A transaction that is the only one changing pipeline ``name`` until it ends.

        A change reads the pipeline (its latest version, whether its row exists)
        and then writes what follows from it; two replicas doing that at once
        would both insert the same version or row. On PostgreSQL the second
        waits on a transaction-level advisory lock and then reads what the
        first committed; on SQLite the store's process lock does the same.
        """
        with self._tx() as conn:
            if conn.dialect.name == "postgresql":
                key = sa.func.hashtext(sa.literal(name, sa.Text))
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_PIPELINE_LOCKS, key)))
            yield conn

    def put_pipeline(self, spec: PipelineSpec) -> int:
        """Store ``spec`` as the pipeline's next version and make it active."""
        now = time.time()
        with self._pipeline_tx(spec.name) as conn:
            latest = conn.execute(
                sa.select(sa.func.max(versions.c.version)).where(versions.c.name == spec.name)
            ).scalar()
            version = int(latest or 0) + 1
            conn.execute(
                versions.insert().values(
                    name=spec.name,
                    version=version,
                    spec=spec.model_dump(mode="json"),
                    created_at=now,
                )
            )
            updated = conn.execute(
                pipelines.update()
                .where(pipelines.c.name == spec.name)
                .values(active_version=version, pinned=False, updated_at=now)
            )
            if updated.rowcount == 0:
                conn.execute(
                    pipelines.insert().values(
                        name=spec.name, active_version=version, pinned=False, updated_at=now
                    )
                )
        return version

    def _version_row(self, conn: sa.Connection, name: str, version: int) -> StoredPipeline:
        if version not in _SQL_INTEGERS:
            raise PipelineNotFound(name, version)
        row = (
            conn.execute(
                sa.select(versions).where(versions.c.name == name, versions.c.version == version)
            )
            .mappings()
            .first()
        )
        if row is None:
            raise PipelineNotFound(name, version)
        return StoredPipeline(
            PipelineSpec.model_validate(row["spec"]), row["version"], row["created_at"]
        )

    def get_pipeline(self, name: str, version: int | None = None) -> StoredPipeline:
        """The active version of a registered pipeline, or any stored version of it."""
        with self._engine.connect() as conn:
            active = conn.execute(
                sa.select(pipelines.c.active_version).where(pipelines.c.name == name)
            ).scalar()
            if version is None:
                if active is None:
                    raise PipelineNotFound(name)
                version = int(active)
            stored = self._version_row(conn, name, version)
        return StoredPipeline(stored.spec, stored.version, stored.created_at, active)

    def list_pipelines(self) -> list[StoredPipeline]:
        """The active version of every registered pipeline, by name."""
        query = (
            sa.select(versions, pipelines.c.active_version)
            .join(
                pipelines,
                sa.and_(
                    pipelines.c.name == versions.c.name,
                    pipelines.c.active_version == versions.c.version,
                ),
            )
            .order_by(versions.c.name)
        )
        with self._engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [
            StoredPipeline(
                PipelineSpec.model_validate(r["spec"]),
                r["version"],
                r["created_at"],
                r["active_version"],
            )
            for r in rows
        ]

    def list_versions(self, name: str) -> list[StoredPipeline]:
        """Every stored version of a pipeline, oldest first."""
        with self._engine.connect() as conn:
            rows = (
                conn.execute(
                    sa.select(versions).where(versions.c.name == name).order_by(versions.c.version)
                )
                .mappings()
                .all()
            )
            active = conn.execute(
                sa.select(pipelines.c.active_version).where(pipelines.c.name == name)
            ).scalar()
        if not rows:
            raise PipelineNotFound(name)
        return [
            StoredPipeline(
                PipelineSpec.model_validate(r["spec"]), r["version"], r["created_at"], active
            )
            for r in rows
        ]

    def set_active(self, name: str, version: int, pinned: bool = True) -> None:
        """Make a stored version the active one (pin or roll back)."""
        with self._pipeline_tx(name) as conn:
            self._version_row(conn, name, version)
            updated = conn.execute(
                pipelines.update()
                .where(pipelines.c.name == name)
                .values(active_version=version, pinned=pinned, updated_at=time.time())
            )
            if updated.rowcount == 0:
                conn.execute(
                    pipelines.insert().values(
                        name=name, active_version=version, pinned=pinned, updated_at=time.time()
                    )
                )

    def delete_pipeline(self, name: str) -> None:
        """Unregister a pipeline. Its versions stay, so its runs still show their spec."""
        with self._pipeline_tx(name) as conn:
            deleted = conn.execute(pipelines.delete().where(pipelines.c.name == name))
        if deleted.rowcount == 0:
            raise PipelineNotFound(name)

    # -- runs --------------------------------------------------------------

    def create_run(self, run: RunState, emission: Emission | None = None) -> bool:
        """Insert a new run with its steps and what it emits; False if a run with that id exists."""
        try:
            with self._tx() as conn:
                conn.execute(runs.insert().values(**run.to_row()))
                conn.execute(
                    steps.insert(), [{"run_id": run.id, **s.to_row()} for s in run.steps.values()]
                )
                relayed = self._write_outbox(conn, run.id, emission)
        except IntegrityError:
            return False
        self._emitted(relayed)
        return True

    # -- the outbox --------------------------------------------------------

    def _write_outbox(self, conn: sa.Connection, run_id: str, emission: Emission | None) -> bool:
        """Add ``emission``'s events to the outbox; whether any is for the relay."""
        if emission is None or not emission.events:
            return False
        now = self.clock()
        rows = []
        for index, event in enumerate(emission.events):
            headers, body = to_http(event)
            reply = emission.reply_to is not None and index == 0
            rows.append(
                {
                    "run_id": run_id,
                    "cause": emission.reply_to,
                    "reply": reply,
                    "headers": headers,
                    "body": body,
                    "created_at": now,
                }
            )
        conn.execute(outbox.insert(), rows)
        return any(not row["reply"] for row in rows)

    def _emitted(self, relayed: bool) -> None:
        if relayed and self.on_emit is not None:
            self.on_emit()

    def reply_of(self, cause: str) -> Event | None:
        """The answer a change gave to event ``cause``, while the outbox keeps it."""
        with self._engine.connect() as conn:
            row = conn.execute(_REPLY_OF, {"cause": cause}).first()
        return None if row is None else from_http(row.headers, row.body)

    @contextmanager
    def claim_outbox(self, limit: int) -> Iterator[Claim]:
        """The oldest events the relay is to post, and the end of their posting.

        On PostgreSQL the rows stay locked (``FOR UPDATE SKIP LOCKED``) until
        the block ends, so two replicas' relays never post one row; on SQLite
        one process owns the file and its relay is the only one. When the
        block ends, the rows in ``claim.sent`` are deleted and those in
        ``claim.refused`` are kept, marked with the broker's answer, and never
        posted again.
        """
        query = (
            sa.select(outbox.c.seq, outbox.c.headers, outbox.c.body)
            .where(outbox.c.reply.is_(False), outbox.c.refused.is_(None))
            .order_by(outbox.c.seq)
            .limit(limit)
        )
        if self._lock is None:  # PostgreSQL
            with self._engine.begin() as conn:
                found = conn.execute(query.with_for_update(skip_locked=True)).all()
                claim = Claim([Outgoing(r.seq, from_http(r.headers, r.body)) for r in found])
                yield claim
                self._settle(conn, claim)
            return
        with self._tx() as conn:
            found = conn.execute(query).all()
        claim = Claim([Outgoing(r.seq, from_http(r.headers, r.body)) for r in found])
        yield claim
        if claim.sent or claim.refused:
            with self._tx() as conn:
                self._settle(conn, claim)

    @staticmethod
    def _settle(conn: sa.Connection, claim: Claim) -> None:
        if claim.sent:
            conn.execute(outbox.delete().where(outbox.c.seq.in_(claim.sent)))
        for seq, why in claim.refused.items():
            conn.execute(outbox.update().where(outbox.c.seq == seq).values(refused=why[:2000]))

    def prune_replies(self, older_than: float) -> int:
        """Forget the answers given before ``older_than``: their causes are not redelivered."""
        with self._tx() as conn:
            deleted = conn.execute(
                outbox.delete().where(outbox.c.reply.is_(True), outbox.c.created_at < older_than)
            )
        return int(deleted.rowcount or 0)

    def count_outbox(self) -> dict[str, int]:
        """How many events wait for the relay, were refused, and are kept as answers."""
        kind = sa.case(
            (outbox.c.reply.is_(True), "replies"),
            (outbox.c.refused.is_not(None), "refused"),
            else_="waiting",
        )
        with self._engine.connect() as conn:
            rows = conn.execute(sa.select(kind, sa.func.count()).group_by(kind)).all()
        found = {"waiting": 0, "refused": 0, "replies": 0}
        found.update({str(name): int(count) for name, count in rows})
        return found

    def _load(self, conn: sa.Connection, run_id: str, lock: bool) -> RunState:
        params = {"run_id": run_id}
        row = conn.execute(_LOCK_RUN if lock else _SELECT_RUN, params).mappings().first()
        if row is None:
            raise RunNotFound(run_id)
        step_rows = conn.execute(_SELECT_STEPS, params).mappings().all()
        return RunState.from_row(row, [StepState.from_row(s) for s in step_rows])

    def get_run(self, run_id: str) -> RunState:
        with self._engine.connect() as conn:
            return self._load(conn, run_id, lock=False)

    @contextmanager
    def run_tx(self, run_id: str, emission: Emission | None = None) -> Iterator[RunState]:
        """Lock a run, yield it for changes, and write back what changed.

        The events in ``emission`` when the block ends (it may add them in
        the block) are committed with the change, in the outbox.

        ``updated_at`` is the run's last progress: it moves only when the run
        or one of its steps changes status, so a re-drive (which changes only
        when a request was sent) never holds a stuck run off its deadline.
        Nothing is written when nothing changed.
        """
        with self._tx() as conn:
            run = self._load(conn, run_id, lock=True)
            # The rows as loaded: comparing rows finds the changed steps at a
            # fraction of the cost of a deep copy of the run.
            before = {step_id: step.to_row() for step_id, step in run.steps.items()}
            before_run = run.to_row()
            yield run
            moved = run.status.value != before_run["status"] or any(
                step.status.value != before[step_id]["status"]
                for step_id, step in run.steps.items()
            )
            if moved:
                run.updated_at = self.clock()
            row = run.to_row()
            if row != before_run:
                conn.execute(_UPDATE_RUN, {"_id": row.pop("id"), **row})
            changed = []
            for step_id, step in run.steps.items():
                step_row = step.to_row()
                if step_row != before.get(step_id):
                    del step_row["step_id"]
                    changed.append({"_run_id": run.id, "_step_id": step_id, **step_row})
            if changed:
                conn.execute(_UPDATE_STEP, changed)
            relayed = self._write_outbox(conn, run_id, emission)
        self._emitted(relayed)

    def list_runs(self, query: RunQuery) -> tuple[list[RunState], int]:
        """Runs matching ``query``, newest first, and how many match in all."""
        if query.version is not None and query.version not in _SQL_INTEGERS:
            return [], 0
        conditions: list[Any] = []
        if query.pipeline is not None:
            conditions.append(runs.c.pipeline == query.pipeline)
        if query.version is not None:
            conditions.append(runs.c.version == query.version)
        if query.status is not None:
            conditions.append(runs.c.status == query.status.value)
        if query.source is not None:
            conditions.append(runs.c.source_bucket == query.source[0])
            conditions.append(runs.c.source_key == query.source[1])
        if query.since is not None:
            conditions.append(runs.c.created_at >= query.since)
        if query.until is not None:
            conditions.append(runs.c.created_at < query.until)
        if query.role is not None:
            conditions.append(runs.c.role == query.role)
        if query.error_code is not None:
            conditions.append(runs.c.error["code"].as_string() == query.error_code)
        where = sa.and_(sa.true(), *conditions)
        with self._engine.connect() as conn:
            total = conn.execute(sa.select(sa.func.count()).select_from(runs).where(where)).scalar()
            ids = (
                conn.execute(
                    sa.select(runs.c.id)
                    .where(where)
                    .order_by(runs.c.created_at.desc(), runs.c.id)
                    .limit(min(query.limit, _SQL_INTEGERS.stop - 1))
                    .offset(min(query.offset, _SQL_INTEGERS.stop - 1))
                )
                .scalars()
                .all()
            )
            found = [self._load(conn, run_id, lock=False) for run_id in ids]
        return found, int(total or 0)

    def count_runs_by_status(self) -> dict[RunStatus, int]:
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(runs.c.status, sa.func.count()).group_by(runs.c.status)
            ).all()
        return {RunStatus(status): int(count) for status, count in rows}

    def count_requested_steps(self) -> int:
        with self._engine.connect() as conn:
            found = conn.execute(
                sa.select(sa.func.count()).select_from(steps).where(steps.c.status == "requested")
            ).scalar()
        return int(found or 0)

    def run_sources(self, pipeline: str, bucket: str, created_since: float) -> set[tuple[str, str]]:
        """The (key, etag) of every object of ``bucket`` that has a run of ``pipeline``.

        Only runs created since ``created_since`` (any version of the pipeline).
        """
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(runs.c.source_key, runs.c.etag).where(
                    runs.c.pipeline == pipeline,
                    runs.c.source_bucket == bucket,
                    runs.c.created_at >= created_since,
                )
            )
            return {(key, etag) for key, etag in rows}

    def unfinished_runs(self, older_than: float) -> list[str]:
        """Ids of runs still pending or running whose last progress was before ``older_than``."""
        with self._engine.connect() as conn:
            return list(
                conn.execute(
                    sa.select(runs.c.id).where(
                        runs.c.status.in_([RunStatus.PENDING.value, RunStatus.RUNNING.value]),
                        runs.c.updated_at < older_than,
                    )
                ).scalars()
            )
