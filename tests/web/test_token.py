"""The page against a router that guards every API call with KPIPE_API_TOKEN.

Only the router and a real S3 server run here (no parts, broker or Triton):
a run is driven by posting the events a broker would deliver.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import numpy.typing as npt
import pytest
from playwright.sync_api import Page, Request, expect

from eventing.contract import (
    Event,
    EventType,
    ObjectCreated,
    ObjectRef,
    StepCompleted,
    StepOutput,
    StepRequest,
)
from eventing.http import from_http, to_http
from eventing.objectstore import MinioStore
from eventing.signing import Role
from functions.catalog import default_catalog
from kpipe.core.settings import ObjectStoreSettings
from kpipe.local.s3.server import S3Server
from router.api import create_app
from router.health import HealthChecker
from router.services import RouterServices
from router.settings import RouterSettings
from router.store import Store
from tests.conftest import encode
from tests.router.apps import KEYS, TRUSTED, signed
from tests.web.conftest import Shoot

pytestmark = pytest.mark.slow

TOKEN = "web-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def s3() -> Iterator[S3Server]:
    with S3Server(port=0, buckets=("uploads", "processed")) as server:
        yield server


@pytest.fixture
def objects(s3: S3Server) -> Iterator[MinioStore]:
    store = MinioStore(ObjectStoreSettings(MINIO_ENDPOINT=s3.endpoint))
    yield store
    store.close()


@pytest.fixture
def guarded_router(tmp_path: Path, serve: Callable[[Any], str], objects: MinioStore) -> str:
    """The router's app on a free port, with an API token, its own SQLite file and real S3."""
    settings = RouterSettings(
        KPIPE_HOME=tmp_path, KPIPE_API_TOKEN=TOKEN, KPIPE_RECONCILE_INTERVAL_S=0
    )
    store = Store(settings.database())
    services = RouterServices(
        settings=settings,
        store=store,
        catalog=default_catalog(),
        health=HealthChecker({"database": store.ping}),
        objects=objects,
        trusted=TRUSTED,
        signer=KEYS[Role.ROUTER],
    )
    return serve(create_app(services))


def set_token(page: Page, token: str) -> None:
    page.get_by_test_id("token-input").fill(token)
    page.get_by_test_id("token-input").press("Enter")
    expect(page.get_by_test_id("toast").filter(has_text="API token saved")).to_be_visible()


def expect_asked_for_the_token(page: Page) -> None:
    asked = "a valid bearer token is required; set the API token in ⚙ Settings"
    expect(page.get_by_text(asked).first).to_be_visible()
    expect(page.locator("#settings")).to_have_attribute("open", "")
    expect(page.get_by_test_id("token-input")).to_be_focused()


def test_the_page_asks_for_the_token_and_works_once_it_is_set(
    page: Page, guarded_router: str, shoot: Shoot
) -> None:
    page.goto(f"{guarded_router}/#/builder/new")

    expect_asked_for_the_token(page)  # not even the parts catalogue without it
    expect(page.get_by_test_id("part-resize")).to_have_count(0)
    shoot("token-asked")

    set_token(page, TOKEN)
    page.get_by_test_id("part-resize").click()
    page.get_by_test_id("meta-name").fill("web-token")
    page.get_by_test_id("step-resize").get_by_test_id("param-max_side").fill("256")
    expect(page.get_by_test_id("validation-status")).to_have_text("✓ valid")
    page.get_by_test_id("save").click()
    expect(
        page.get_by_test_id("toast").filter(has_text="Saved web-token version 1")
    ).to_be_visible()
    assert httpx.get(f"{guarded_router}/v1/pipelines/web-token", headers=AUTH).status_code == 200


SOURCE_KEY = "web-token/astronaut.jpg"


