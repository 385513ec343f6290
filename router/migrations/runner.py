"""Upgrade a router database to the newest schema, one replica at a time.

Every router runs :func:`upgrade` when it opens its database
(:class:`router.store.Store`), so an SQLite file under ``KPIPE_HOME`` or a
PostgreSQL shared by replicas is upgraded in place on start. The whole
upgrade is one transaction under a lock: on PostgreSQL a transaction-level
advisory lock, so replicas that start at once wait for the first and then
find the schema current; on SQLite ``BEGIN IMMEDIATE``, the file's write
lock. A failed revision leaves the database as it was (both databases have
transactional DDL).

Example:
    >>> engine = sa.create_engine("sqlite://")
    >>> upgrade(engine)
    >>> current_revision(engine) == head_revision()
    True
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

# The key of the PostgreSQL advisory lock that serialises upgrades
# (pg_advisory_xact_lock's single 64-bit key space): "kpipedb" in ASCII.
UPGRADE_LOCK_KEY = int.from_bytes(b"kpipedb", "big")

_HERE = Path(__file__).resolve().parent

# Alembic's `op` and `context` are module globals, set for the command that
# runs: two commands in one process at once would run on each other's
# connection. So one at a time per process, and the database lock across them.
_ONE_COMMAND = threading.Lock()


def alembic_config() -> Config:
    """Alembic's configuration for the router's revisions, with no ini file."""
    config = Config()
    # ConfigParser interpolates "%": a path holding one must escape it.
    config.set_main_option("script_location", str(_HERE).replace("%", "%%"))
    config.set_main_option("path_separator", "os")  # revisions are in versions/ beside env.py
    # Revision files are NNNN_<slug>.py (see python -m router.migrations revision).
    config.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    return config


def head_revision() -> str:
    """The newest revision this code knows."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:  # pragma: no cover - the package always ships 0001
        raise LookupError("router/migrations/versions holds no revision")
    return head


def current_revision(engine: sa.Engine) -> str | None:
    """The revision a database is at; None for an empty one, or one made before migrations."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def _lock(conn: sa.Connection) -> None:
    """Take the database's upgrade lock for the rest of ``conn``'s transaction."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(UPGRADE_LOCK_KEY)))
    elif conn.dialect.name == "sqlite":
        # pysqlite opens no transaction for DDL by itself; this one also
        # takes the file's write lock, so two processes upgrade one by one.
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def _run(engine: sa.Engine, step: Callable[[Config], None]) -> None:
    """Run an Alembic command on one connection, in one transaction, under the upgrade lock."""
    config = alembic_config()
    with _ONE_COMMAND, engine.connect() as conn:
        _lock(conn)
        config.attributes["connection"] = conn
        step(config)
        conn.commit()


def upgrade(engine: sa.Engine, revision: str = "head") -> None:
    """Bring the database behind ``engine`` to ``revision`` (the newest by default).

    A database made by kpipe 0.1.0 (its tables, no ``alembic_version``) is
    adopted at revision 0001, not made again. Safe to call from every replica
    at once.

    Raises:
        alembic.util.CommandError: the database is at a revision this code does
            not know (a newer release upgraded it).
    """
    _run(engine, lambda config: command.upgrade(config, revision))


def downgrade(engine: sa.Engine, revision: str) -> None:
    """Take the database back to ``revision`` (``"base"``: no tables at all).

    Raises:
        alembic.util.CommandError: ``revision`` is unknown.
    """
    _run(engine, lambda config: command.downgrade(config, revision))
