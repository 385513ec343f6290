"""Applies rendered objects with server-side apply and reports their readiness.

Every object is sent as ``PATCH`` with ``application/apply-patch+yaml``,
``fieldManager=kpipe`` and ``force=true`` (kpipe owns the fields it sets;
other managers, such as the SinkBinding webhook, keep theirs). Secrets are the
exception: one that exists is left alone, and one that does not is created
with every ``CHANGE_ME`` replaced by a random hex token, so no secret is ever
committed or overwritten.

Example:
    >>> from kubernetes import config
    >>> api = config.new_client_from_config()                   # doctest: +SKIP
    >>> Applier(api).apply(render(overlay_dir("dev")))          # doctest: +SKIP
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from kpipe.deploy.render import Obj, sort_key
from kpipe.errors import KpipeError

PLACEHOLDER = "CHANGE_ME"
FIELD_MANAGER = "kpipe"

# (apiVersion, kind) -> (plural, namespaced), for every kind the manifests use.
KINDS: dict[tuple[str, str], tuple[str, bool]] = {
    ("v1", "Namespace"): ("namespaces", False),
    ("v1", "ConfigMap"): ("configmaps", True),
    ("v1", "Secret"): ("secrets", True),
    ("v1", "Service"): ("services", True),
    ("v1", "PersistentVolumeClaim"): ("persistentvolumeclaims", True),
    ("apps/v1", "Deployment"): ("deployments", True),
    ("apps/v1", "StatefulSet"): ("statefulsets", True),
    ("batch/v1", "Job"): ("jobs", True),
    ("serving.knative.dev/v1", "Service"): ("services", True),
    ("eventing.knative.dev/v1", "Broker"): ("brokers", True),
    ("eventing.knative.dev/v1", "Trigger"): ("triggers", True),
    ("sources.knative.dev/v1", "SinkBinding"): ("sinkbindings", True),
}


class ApplyFailed(KpipeError, RuntimeError):
    """The API server refused a request."""

    def __init__(self, obj: Obj, status: int, message: str) -> None:
        super().__init__(f"{describe(obj)}: HTTP {status}: {message}")
        self.status = status


@dataclass(frozen=True)
class Applied:
    """What apply did to one object: ``applied``, ``created`` or ``kept`` (a Secret)."""

    name: str
    action: str


@dataclass(frozen=True)
class Readiness:
    """Whether one object is ready, and why not."""

    name: str
    ready: bool
    detail: str


def describe(obj: Obj) -> str:
    """``kind/name`` with the API group for non-core kinds (``service.serving.knative.dev/x``)."""
    group = obj["apiVersion"].rpartition("/")[0]
    kind = obj["kind"].lower() + (f".{group}" if group else "")
    return f"{kind}/{obj['metadata']['name']}"


def object_path(obj: Obj) -> str:
    """The REST path of an object (its namespace must be set when the kind is namespaced).

    Raises:
        KeyError: a kind that is not in :data:`KINDS`.
    """
    plural, namespaced = KINDS[(obj["apiVersion"], obj["kind"])]
    api_version = obj["apiVersion"]
    prefix = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    scope = f"/namespaces/{obj['metadata']['namespace']}" if namespaced else ""
    return f"{prefix}{scope}/{plural}/{obj['metadata']['name']}"


def fill_placeholders(secret: Obj, token: Callable[[], str] = lambda: secrets.token_hex(24)) -> Obj:
    """A copy of a Secret with each ``CHANGE_ME`` value replaced by a fresh token."""
    data = {k: token() if v == PLACEHOLDER else v for k, v in secret.get("stringData", {}).items()}
    return {**secret, "stringData": data}


class Applier:
    """Server-side applies objects through a kubernetes ``ApiClient``.

    Args:
        api: a configured ``kubernetes.client.ApiClient``.
        timeout_s: the timeout of each request.
    """

    def __init__(self, api: Any, timeout_s: float = 30.0) -> None:
        self._api = api
        self._timeout_s = timeout_s

    def apply(self, objs: Iterable[Obj], dry_run: bool = False) -> list[Applied]:
        """Apply the objects in dependency order; the namespace first.

        Args:
            objs: rendered objects, each namespaced one with its namespace set.
            dry_run: ask the server to validate only (``dryRun=All``).

        Returns:
            One :class:`Applied` per object.

        Raises:
            ApplyFailed: the server refused an object.
        """
        ordered = sorted(objs, key=sort_key)
        namespaces = sorted({o["metadata"].get("namespace") for o in ordered} - {None})
        done = [self._apply(_namespace(n), dry_run) for n in namespaces]
        for obj in ordered:
            if obj["kind"] == "Secret" and obj["apiVersion"] == "v1":
                if self._request("GET", obj, expect_missing=True) is not None:
                    done.append(Applied(describe(obj), "kept"))
                    continue
                self._apply(fill_placeholders(obj), dry_run)
                done.append(Applied(describe(obj), "created"))
            else:
                done.append(self._apply(obj, dry_run))
        return done

    def readiness(self, objs: Iterable[Obj]) -> list[Readiness]:
        """Read each object back and judge it ready from its status."""
        return [_judge(obj, self._request("GET", obj, expect_missing=True)) for obj in objs]

    def wait(self, objs: list[Obj], timeout_s: float, poll_s: float = 5.0) -> list[Readiness]:
        """Poll :meth:`readiness` until all are ready or ``timeout_s`` passed; the last report."""
        deadline = time.monotonic() + timeout_s
        while True:
            report = self.readiness(objs)
            if all(r.ready for r in report) or time.monotonic() >= deadline:
                return report
            time.sleep(poll_s)

    def _apply(self, obj: Obj, dry_run: bool) -> Applied:
        query = [("fieldManager", FIELD_MANAGER), ("force", "true")]
        if dry_run:
            query.append(("dryRun", "All"))
        self._request("PATCH", obj, query=query, body=obj)
        return Applied(describe(obj), "applied")

    def _request(
        self,
        method: str,
        obj: Obj,
        query: list[tuple[str, str]] | None = None,
        body: Obj | None = None,
        expect_missing: bool = False,
    ) -> Obj | None:
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/apply-patch+yaml"
        request = self._api.param_serialize(
            method,
            object_path(obj),
            query_params=query or [],
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        response = self._api.call_api(*request, _request_timeout=self._timeout_s)
        response.read()
        if expect_missing and response.status == 404:
            return None
        if not 200 <= response.status <= 299:
            raise ApplyFailed(obj, response.status, _message(response.data))
        result: Obj = json.loads(response.data or b"{}")
        return result


def _namespace(name: str) -> Obj:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def _message(data: bytes | None) -> str:
    try:
        return str(json.loads(data or b"{}").get("message", data))
    except ValueError:
        return (data or b"").decode(errors="replace")


def _judge(obj: Obj, live: Obj | None) -> Readiness:
    name = describe(obj)
    if live is None:
        return Readiness(name, False, "not found")
    status = live.get("status") or {}
    spec = live.get("spec") or {}
    kind = obj["kind"]
    if kind in ("Deployment", "StatefulSet"):
        want = spec.get("replicas", 1)
        have = status.get("availableReplicas" if kind == "Deployment" else "readyReplicas", 0)
        return Readiness(name, have >= want, f"{have}/{want} replicas ready")
    if kind == "Job":
        done = status.get("succeeded", 0) >= 1
        return Readiness(name, done, "succeeded" if done else f"{status.get('failed', 0)} failed")
    if "knative.dev" in obj["apiVersion"]:
        cond: Obj = next((c for c in status.get("conditions", []) if c.get("type") == "Ready"), {})
        ready = cond.get("status") == "True"
        detail = status.get("url") or status.get("address", {}).get("url") or ""
        return Readiness(name, ready, detail if ready else cond.get("message", "not ready yet"))
    return Readiness(name, True, "exists")
