"""Fixtures for the deploy tests: the rendered overlays and the Knative CRDs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kpipe.deploy.render import overlay_dir, render
from kpipe.deploy.subjects import with_oidc_subjects

REPO_ROOT = Path(__file__).resolve().parents[2]
OVERLAY_NAMES = ("base", "dev", "gpu")


@pytest.fixture(scope="session")
def crds_dir() -> Path:
    """The real Knative CRDs in ../shared/knative-crds (CI always has them)."""
    path = REPO_ROOT.parent / "shared" / "knative-crds"
    if not (path / "serving" / "service.yaml").is_file():
        pytest.fail(f"the Knative CRDs are missing: expected {path} (../shared of the repo)")
    return path


@pytest.fixture(scope="session", params=OVERLAY_NAMES)
def overlay(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def rendered(overlay: str) -> list[dict[str, Any]]:
    """The objects ``kpipe deploy`` renders of one overlay (the base in ``kpipe-test``)."""
    namespace = "kpipe-test" if overlay == "base" else None
    return with_oidc_subjects(render(overlay_dir(overlay), namespace=namespace))


def by_kind(objs: list[dict[str, Any]], api_version: str, kind: str) -> dict[str, dict[str, Any]]:
    """The objects of one kind, by name."""
    return {
        o["metadata"]["name"]: o
        for o in objs
        if o["apiVersion"] == api_version and o["kind"] == kind
    }
