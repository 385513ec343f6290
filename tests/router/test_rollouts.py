"""Rollouts: a candidate version runs beside the live one (shadow) or instead, for a share (canary).

The shadow's outputs never replace the live ones; a canary's share is a
stable hash of the key, so one photo always goes the same way; ending a
rollout promotes its candidate or rolls it back, and says why.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from eventing.contract import Event, EventType, ObjectCreated, StepFailed, StepRequest
from functions.catalog import Catalog
from router import keys
from router.engine import Router
from router.rollouts import RolloutMode, RolloutRules, RolloutStatus
from router.store import RunQuery, Store
from tests.router.apps import make_client
from tests.router.test_engine import complete, register


def _spec(min_score: float) -> dict[str, Any]:
    return {
        "name": "faces",
        "trigger": {"bucket": "uploads", "prefix": "in/"},
        "output": {"bucket": "processed"},
        "steps": [
            {"id": "small", "function": "resize", "params": {"max_side": 256}},
            {"id": "found", "function": "detect_faces", "after": ["small"]},
            {
                "id": "blur",
                "function": "blur",
                "after": ["found"],
                "params": {"min_score": min_score},
            },
        ],
    }


def _upload(key: str) -> ObjectCreated:
    return ObjectCreated("uploads", key, 10, f"etag-{key}", "image/jpeg")


@pytest.fixture
def router(store: Store, catalog: Catalog) -> Router:
    register(store, catalog, _spec(0.0))  # v1, the live one
    register(store, catalog, _spec(0.6))  # v2, the candidate
    store.set_active("faces", 1)
    return Router(store)


def _final_key(router: Router, request: Event) -> str:
    """The key the run's last step is asked to write, answering each step before it."""
    while request.context is not None and request.context.step != "blur":
        [request] = complete(router, request)
    return StepRequest.from_data(request.data).output.key


def test_a_shadow_runs_beside_the_live_version_and_writes_apart(
    router: Router, store: Store
) -> None:
    router.rollouts.start("faces", 2, RolloutMode.SHADOW, 100)
    started = router.on_object_created(_upload("in/team.jpg"))
    runs = {store.get_run(e.context.run).role: e for e in started if e.context}
    assert set(runs) == {"live", "shadow"}
    live, shadow = runs["live"].context, runs["shadow"].context
    assert live is not None
    assert shadow is not None
    assert (live.version, shadow.version) == (1, 2)
    assert _final_key(router, runs["live"]) == "faces/in/team.jpg"
    assert _final_key(router, runs["shadow"]) == "faces/_shadow/v2/in/team.jpg"
    shadows, total = store.list_runs(RunQuery(pipeline="faces", role="shadow"))
    assert (total, shadows[0].id) == (1, shadow.run)


def test_a_live_key_never_lands_among_the_shadows() -> None:
    assert keys.final_key("faces", "_shadow/v2/in/team.jpg") == "faces/__shadow/v2/in/team.jpg"


def test_a_canary_takes_its_share_of_uploads_instead_of_the_live_version(
    router: Router, store: Store
) -> None:
    router.rollouts.start("faces", 2, RolloutMode.CANARY, 20)
    versions = []
    for i in range(100):
        [first] = router.on_object_created(_upload(f"in/{i}.jpg"))
        assert first.type is EventType.STEP_REQUESTED
        assert first.context is not None
        versions.append(first.context.version)
        run = store.get_run(first.context.run)
        assert run.role == ("canary" if run.version == 2 else "live")
        assert StepRequest.from_data(first.data).output.key.startswith("faces/_runs/")
    assert 10 <= versions.count(2) <= 30  # about a fifth, by a stable hash of the key
    # the same photo always goes the same way
    assert keys.canary_share("in/7.jpg") == keys.canary_share("in/7.jpg")


def test_ending_a_rollout_promotes_or_rolls_back(router: Router, store: Store) -> None:
    router.rollouts.start("faces", 2, RolloutMode.SHADOW, 100)
    ended = router.rollouts.end("faces", RolloutStatus.ROLLED_BACK, "missed faces")
    assert (ended.status, ended.reason) == (RolloutStatus.ROLLED_BACK, "missed faces")
    assert len(router.on_object_created(_upload("in/after.jpg"))) == 1  # live only again
    assert store.get_pipeline("faces").version == 1
    router.rollouts.start("faces", 2, RolloutMode.CANARY, 50)
    router.rollouts.end("faces", RolloutStatus.PROMOTED, "no worse")
    assert store.get_pipeline("faces").version == 2


