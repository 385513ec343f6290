"""The page against a router that guards its mutating calls with KPIPE_API_TOKEN.

Only the router runs here (no parts, S3 or Triton): saving a pipeline needs
nothing else.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from functions.catalog import default_catalog
from router.api import create_app
from router.health import HealthChecker
from router.services import RouterServices
from router.settings import RouterSettings
from router.store import Store
from tests.web.conftest import Shoot

pytestmark = pytest.mark.slow

TOKEN = "web-test-token"


@pytest.fixture
def guarded_router(tmp_path: Path, serve: Callable[[Any], str]) -> str:
    """The router's app on a free port, with an API token and its own SQLite file."""
    settings = RouterSettings(KPIPE_HOME=tmp_path, KPIPE_API_TOKEN=TOKEN)
    store = Store(settings.database())
    services = RouterServices(
        settings=settings,
        store=store,
        catalog=default_catalog(),
        health=HealthChecker({"database": store.ping}),
    )
    return serve(create_app(services))


def test_saving_asks_for_the_token_and_works_once_it_is_set(
    page: Page, guarded_router: str, shoot: Shoot
) -> None:
    page.goto(f"{guarded_router}/#/builder/new")
    page.get_by_test_id("part-resize").click()
    page.get_by_test_id("meta-name").fill("web-token")
    page.get_by_test_id("step-resize").get_by_test_id("param-max_side").fill("256")
    expect(page.get_by_test_id("validation-status")).to_have_text("✓ valid")  # reads stay open

    page.get_by_test_id("save").click()
    refused = page.get_by_test_id("toast").filter(has_text="a valid bearer token is required")
    expect(refused).to_contain_text("set the API token in ⚙ Settings")
    expect(page.locator("#settings")).to_have_attribute("open", "")
    expect(page.get_by_test_id("token-input")).to_be_focused()
    shoot("token-asked")
    assert httpx.get(f"{guarded_router}/v1/pipelines/web-token").status_code == 404

    page.get_by_test_id("token-input").fill(TOKEN)
    page.get_by_test_id("token-input").press("Enter")
    expect(page.get_by_test_id("toast").filter(has_text="API token saved")).to_be_visible()
    page.get_by_test_id("save").click()
    expect(
        page.get_by_test_id("toast").filter(has_text="Saved web-token version 1")
    ).to_be_visible()
    assert httpx.get(f"{guarded_router}/v1/pipelines/web-token").status_code == 200
