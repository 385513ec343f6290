"""Validation of a pipeline spec against the parts catalogue and the DAG rules.

Every problem is reported, each with the JSON path of the offending field, so
an API client or the web page can show them all at once.

Example:
    >>> from functions.catalog import default_catalog
    >>> try:
    ...     validate_spec({"name": "x", "trigger": {"bucket": "uploads"},
    ...                    "output": {"bucket": "processed"},
    ...                    "steps": [{"id": "a", "function": "nope"}]}, default_catalog())
    ... except SpecInvalid as invalid:
    ...     print(str(invalid).split(";")[0])
    steps[0].function: unknown function 'nope'
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from pydantic import ValidationError

from eventing.contract import BucketScope
from functions.part import Part
from router.conditions import BadCondition, compile_condition
from router.errors import Problem, SpecInvalid
from router.spec import PipelineSpec, json_path, spec_from_data


class PartCatalog(Protocol):
    """What validation needs of the parts catalogue."""

    def names(self) -> list[str]: ...

    def get(self, name: str) -> Part: ...


def _params_problems(index: int, part: Part, params: dict[str, Any]) -> list[Problem]:
    try:
        part.params.model_validate(params)
    except ValidationError as exc:
        base = ("steps", index, "params")
        return [Problem(json_path(base + tuple(e["loc"])), e["msg"]) for e in exc.errors()]
    return []


def _cycle(spec: PipelineSpec) -> list[str] | None:
    """One cycle in the ``after`` graph, as a list of step ids, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for parent in spec.by_id[node].after:
            if parent not in spec.by_id:
                continue
            if state.get(parent) == 1:
                return [*path[path.index(parent) :], parent]
            if parent not in state and (found := visit(parent)):
                return found
        path.pop()
        state[node] = 2
        return None

    for step in spec.steps:
        if step.id not in state and (found := visit(step.id)):
            return found
    return None


def _dag_problems(spec: PipelineSpec, catalog: PartCatalog) -> list[Problem]:
    problems: list[Problem] = []
    first_index: dict[str, int] = {}
    known = set(catalog.names())
    for i, step in enumerate(spec.steps):
        if step.id in first_index:
            problems.append(
                Problem(
                    f"steps[{i}].id",
                    f"duplicate step id {step.id!r} (first at steps[{first_index[step.id]}])",
                )
            )
        else:
            first_index[step.id] = i
        if step.function not in known:
            problems.append(
                Problem(
                    f"steps[{i}].function",
                    f"unknown function {step.function!r}; known: {', '.join(sorted(known))}",
                )
            )
        else:
            problems.extend(_params_problems(i, catalog.get(step.function), step.params))
        for k, parent in enumerate(step.after):
            if parent == step.id:
                problems.append(Problem(f"steps[{i}].after[{k}]", "a step cannot wait for itself"))
            elif parent not in spec.by_id:
                problems.append(Problem(f"steps[{i}].after[{k}]", f"no step has id {parent!r}"))
        if len(set(step.after)) != len(step.after):
            problems.append(Problem(f"steps[{i}].after", "lists the same step twice"))
    if not problems and (cycle := _cycle(spec)):
        where = first_index[cycle[0]]
        problems.append(Problem(f"steps[{where}].after", f"cycle: {' -> '.join(cycle)}"))
    return problems


# Compiling CEL costs far more per character than reading the spec, and /validate is open:
# a spec with more characters of conditions than this is refused before they are compiled.
MAX_CONDITION_CHARS = 16384


def _condition_problems(spec: PipelineSpec) -> list[Problem]:
    problems: list[Problem] = []
    budget = MAX_CONDITION_CHARS
    for i, step in enumerate(spec.steps):
        ancestors = set(spec.ancestors(step.id)) if step.when else set()
        for j, text in enumerate(step.when):
            path = f"steps[{i}].when[{j}]"
            budget -= len(text)
            if budget < 0:
                message = f"the spec's conditions are longer than {MAX_CONDITION_CHARS} characters"
                return [*problems, Problem(path, message)]
            try:
                condition = compile_condition(text)
            except BadCondition as exc:
                problems.append(Problem(path, exc.message))
                continue
            for name in sorted(condition.steps - ancestors):
                problems.append(
                    Problem(path, f"refers to {name!r}, which is not a step this one waits for")
                )
    return problems


def _fuse_problems(spec: PipelineSpec) -> list[Problem]:
    return [
        Problem(
            f"steps[{i}].fuse",
            "only a step with one `after`, whose step has no other dependent, and no `when` "
            "can run fused with it",
        )
        for i, step in enumerate(spec.steps)
        if step.fuse and not spec.can_fuse(step)
    ]


