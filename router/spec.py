"""The pipeline spec: a DAG of steps bound to a bucket, in YAML or JSON.

Example:
    >>> spec = parse_spec('''
    ... name: privacy-blur
    ... trigger: {bucket: uploads, suffix: .jpg}
    ... output: {bucket: processed}
    ... steps:
    ...   - {id: small, function: resize, params: {max_side: 1024}}
    ...   - {id: faces, function: detect_faces, after: [small]}
    ... ''')
    >>> [s.id for s in spec.steps]
    ['small', 'faces']
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from router.errors import Problem, SpecInvalid

# S3 bucket names (the rules MinIO and AWS share).
BUCKET_PATTERN = r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"
# Pipeline names and step ids become object-key segments and label values.
NAME_PATTERN = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
STEP_ID_PATTERN = r"^[a-z][a-z0-9_-]{0,62}$"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TriggerSpec(_Model):
    """Which uploads start a run: a bucket and an optional key prefix/suffix."""

    bucket: str = Field(pattern=BUCKET_PATTERN)
    prefix: str = Field("", max_length=1024)
    suffix: str = Field("", max_length=64)

    def matches(self, bucket: str, key: str) -> bool:
        return bucket == self.bucket and key.startswith(self.prefix) and key.endswith(self.suffix)


class OutputSpec(_Model):
    """Where final outputs go: ``<bucket>/<pipeline>/<source key>``."""

    bucket: str = Field(pattern=BUCKET_PATTERN)


class StepSpec(_Model):
    """One step: a part, its params, the steps it waits for and an optional condition."""

    id: str = Field(pattern=STEP_ID_PATTERN)
    function: str = Field(min_length=1, max_length=64)
    params: dict[str, Any] = Field(default_factory=dict)
    after: tuple[str, ...] = ()
    when: tuple[str, ...] = ()
    # Run this step in the same invocation as the one step it comes after.
    fuse: bool = False

    @field_validator("when", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        # `when: "faces.count > 0"` is shorthand for a list of one condition.
        return (value,) if isinstance(value, str) else value


class PipelineSpec(_Model):
    """A whole pipeline as a user writes it."""

    name: str = Field(pattern=NAME_PATTERN)
    description: str = Field("", max_length=2000)
    trigger: TriggerSpec
    output: OutputSpec
    steps: tuple[StepSpec, ...] = Field(min_length=1, max_length=64)
    fuse: bool = False

    @cached_property
    def by_id(self) -> dict[str, StepSpec]:
        return {s.id: s for s in self.steps}

    @cached_property
    def dependents(self) -> dict[str, tuple[str, ...]]:
        """For each step, the steps that list it in ``after``."""
        found: dict[str, list[str]] = {s.id: [] for s in self.steps}
        for step in self.steps:
            for parent in step.after:
                found.setdefault(parent, []).append(step.id)
        return {k: tuple(v) for k, v in found.items()}

    @cached_property
    def terminal_steps(self) -> tuple[str, ...]:
        """Steps nothing depends on: their outputs are the pipeline's outputs."""
        return tuple(s.id for s in self.steps if not self.dependents[s.id])

    def can_fuse(self, step: StepSpec) -> bool:
        """True if ``step`` can run in memory right after its only parent.

        That needs one parent whose only dependent it is, and no condition on
        either (the router decides conditions between invocations).
        """
        if len(step.after) != 1 or step.when or step.after[0] not in self.by_id:
            return False
        parent = self.by_id[step.after[0]]
        return not parent.when and self.dependents.get(parent.id, ()) == (step.id,)

    @cached_property
    def groups(self) -> dict[str, tuple[str, ...]]:
        """Each step's fused group (its members in order); one member when not fused.

        ``fuse: true`` on the pipeline fuses every chain it can; on a step, it
        fuses that step with the step it comes after.
        """
        head: dict[str, str] = {}
        for step_id in self.topological_order:
            step = self.by_id[step_id]
            if (self.fuse or step.fuse) and self.can_fuse(step):
                head[step_id] = head[step.after[0]]
            else:
                head[step_id] = step_id
        members: dict[str, list[str]] = {}
        for step_id in self.topological_order:
            members.setdefault(head[step_id], []).append(step_id)
        return {s: tuple(members[head[s]]) for s in head}

    @cached_property
    def topological_order(self) -> tuple[str, ...]:
        """Step ids so that every step comes after the steps it waits for."""
        order: list[str] = []
        placed: set[str] = set()
        remaining = [s.id for s in self.steps]
        while remaining:
            ready = [s for s in remaining if set(self.by_id[s].after) <= placed]
            if not ready:  # a cycle; validation reports it
                return tuple(order + remaining)
            order += ready
            placed |= set(ready)
            remaining = [s for s in remaining if s not in placed]
        return tuple(order)

    def ancestors(self, step_id: str) -> list[str]:
        """Every step ``step_id`` transitively waits for, nearest first."""
        seen: list[str] = []
        frontier = list(self.by_id[step_id].after)
        while frontier:
            current = frontier.pop(0)
            if current not in seen:
                seen.append(current)
                frontier.extend(self.by_id[current].after)
        return seen


def load_document(text: str | bytes) -> Any:
    """Parse a YAML or JSON document (JSON is YAML); SpecInvalid if it is neither."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise SpecInvalid([Problem("$", f"not valid YAML or JSON{where}")]) from None


def json_path(loc: tuple[int | str, ...]) -> str:
    """``("steps", 1, "after", 0)`` -> ``steps[1].after[0]``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "$"


def spec_from_data(data: Any) -> PipelineSpec:
    """Build the typed spec, reporting every schema problem with its JSON path."""
    if not isinstance(data, dict):
        raise SpecInvalid([Problem("$", "a pipeline spec must be a mapping")])
    try:
        return PipelineSpec.model_validate(data)
    except ValidationError as exc:
        problems = [Problem(json_path(tuple(e["loc"])), e["msg"]) for e in exc.errors()]
        raise SpecInvalid(problems) from None


def parse_spec(text: str | bytes) -> PipelineSpec:
    """Parse and type-check a spec document (no catalogue or DAG checks)."""
    return spec_from_data(load_document(text))