@pytest.fixture
def finished_run(
    guarded_router: str,
    objects: MinioStore,
    astronaut: npt.NDArray[np.uint8],
    astronaut_jpeg: bytes,
) -> str:
    """A succeeded resize run (512 px source, 128 px output), driven as a broker would."""
    spec = {
        "name": "web-images",
        "trigger": {"bucket": "uploads", "prefix": "web-token/", "suffix": ".jpg"},
        "output": {"bucket": "processed"},
        "steps": [{"id": "small", "function": "resize", "params": {"max_side": 128}}],
    }
    with httpx.Client(base_url=guarded_router, timeout=10) as api:
        assert api.put("/v1/pipelines/web-images", json=spec, headers=AUTH).status_code == 200
        etag = objects.put(ObjectRef("uploads", SOURCE_KEY), astronaut_jpeg, "image/jpeg")
        created = ObjectCreated("uploads", SOURCE_KEY, len(astronaut_jpeg), etag, "image/jpeg")
        headers, body = to_http(signed(created.to_event("/kpipe/s3/uploads")))
        reply = api.post("/events", headers=headers, content=body)
        assert reply.status_code == 200, reply.text
        request = from_http(dict(reply.headers), reply.content)
        assert request.context is not None
        output = StepRequest.from_data(request.data).output
        objects.put(output, encode(np.ascontiguousarray(astronaut[::4, ::4])), "image/jpeg")
        completed = Event(
            EventType.STEP_COMPLETED,
            "/kpipe/functions/resize",
            StepCompleted(StepOutput((output,), {}), 5.0, 1).to_data(),
            context=request.context,
        )
        headers, body = to_http(signed(completed))
        assert api.post("/events", headers=headers, content=body).status_code in (200, 202)
        run = api.get(f"/v1/runs/{request.context.run}", headers=AUTH).json()
    assert run["status"] == "succeeded", run
    return str(run["id"])


LOADED = "img => img.complete && img.naturalWidth > 0"


def test_a_run_shows_its_images_with_the_token(
    page: Page, guarded_router: str, finished_run: str, shoot: Shoot
) -> None:
    requests: list[Request] = []
    page.on("request", lambda request: requests.append(request))
    page.goto(f"{guarded_router}/#/runs/{finished_run}")
    expect_asked_for_the_token(page)

    set_token(page, TOKEN)

    expect(page.get_by_test_id("run-status")).to_have_text("succeeded")
    source = page.get_by_test_id("source-image-img")
    output = page.get_by_test_id("output-image-img")
    page.wait_for_function(LOADED, arg=source.element_handle())
    page.wait_for_function(LOADED, arg=output.element_handle())
    assert (source.evaluate("i => i.naturalWidth"), output.evaluate("i => i.naturalWidth")) == (
        512,
        128,
    )
    shoot("run-images")
    # The images come from blob: URLs of fetches that carried the token in a
    # header: no token in any URL, and no object read without it.
    urls = [source.get_attribute("src"), output.get_attribute("src")]
    links = [
        page.get_by_test_id(f"{n}-image-link").get_attribute("href") for n in ("source", "output")
    ]
    assert all(re.match(r"blob:http://127\.0\.0\.1:\d+/", str(u)) for u in urls + links), urls
    object_reads = [r for r in requests if "/v1/objects/" in r.url]
    assert {r.url.split("/v1/objects/")[1] for r in object_reads} >= {f"uploads/{SOURCE_KEY}"}
    assert all(r.headers.get("authorization") == f"Bearer {TOKEN}" for r in object_reads)
    assert not [r.url for r in requests if TOKEN in r.url]

    # Leaving the run revokes its blob URLs.
    page.get_by_test_id("nav-runs").click()
    expect(page.get_by_test_id("run-row")).to_have_count(1)
    fetched = page.evaluate("url => fetch(url).then(() => 'alive', () => 'revoked')", urls[0])
    assert fetched == "revoked"


def test_without_the_token_a_run_shows_no_image(
    page: Page, guarded_router: str, finished_run: str
) -> None:
    requests: list[Request] = []
    page.on("request", lambda request: requests.append(request))
    page.goto(f"{guarded_router}/#/runs/{finished_run}")

    expect_asked_for_the_token(page)
    expect(page.locator("#main")).to_contain_text(f"Run {finished_run}: a valid bearer token")
    expect(page.locator("img")).to_have_count(0)
    assert not [r.url for r in requests if "/v1/objects/" in r.url]
    original = httpx.get(f"{guarded_router}/v1/objects/uploads/{SOURCE_KEY}", timeout=10)
    assert original.status_code == 401
