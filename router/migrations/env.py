"""Alembic's environment for the router's schema: runs on the connection it is given.

:func:`router.migrations.upgrade` (and ``python -m router.migrations``) pass
the connection in ``config.attributes["connection"]``, already inside the
transaction that holds the upgrade lock; there is no ``alembic.ini`` and no
offline (``--sql``) mode.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context
from alembic.util import CommandError

from router.schema import metadata


def run() -> None:
    connection = context.config.attributes.get("connection")
    if not isinstance(connection, sa.Connection) or context.is_offline_mode():
        raise CommandError(
            "the router's migrations run on a connection: use router.migrations.upgrade "
            "or `python -m router.migrations`"
        )
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite cannot ALTER most things in place: autogenerate writes
        # batch operations (copy and move), which work on PostgreSQL too.
        render_as_batch=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run()
