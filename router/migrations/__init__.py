"""The router's schema migrations (Alembic), run by the router itself on start.

:class:`router.store.Store` calls :func:`upgrade` when it opens a database;
no ``alembic.ini`` is needed. The tables as the code uses them are
``router/schema.py``; each change to them is a revision in ``versions/``,
named ``NNNN_<slug>.py``.

To change the schema (say, add a column):

1. Change the table in ``router/schema.py``.
2. ``python -m router.migrations revision -m "runs: add priority"`` writes
   ``versions/0003_runs_add_priority.py``, generated from the difference
   between the head revision and ``router/schema.py``. Read it, keep it to
   operations both SQLite and PostgreSQL run (it uses batch operations, which
   do), give new NOT NULL columns a ``server_default``, and fill new columns
   of old rows in the revision if they need more than a default.
3. Extend ``tests/router/test_migrations.py``: a database at the previous
   revision, with rows, upgrades and reads back; the test that compares the
   head schema with ``router/schema.py`` must pass.

Never edit a revision that was released: databases out there are at it.
"""

from __future__ import annotations

from router.migrations.runner import (
    UPGRADE_LOCK_KEY,
    alembic_config,
    current_revision,
    downgrade,
    head_revision,
    upgrade,
)

__all__ = [
    "UPGRADE_LOCK_KEY",
    "alembic_config",
    "current_revision",
    "downgrade",
    "head_revision",
    "upgrade",
]
