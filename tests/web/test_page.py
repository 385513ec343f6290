"""The web page in headless Chromium against the whole local stack: build, upload, watch."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Locator, Page, expect

from tests.e2e.conftest import Stack
from tests.web.conftest import Shoot

pytestmark = [pytest.mark.slow, pytest.mark.stack]

RUN_TIMEOUT_MS = 90_000


def put_pipeline(stack: Stack, spec: dict[str, Any]) -> dict[str, Any]:
    with stack.client() as api:
        response = api.put(f"/v1/pipelines/{spec['name']}", json=spec)
    assert response.status_code == 200, response.text
    return dict(response.json())


def resize_only(name: str, prefix: str, max_side: int = 256) -> dict[str, Any]:
    return {
        "name": name,
        "trigger": {"bucket": "uploads", "prefix": prefix, "suffix": ".jpg"},
        "output": {"bucket": "processed"},
        "steps": [{"id": "small", "function": "resize", "params": {"max_side": max_side}}],
    }


def step(page: Page, step_id: str) -> Locator:
    return page.get_by_test_id(f"step-{step_id}")


def upload(page: Page, stack: Stack, pipeline: str, path: Path) -> None:
    """Upload through the page's drop zone and land on the run's view."""
    page.goto(f"{stack.api}/#/upload/{pipeline}")
    expect(page.get_by_test_id("upload-pipeline")).to_have_value(pipeline)
    page.get_by_test_id("drop-zone").locator("input[type=file]").set_input_files(path)
    page.wait_for_url(re.compile(r"#/runs/[^/]+$"))


def test_the_router_serves_the_page(stack: Stack) -> None:
    index = httpx.get(f"{stack.api}/", timeout=10)
    module = httpx.get(f"{stack.api}/static/app.js", timeout=10)

    assert index.status_code == 200
    assert index.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="/static/app.js">' in index.text
    assert module.status_code == 200
    assert "javascript" in module.headers["content-type"]


def test_build_a_pipeline_by_clicking_upload_and_see_the_output(
    page: Page, stack: Stack, shoot: Shoot, astronaut_jpeg: bytes, tmp_path: Path
) -> None:
    page.goto(f"{stack.api}/#/builder/new")
    for part in ("resize", "detect_faces", "blur"):
        page.get_by_test_id(f"part-{part}").click()
    # A new step runs after the previous one; connect blur again by hand.
    blur = step(page, "blur")
    blur.get_by_test_id("after-detect_faces").click()
    expect(page.get_by_test_id("edge-detect_faces-blur")).to_have_count(0)
    blur.get_by_test_id("after-detect_faces").click()
    expect(blur.get_by_test_id("after-detect_faces")).to_have_attribute("aria-pressed", "true")
    expect(page.get_by_test_id("edge-resize-detect_faces")).to_have_count(1)
    expect(page.get_by_test_id("edge-detect_faces-blur")).to_have_count(1)
    step(page, "resize").get_by_test_id("param-max_side").fill("400")
    blur.get_by_test_id("param-method").select_option("pixelate")
    page.get_by_test_id("meta-name").fill("web-blur")
    page.get_by_test_id("meta-trigger.bucket").fill("uploads")
    page.get_by_test_id("meta-trigger.prefix").fill("web/")
    page.get_by_test_id("meta-trigger.suffix").fill(".jpg")
    page.get_by_test_id("meta-output.bucket").fill("processed")
    expect(page.get_by_test_id("validation-status")).to_have_text("✓ valid")
    shoot("1-builder")

    page.get_by_test_id("save").click()

    expect(page.get_by_test_id("validation-status")).to_have_text("saved as version 1")
    expect(page.get_by_test_id("current-version")).to_contain_text("1 version")
    with stack.client() as api:
        saved = api.get("/v1/pipelines/web-blur").json()["spec"]
    assert [(s["id"], s["after"]) for s in saved["steps"]] == [
        ("resize", []),
        ("detect_faces", ["resize"]),
        ("blur", ["detect_faces"]),
    ]
    assert saved["steps"][0]["params"] == {"max_side": 400}
    shoot("2-saved")

    photo = tmp_path / "astronaut.jpg"
    photo.write_bytes(astronaut_jpeg)
    upload(page, stack, "web-blur", photo)

    expect(page.get_by_test_id("run-status")).to_have_text("succeeded", timeout=RUN_TIMEOUT_MS)
    output = page.get_by_test_id("output-image-img")
    expect(output).to_be_visible()
    loaded = "img => img.complete && img.naturalWidth > 0"
    page.wait_for_function(loaded, arg=output.element_handle())
    assert output.evaluate("img => img.naturalWidth") == 400
    for step_id in ("resize", "detect_faces", "blur"):
        expect(page.get_by_test_id(f"graph-node-{step_id}")).to_have_attribute(
            "data-status", "succeeded"
        )
    boxes = page.get_by_test_id("detections-detect_faces-overlay").get_by_test_id("detection")
    expect(boxes).to_have_count(1)
    expect(page.get_by_test_id("timings").locator("tbody tr")).to_have_count(3)
    # what each step cost, as its part measured: detect_faces waited for Triton
    expect(page.get_by_test_id("cpu-resize")).to_have_text(re.compile(r"^\d+(\.\d)? m?s$"))
    expect(page.get_by_test_id("inference-detect_faces")).to_have_text(re.compile(r"[1-9]"))
    expect(page.get_by_test_id("inference-resize")).to_have_text("0 ms")
    expect(page.get_by_test_id("run-cost")).to_contain_text("of CPU in its parts")
    shoot("3-run")

    page.get_by_test_id("nav-runs").click()
    expect(page.get_by_test_id("run-row").first).to_have_attribute("data-status", "succeeded")
    shoot("4-runs")


def test_an_invalid_param_shows_an_inline_error_before_saving(
    page: Page, stack: Stack, shoot: Shoot
) -> None:
    page.goto(f"{stack.api}/#/builder/new")
    page.get_by_test_id("part-resize").click()
    page.get_by_test_id("meta-name").fill("web-invalid")
    page.get_by_test_id("meta-trigger.prefix").fill("invalid/")

    step(page, "resize").get_by_test_id("param-max_side").fill("0")

    field = page.locator('[data-field="steps[0].params.max_side"]')
    expect(field.get_by_test_id("field-error")).to_contain_text("greater than or equal to 1")
    expect(page.get_by_test_id("validation-status")).to_have_text("1 problem")
    shoot("inline-error")
    with stack.client() as api:
        assert api.get("/v1/pipelines/web-invalid").status_code == 404

    step(page, "resize").get_by_test_id("param-max_side").fill("512")

    expect(field.get_by_test_id("field-error")).to_have_count(0)
    expect(page.get_by_test_id("validation-status")).to_have_text("✓ valid")


def test_any_saved_version_can_be_viewed_and_made_active(
    page: Page, stack: Stack, shoot: Shoot
) -> None:
    put_pipeline(stack, resize_only("web-versions", "versions/", max_side=128))
    second = resize_only("web-versions", "versions/", max_side=256)
    second["steps"].append({"id": "faces", "function": "detect_faces", "after": ["small"]})
    put_pipeline(stack, second)
    page.goto(f"{stack.api}/#/builder/web-versions")
    expect(page.get_by_test_id("current-version")).to_contain_text("2 versions · active v2")

    page.get_by_test_id("version-picker").select_option("1")

    graph = page.get_by_test_id("version-graph")
    expect(graph.get_by_test_id("graph-node-small")).to_have_count(1)
    expect(graph.get_by_test_id("graph-node-faces")).to_have_count(0)
    page.get_by_test_id("activate").click()
    expect(page.get_by_test_id("active-badge")).to_be_visible()
    expect(page.get_by_test_id("current-version")).to_contain_text("active v1")
    shoot("version-1-active")
    with stack.client() as api:
        assert api.get("/v1/pipelines/web-versions").json()["active_version"] == 1


def test_a_failed_run_offers_a_retry(
    page: Page, stack: Stack, shoot: Shoot, astronaut_jpeg: bytes, tmp_path: Path
) -> None:
    put_pipeline(stack, resize_only("web-broken", "broken/"))
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(astronaut_jpeg[: len(astronaut_jpeg) // 3])

    upload(page, stack, "web-broken", truncated)

    expect(page.get_by_test_id("run-status")).to_have_text("failed", timeout=RUN_TIMEOUT_MS)
    expect(page.get_by_test_id("run-error")).to_contain_text("small")
    expect(page.get_by_test_id("graph-node-small")).to_have_attribute("data-status", "failed")
    expect(page.get_by_test_id("retry")).to_be_visible()
    shoot("failed-run")

    page.get_by_test_id("retry").click()

    expect(page.get_by_test_id("toast").filter(has_text="Retrying")).to_be_visible()
    expect(page.get_by_test_id("run-status")).to_have_text("failed", timeout=RUN_TIMEOUT_MS)
    expect(page.get_by_test_id("attempt-small")).to_have_text("2")


def test_the_runs_page_redrives_a_pipelines_failed_runs(
    page: Page, stack: Stack, shoot: Shoot, astronaut_jpeg: bytes, tmp_path: Path
) -> None:
    put_pipeline(stack, resize_only("web-redrive", "redrive/"))
    truncated = tmp_path / "cut.jpg"
    truncated.write_bytes(astronaut_jpeg[: len(astronaut_jpeg) // 3])
    upload(page, stack, "web-redrive", truncated)
    expect(page.get_by_test_id("run-status")).to_have_text("failed", timeout=RUN_TIMEOUT_MS)

    page.get_by_test_id("nav-runs").click()
    page.get_by_test_id("filter-pipeline").select_option("web-redrive")
    page.get_by_test_id("filter-status").select_option("failed")
    expect(page.get_by_test_id("redrive")).to_have_text("Redrive 1 failed run")
    page.get_by_test_id("redrive").click()

    # The job's progress, until every run it retried has ended (failed again: the file is cut).
    job = page.get_by_test_id("redrive-job")
    expect(job).to_have_attribute("data-status", "done", timeout=RUN_TIMEOUT_MS)
    expect(job).to_contain_text("1 of 1 retried")
    shoot("redrive")
    with stack.client() as api:
        [run] = api.get("/v1/runs", params={"pipeline": "web-redrive"}).json()["runs"]
    assert run["steps"][0]["attempt"] == 2


def test_drag_parts_onto_the_canvas_and_connect_ports(
    page: Page, stack: Stack, shoot: Shoot
) -> None:
    page.goto(f"{stack.api}/#/builder/new")
    canvas = page.get_by_test_id("canvas")
    for part in ("resize", "detect_faces", "annotate"):
        page.get_by_test_id(f"part-{part}").drag_to(canvas)
    expect(page.get_by_test_id("steps").locator("article")).to_have_count(3)
    expect(page.get_by_test_id("edge-detect_faces-annotate")).to_have_count(1)
    step(page, "detect_faces").get_by_test_id("check-steps[1].fuse").check()
    expect(page.get_by_test_id("edge-resize-detect_faces")).to_have_class(re.compile(r"\bfused\b"))

    page.get_by_test_id("edge-remove-detect_faces-annotate").click()
    expect(page.get_by_test_id("edge-detect_faces-annotate")).to_have_count(0)
    page.get_by_test_id("port-out-resize").click()
    page.get_by_test_id("port-in-annotate").click()

    expect(page.get_by_test_id("edge-resize-annotate")).to_have_count(1)
    annotate = step(page, "annotate")
    expect(annotate.get_by_test_id("after-resize")).to_have_attribute("aria-pressed", "true")
    expect(annotate.get_by_test_id("after-detect_faces")).to_have_attribute("aria-pressed", "false")
    shoot("fan-out")

    # An edge that skips a column (resize -> annotate past detect_faces) can
    # still be removed by a click: its handle is not under the middle step.
    page.get_by_test_id("port-out-detect_faces").click()
    page.get_by_test_id("port-in-annotate").click()
    expect(page.get_by_test_id("edge-detect_faces-annotate")).to_have_count(1)
    shoot("edge-over-a-column")
    page.get_by_test_id("edge-remove-resize-annotate").click(timeout=5_000)
    expect(page.get_by_test_id("edge-resize-annotate")).to_have_count(0)
    expect(page.get_by_test_id("edge-detect_faces-annotate")).to_have_count(1)


@pytest.mark.parametrize("view", ["builder/web-phone", "runs", "upload"])
def test_the_page_fits_a_phone_screen(page: Page, stack: Stack, shoot: Shoot, view: str) -> None:
    put_pipeline(stack, resize_only("web-phone", "phone/"))
    page.set_viewport_size({"width": 390, "height": 844})

    page.goto(f"{stack.api}/#/{view}")

    expect(page.get_by_test_id(f"nav-{view.split('/')[0]}")).to_have_attribute(
        "aria-current", "page"
    )
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    shoot("phone")