def _sees_outputs_of(reader: PipelineSpec, writer: PipelineSpec) -> bool:
    """Whether ``reader``'s trigger can see what ``writer`` writes.

    A pipeline writes only under ``<output bucket>/<name>/`` (intermediates
    included). The trigger's suffix is not counted on: a part can change an
    output's extension.
    """
    if writer.output.bucket != reader.trigger.bucket:
        return False
    out_prefix = f"{writer.name}/"
    prefix = reader.trigger.prefix
    return out_prefix.startswith(prefix) or prefix.startswith(out_prefix)


def _loop_problems(spec: PipelineSpec) -> list[Problem]:
    # Every output would start another run of the same pipeline.
    if not _sees_outputs_of(spec, spec):
        return []
    return [
        Problem(
            "output.bucket",
            f"outputs under {spec.output.bucket}/{spec.name}/ would trigger this pipeline "
            "again; use another bucket or a trigger prefix that excludes them",
        )
    ]


def _cycle_through(spec: PipelineSpec, registered: Iterable[PipelineSpec]) -> list[str]:
    """The names along a loop from ``spec`` through registered pipelines back to it, or []."""
    others = {p.name: p for p in registered if p.name != spec.name}
    # Breadth first from the pipelines spec's outputs start, so the loop reported is a shortest one.
    queue = [[spec.name, name] for name, p in others.items() if _sees_outputs_of(p, spec)]
    seen = {path[-1] for path in queue}
    while queue:
        path = queue.pop(0)
        writer = others[path[-1]]
        if _sees_outputs_of(spec, writer):
            return [*path, spec.name]
        for name, reader in others.items():
            if name not in seen and _sees_outputs_of(reader, writer):
                seen.add(name)
                queue.append([*path, name])
    return []


def _cycle_problems(spec: PipelineSpec, registered: Iterable[PipelineSpec]) -> list[Problem]:
    # Outputs that start another pipeline, whose outputs (perhaps through more
    # pipelines) start this one again: every upload would run forever.
    loop = _cycle_through(spec, registered)
    if not loop:
        return []
    return [
        Problem(
            "output.bucket",
            f"outputs would run in a loop through registered pipelines: {' -> '.join(loop)}; "
            "use another output bucket, or trigger prefixes that exclude the outputs",
        )
    ]


def _bucket_problems(spec: PipelineSpec, scope: BucketScope | None) -> list[Problem]:
    # The parts read sources only from the trigger buckets and write only into
    # the output buckets (KPIPE_SOURCE_BUCKETS, KPIPE_OUTPUT_BUCKETS): a spec
    # outside them would fail its first step `out_of_scope`; say so now.
    if scope is None:
        return []
    problems = []
    if spec.trigger.bucket not in scope.sources:
        names = ", ".join(sorted(scope.sources))
        problems.append(
            Problem(
                "trigger.bucket", f"parts read uploads only from {names} (KPIPE_SOURCE_BUCKETS)"
            )
        )
    if spec.output.bucket not in scope.outputs:
        names = ", ".join(sorted(scope.outputs))
        writes = f"parts write only into {names} (KPIPE_OUTPUT_BUCKETS)"
        problems.append(Problem("output.bucket", writes))
    return problems


def find_problems(
    data: Any,
    catalog: PartCatalog,
    registered: Iterable[PipelineSpec] = (),
    scope: BucketScope | None = None,
) -> tuple[PipelineSpec | None, list[Problem]]:
    """The typed spec (if it type-checks) and every problem found in it.

    ``registered`` are the other pipelines it would run beside, for loops
    through their buckets; ``scope`` the buckets the parts may read and
    write (unchecked when None).
    """
    try:
        spec = spec_from_data(data)
    except SpecInvalid as exc:
        return None, exc.problems
    problems = _dag_problems(spec, catalog)
    if not problems:
        problems = _condition_problems(spec) + _fuse_problems(spec)
    buckets = _bucket_problems(spec, scope)
    loops = [] if buckets else _loop_problems(spec) or _cycle_problems(spec, registered)
    return spec, problems + buckets + loops


def validate_spec(
    data: Any,
    catalog: PartCatalog,
    registered: Iterable[PipelineSpec] = (),
    scope: BucketScope | None = None,
) -> PipelineSpec:
    """The typed, valid spec; SpecInvalid listing every problem otherwise."""
    spec, problems = find_problems(data, catalog, registered, scope)
    if problems or spec is None:
        raise SpecInvalid(problems)
    return spec
