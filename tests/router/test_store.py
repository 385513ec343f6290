from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import pytest

from functions.catalog import Catalog
from router.errors import Conflict, PipelineNotFound, RunNotFound
from router.spec import PipelineSpec
from router.state import RunState, RunStatus, StepState
from router.store import RunQuery, Store
from router.validation import validate_spec


def test_every_put_makes_a_new_version(
    store: Store, catalog: Catalog, spec_data: dict[str, Any]
) -> None:
    spec = validate_spec(spec_data, catalog)
    assert store.put_pipeline(spec) == 1
    assert store.put_pipeline(spec) == 2
    assert [v.version for v in store.list_versions("privacy-blur")] == [1, 2]
    current = store.get_pipeline("privacy-blur")
    assert (current.version, current.active_version) == (2, 2)
    assert store.get_pipeline("privacy-blur", 1).spec == spec


def test_roll_back_to_an_older_version(
    store: Store, catalog: Catalog, spec_data: dict[str, Any]
) -> None:
    spec = validate_spec(spec_data, catalog)
    store.put_pipeline(spec)
    store.put_pipeline(spec)
    store.set_active("privacy-blur", 1)
    assert store.get_pipeline("privacy-blur").version == 1
    assert [p.version for p in store.list_pipelines()] == [1]


def test_delete_keeps_versions_for_old_runs(
    store: Store, catalog: Catalog, spec_data: dict[str, Any]
) -> None:
    store.put_pipeline(validate_spec(spec_data, catalog))
    store.delete_pipeline("privacy-blur")
    assert store.list_pipelines() == []
    with pytest.raises(PipelineNotFound):
        store.get_pipeline("privacy-blur")
    assert store.get_pipeline("privacy-blur", 1).version == 1
    with pytest.raises(PipelineNotFound):
        store.delete_pipeline("privacy-blur")
    # registering again continues the numbering
    assert store.put_pipeline(validate_spec(spec_data, catalog)) == 2


@pytest.mark.parametrize("version", [None, 7])
def test_unknown_pipelines(store: Store, version: int | None) -> None:
    with pytest.raises(PipelineNotFound, match="ghost"):
        store.get_pipeline("ghost", version)


def _run(
    run_id: str, pipeline: str = "p", created: float = 100.0, status: RunStatus = RunStatus.PENDING
) -> RunState:
    from eventing.contract import ObjectRef

    return RunState(
        id=run_id,
        pipeline=pipeline,
        version=1,
        source=ObjectRef("uploads", f"{run_id}.jpg"),
        etag="e",
        status=status,
        created_at=created,
        updated_at=created,
        steps={"a": StepState("a", "resize")},
    )


def test_create_run_once(store: Store) -> None:
    assert store.create_run(_run("r1"))
    assert not store.create_run(_run("r1"))
    assert store.get_run("r1").steps["a"].function == "resize"
    with pytest.raises(RunNotFound):
        store.get_run("r2")


def test_run_tx_writes_back_changes(store: Store) -> None:
    store.create_run(_run("r1"))
    with store.run_tx("r1") as run:
        run.status = RunStatus.RUNNING
        run.steps["a"].attempt = 3
    loaded = store.get_run("r1")
    assert loaded.status is RunStatus.RUNNING
    assert loaded.steps["a"].attempt == 3


def test_run_tx_rolls_back_on_error(store: Store) -> None:
    store.create_run(_run("r1"))

    def fail_midway() -> None:
        with store.run_tx("r1") as run:
            run.status = RunStatus.FAILED
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        fail_midway()
    assert store.get_run("r1").status is RunStatus.PENDING


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (RunQuery(), ["r3", "r2", "r1"]),
        (RunQuery(pipeline="q"), ["r3"]),
        (RunQuery(status=RunStatus.SUCCEEDED), ["r2"]),
        (RunQuery(source=("uploads", "r1.jpg")), ["r1"]),
        (RunQuery(since=150.0), ["r3", "r2"]),
        (RunQuery(until=150.0), ["r1"]),
        (RunQuery(limit=1, offset=1), ["r2"]),
        (RunQuery(version=2), []),
    ],
)
def test_list_runs_filters(store: Store, query: RunQuery, expected: list[str]) -> None:
    store.create_run(_run("r1", created=100.0))
    store.create_run(_run("r2", created=200.0, status=RunStatus.SUCCEEDED))
    store.create_run(_run("r3", pipeline="q", created=300.0))
    found, total = store.list_runs(query)
    assert [r.id for r in found] == expected
    assert total >= len(expected)