def test_the_rollout_api(tmp_path: Path, catalog: Catalog) -> None:
    with make_client(tmp_path, catalog) as client:
        assert client.get("/v1/pipelines/faces/rollout").status_code == 404
        client.put("/v1/pipelines/faces", json=_spec(0.0))
        client.put("/v1/pipelines/faces", json=_spec(0.6))
        client.post("/v1/pipelines/faces/active", json={"version": 1})
        assert client.get("/v1/pipelines/faces/rollout").status_code == 404
        same = client.post("/v1/pipelines/faces/rollout", json={"version": 1, "mode": "shadow"})
        assert same.status_code == 409  # the active version already
        missing = client.post("/v1/pipelines/faces/rollout", json={"version": 9, "mode": "shadow"})
        assert missing.status_code == 404
        body = {"version": 2, "mode": "canary", "percent": 20}
        started = client.post("/v1/pipelines/faces/rollout", json=body)
        assert started.status_code == 201, started.text
        assert (started.json()["status"], started.json()["percent"]) == ("active", 20)
        assert client.post("/v1/pipelines/faces/rollout", json=body).status_code == 409
        bad = client.post("/v1/pipelines/faces/rollout", json={"version": 2, "mode": "blue"})
        assert bad.status_code == 422
        end = {"outcome": "rollback", "reason": "p95 worse"}
        ended = client.post("/v1/pipelines/faces/rollout/end", json=end)
        assert ended.status_code == 200, ended.text
        assert (ended.json()["status"], ended.json()["reason"]) == ("rolled_back", "p95 worse")
        assert client.post("/v1/pipelines/faces/rollout/end", json=end).status_code == 409


def _faces(*boxes: tuple[int, int, int, int]) -> dict[str, Any]:
    found = [{"label": "face", "score": 0.9, "box": list(b)} for b in boxes]
    return {"count": len(found), "detections": found, "image": {"width": 256, "height": 256}}


def _finish(router: Router, request: Event, faces: dict[str, Any]) -> None:
    """Answer every step of the run: the detector with ``faces``."""
    while True:
        assert request.context is not None
        metadata = faces if request.context.step == "found" else {}
        emitted = [e for e in complete(router, request, metadata) if e.context and e.context.step]
        if not emitted:
            return
        [request] = emitted


def test_a_shadow_that_finds_fewer_faces_is_rolled_back_and_shows_the_one_it_missed(
    router: Router, store: Store
) -> None:
    rules = RolloutRules(metric="found.count", promote_after=10)
    router.rollouts.start("faces", 2, RolloutMode.SHADOW, 100, rules)
    both = (10, 10, 60, 60), (100, 100, 150, 150)
    for key, shadow_faces in (("in/a.jpg", both), ("in/b.jpg", both[:1])):
        for request in router.on_object_created(_upload(key)):
            assert request.context is not None
            role = store.get_run(request.context.run).role
            _finish(router, request, _faces(*both) if role == "live" else _faces(*shadow_faces))
    [pair_a, pair_b] = sorted(
        router.rollouts.compare(router.rollouts.current("faces")), key=lambda p: p["source"]["key"]
    )
    assert pair_a["differences"] == {}
    assert pair_b["differences"] == {
        "found": {"only_live": [[100, 100, 150, 150]], "only_candidate": []}
    }
    assert (pair_b["live"]["version"], pair_b["candidate"]["version"]) == (1, 2)
    [ended] = router.rollouts.judge_all()
    assert ended.status is RolloutStatus.ROLLED_BACK
    assert ended.reason is not None
    assert "found.count is 1 for the candidate and 2 for the live version" in ended.reason
    assert "in/b.jpg" in ended.reason


def test_a_canary_that_fails_more_is_rolled_back_and_one_that_holds_up_is_promoted(
    router: Router, store: Store
) -> None:
    rules = RolloutRules(promote_after=3, max_failure_rate_increase=0.1)
    router.rollouts.start("faces", 2, RolloutMode.CANARY, 100, rules)  # every upload
    for i in range(3):
        [request] = router.on_object_created(_upload(f"in/good-{i}.jpg"))
        _finish(router, request, _faces())
    assert router.rollouts.judge(router.rollouts.current("faces")).compared == 3
    [promoted] = router.rollouts.judge_all()
    assert promoted.status is RolloutStatus.PROMOTED
    assert store.get_pipeline("faces").version == 2

    store.set_active("faces", 1)
    router.rollouts.start("faces", 2, RolloutMode.CANARY, 100, rules)
    [request] = router.on_object_created(_upload("in/bad.jpg"))
    assert request.context is not None
    router.on_step_failed(request.context, StepFailed("bad_image", "no", attempt=1))
    [rolled_back] = router.rollouts.judge_all()
    assert rolled_back.status is RolloutStatus.ROLLED_BACK
    assert rolled_back.reason == "the candidate failed 100% of its runs, the live version 0%"
    assert store.get_pipeline("faces").version == 1
