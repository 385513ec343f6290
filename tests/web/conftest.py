"""A real browser (headless Chromium via Playwright) on the page of a real local stack."""

from __future__ import annotations

import re
from collections.abc import Callable, Generator, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Playwright, sync_playwright
from playwright.sync_api import Error as PlaywrightError

# The whole local stack (`kpipe up`), shared with the end-to-end tests.
from tests.e2e.conftest import REPO, stack, stack_ports  # noqa: F401

# ASGI apps served on free ports (a router alone, for the token test).
from tests.eventing.conftest import serve  # noqa: F401

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = REPO / "test-artifacts" / "web"
TIMEOUT_MS = 15_000

Shoot = Callable[[str], Path]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    # Keep each phase's report on the item so `page` can screenshot failures.
    report: pytest.TestReport = yield
    setattr(item, f"report_{report.when}", report)
    return report


def _playwrights_chromium(playwright: Playwright) -> Browser:
    """Playwright's own headless Chromium; if it does not start, fail saying how to get it."""
    try:
        return playwright.chromium.launch(args=CHROMIUM_ARGS, headless=True)
    except PlaywrightError as exc:
        reason = exc.message.splitlines()[0]
    pytest.fail(
        f"{CHROMIUM} is missing and Playwright's own Chromium does not start "
        "(`python -m playwright install --only-shell chromium` downloads it, "
        "`python -m playwright install-deps chromium` installs the system libraries "
        f"it needs): {reason}",
        pytrace=False,
    )


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """Headless Chromium: Debian's where it is installed, else Playwright's own.

    `make test` downloads Playwright's only where /usr/bin/chromium is missing.
    """
    with sync_playwright() as playwright:
        if CHROMIUM.exists():
            launched = playwright.chromium.launch(
                executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
            )
        else:
            launched = _playwrights_chromium(playwright)
        yield launched
        launched.close()


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")


@pytest.fixture
def page(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A fresh browser context; JavaScript errors fail the test, failures leave a screenshot."""
    context = browser.new_context(viewport={"width": 1440, "height": 1000})
    context.set_default_timeout(TIMEOUT_MS)
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda exc: errors.append(str(exc)))
    opened.on(
        "console",
        lambda msg: (
            errors.append(msg.text)
            if msg.type == "error" and "Failed to load resource" not in msg.text
            else None
        ),
    )
    yield opened
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        opened.screenshot(path=ARTIFACTS / f"{_slug(request.node.name)}-FAILED.png", full_page=True)
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


@pytest.fixture
def shoot(page: Page, request: pytest.FixtureRequest) -> Shoot:
    """Save a full-page screenshot as a test artifact under test-artifacts/web/."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)

    def take(label: str) -> Path:
        path = ARTIFACTS / f"{_slug(request.node.name)}-{label}.png"
        page.evaluate("window.scrollTo(0, 0)")  # the sticky header stays on top
        page.screenshot(path=path, full_page=True)
        return path

    return take