def test_unfinished_runs(store: Store) -> None:
    store.create_run(_run("old", created=100.0))
    store.create_run(_run("done", created=100.0, status=RunStatus.SUCCEEDED))
    assert store.unfinished_runs(older_than=150.0) == ["old"]
    assert store.unfinished_runs(older_than=50.0) == []


# -- replicas racing on one pipeline (PostgreSQL, shared by replicas) -----------

ROUNDS = 15


def _race(*calls: Callable[[], object]) -> list[object]:
    """Run ``calls`` in threads released at once; each one's result or the error it raised."""
    barrier = threading.Barrier(len(calls))
    results: list[object] = [None] * len(calls)

    def run(n: int) -> None:
        barrier.wait(timeout=10)
        try:
            results[n] = calls[n]()
        except Exception as exc:  # collected: the test asserts what each call gave
            results[n] = exc

    threads = [threading.Thread(target=run, args=(n,)) for n in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return results


@pytest.fixture
def replicas(postgres_url: str) -> Iterator[tuple[Store, Store]]:
    """Two router replicas sharing one PostgreSQL."""
    first, second = Store(postgres_url), Store(postgres_url)
    yield first, second
    first.close()
    second.close()


def _allowed(result: object) -> bool:
    """What a concurrent change may give: its result, or a 409 (Conflict); never anything else."""
    return not isinstance(result, BaseException) or isinstance(result, Conflict)


@pytest.mark.parametrize("registered", [False, True], ids=["new", "existing"])
def test_concurrent_puts_of_one_pipeline_give_two_versions_or_a_conflict(
    replicas: tuple[Store, Store], catalog: Catalog, spec_data: dict[str, Any], registered: bool
) -> None:
    first, second = replicas
    for round_ in range(ROUNDS):  # a race shows up only sometimes
        spec = validate_spec({**spec_data, "name": f"race-{round_}"}, catalog)
        before = first.put_pipeline(spec) if registered else 0
        results = _race(partial(first.put_pipeline, spec), partial(second.put_pipeline, spec))
        assert all(_allowed(r) for r in results), results
        made = sorted(r for r in results if isinstance(r, int))
        assert made == list(range(before + 1, before + 1 + len(made)))
        stored = [v.version for v in first.list_versions(spec.name)]
        assert stored == list(range(1, before + 1 + len(made)))
        assert first.get_pipeline(spec.name).version == stored[-1]


def _change(store: Store, kind: str, spec: PipelineSpec, version: int) -> Callable[[], object]:
    """Register ``spec`` again, or roll back to ``version`` of it."""
    if kind == "put":
        return partial(store.put_pipeline, spec)
    return partial(store.set_active, spec.name, version)


@pytest.mark.parametrize(
    "changes",
    [("set_active", "set_active"), ("put", "set_active")],
    ids=["two-rollbacks", "put-and-rollback"],
)
def test_concurrent_changes_of_a_deleted_pipeline_never_fail(
    replicas: tuple[Store, Store],
    catalog: Catalog,
    spec_data: dict[str, Any],
    changes: tuple[str, str],
) -> None:
    # After a delete no pipeline row exists: each change would insert it.
    first, second = replicas
    for round_ in range(ROUNDS):
        spec = validate_spec({**spec_data, "name": f"race-{round_}"}, catalog)
        first.put_pipeline(spec)
        first.put_pipeline(spec)
        first.delete_pipeline(spec.name)
        results = _race(_change(first, changes[0], spec, 1), _change(second, changes[1], spec, 2))
        assert all(_allowed(r) for r in results), results
        active = first.get_pipeline(spec.name)
        assert active.active_version in [v.version for v in first.list_versions(spec.name)]
