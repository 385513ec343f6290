"""Stored ``when:`` conditions: from kpipe's old grammar to CEL.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02

kpipe 0.1.0 wrote conditions in a small grammar of its own (``and``, ``or``,
``not``, ``contains``); the router now reads CEL. Every stored pipeline
version keeps its meaning: each condition is rewritten into the CEL that
holds exactly when the old one did (:func:`router.migrations.legacy_conditions.rewrite_condition`).
A condition that cannot be rewritten stops the upgrade, naming the pipeline,
the version and the field, rather than storing one the router would refuse.
No schema changes. There is no way back: CEL is not the old grammar, so the
downgrade leaves the conditions as they are.
"""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy as sa
from alembic import op

from router.conditions import BadCondition
from router.migrations.legacy_conditions import rewrite_condition

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

log = logging.getLogger(__name__)

_versions = sa.table(
    "kpipe_pipeline_versions",
    sa.column("name", sa.String),
    sa.column("version", sa.Integer),
    sa.column("spec", sa.JSON),
)


def _rewritten(spec: dict[str, Any], where: str) -> dict[str, Any] | None:
    """``spec`` with its conditions in CEL, or None when it has none."""
    steps = spec.get("steps")
    if not isinstance(steps, list) or not any(isinstance(s, dict) and s.get("when") for s in steps):
        return None
    new_steps = []
    for i, step in enumerate(steps):
        texts = step.get("when") if isinstance(step, dict) else None
        if not texts:
            new_steps.append(step)
            continue
        texts = [texts] if isinstance(texts, str) else list(texts)
        rewritten = []
        for j, text in enumerate(texts):
            try:
                rewritten.append(rewrite_condition(text))
            except BadCondition as exc:
                raise RuntimeError(
                    f"{where}: steps[{i}].when[{j}] {text!r} cannot be rewritten in CEL: "
                    f"{exc.message}; fix it in a copy of the database, or delete that version"
                ) from None
        new_steps.append({**step, "when": rewritten})
    return {**spec, "steps": new_steps}


def upgrade() -> None:
    bind = op.get_bind()
    rows = bind.execute(sa.select(_versions.c.name, _versions.c.version, _versions.c.spec)).all()
    changed = 0
    for name, version, spec in rows:
        new = _rewritten(spec, f"pipeline {name} version {version}") if spec else None
        if new is None:
            continue
        bind.execute(
            _versions.update()
            .where(_versions.c.name == name, _versions.c.version == version)
            .values(spec=new)
        )
        changed += 1
    if changed:
        log.info("rewrote the conditions of %d pipeline version(s) in CEL", changed)


def downgrade() -> None:
    """Nothing to undo in the schema; the conditions stay in CEL (see the docstring)."""
