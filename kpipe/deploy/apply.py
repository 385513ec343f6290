"""Applies rendered objects with server-side apply and reports their readiness.

Every object is sent as ``PATCH`` with ``application/apply-patch+yaml``,
``fieldManager=kpipe`` and ``force=true`` (kpipe owns the fields it sets;
other managers, such as the SinkBinding webhook, keep theirs). Secrets are the
exception: one that exists is left alone, and one that does not is created
with every ``CHANGE_ME`` replaced by a random hex token, so no secret is ever
committed or overwritten. A signing Secret (one per principal:
``kpipe-router-signing``, ``kpipe-adapter-signing`` and
``kpipe-part-<service>-signing`` per part, each naming its principal in the
annotation ``kpipe.io/signing-principal``) gets a fresh Ed25519 key instead,
and the ConfigMap ``kpipe-trusted-keys``, when missing, is created trusting
the signing Secrets' public keys; when it exists it is kept, and apply
refuses, before changing anything, to go on with a signing key it does not
trust (or to generate one it would not trust). EventPolicies are applied last, and skipped
(reported, not failed) while Knative's ``authentication-oidc`` feature is off:
Knative's webhook refuses to create them until it is on.

Example:
    >>> from kubernetes import config
    >>> api = config.new_client_from_config()                   # doctest: +SKIP
    >>> Applier(api).apply(render(overlay_dir("dev")))          # doctest: +SKIP
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from kpipe.core.errors import KpipeError
from kpipe.deploy.keys import (
    PRINCIPAL_ANNOTATION,
    SIGNING_KEY_ENV,
    TRUSTED_KEYS_CONFIGMAP,
    TRUSTED_KEYS_ENV,
    PrincipalKey,
    signing_secret_name,
    trusted_entries,
    trusted_keys_value,
)
from kpipe.deploy.render import Obj, sort_key

PLACEHOLDER = "CHANGE_ME"
FIELD_MANAGER = "kpipe"
# What Knative's webhook says to an EventPolicy while authentication-oidc is off.
OIDC_OFF = "oidc-authentication feature not enabled"

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
    ("eventing.knative.dev/v1alpha1", "EventPolicy"): ("eventpolicies", True),
    ("sources.knative.dev/v1", "SinkBinding"): ("sinkbindings", True),
}


class ApplyFailed(KpipeError, RuntimeError):
    """The API server refused a request."""

    def __init__(self, obj: Obj, status: int, message: str) -> None:
        super().__init__(f"{describe(obj)}: HTTP {status}: {message}")
        self.status = status
        self.reason = message


class UntrustedSigningKey(KpipeError, RuntimeError):
    """Signing keys that the existing ``kpipe-trusted-keys`` does not trust.

    Applying would make every receiver refuse those principals' events, so
    nothing is applied. The message names every such principal and what to do.

    Attributes:
        untrusted: the keys of existing signing Secrets that are not trusted.
        missing: the principals whose signing Secret is missing (a key apply
            generated would not be trusted either).
    """

    code = "untrusted_signing_key"

    def __init__(self, untrusted: list[PrincipalKey], missing: list[str]) -> None:
        reasons = [
            f"{TRUSTED_KEYS_CONFIGMAP} does not trust the {key.principal} key {key.key_id} in "
            f"{signing_secret_name(key.principal)}: add `{key.trusted_entry()}` to "
            f"{TRUSTED_KEYS_ENV}, roll the receivers and apply again"
            for key in untrusted
        ]
        reasons += [
            f"{signing_secret_name(p)} is missing but {TRUSTED_KEYS_CONFIGMAP} exists, so a new "
            f"{p} key would not be trusted. Create {signing_secret_name(p)} yourself with a "
            f"key (`kpipe deploy signing-key {p}` prints one and its entry), add the entry to "
            f"{TRUSTED_KEYS_ENV}, roll the receivers and apply again"
            for p in missing
        ]
        super().__init__(
            "; ".join(reasons)
            + " (deploy/README.md, 'Rotating a signing key'). Nothing was applied."
        )
        self.untrusted = tuple(untrusted)
        self.missing = tuple(missing)


@dataclass(frozen=True)
class Applied:
    """What apply did to one object.

    ``applied``; ``created`` or ``kept`` for what apply generates; ``skipped``
    for an EventPolicy the cluster does not take yet (``detail`` says why).
    """

    name: str
    action: str
    detail: str = ""


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


def generate(objs: Iterable[Obj], lookup: Callable[[Obj], Obj | None]) -> dict[str, Obj | None]:
    """What apply creates of the objects it never overwrites: every Secret and the trusted keys.

    Args:
        objs: rendered objects.
        lookup: the live object of a rendered one, or None when it does not exist
            (``lambda o: None`` for a first install).

    Returns:
        By :func:`describe` name: the object to create, placeholders filled
        (random hex, or a fresh Ed25519 key in a signing Secret, or the
        public keys of the signing Secrets in the trusted keys), or None
        for one that exists and is kept.

    Raises:
        UntrustedSigningKey: the trusted keys exist and do not trust a principal's key.
        BadSigningKey: an existing signing Secret holds no valid key.
    """
    ordered = list(objs)
    out: dict[str, Obj | None] = {}
    keys: dict[str, PrincipalKey] = {}
    new: set[str] = set()
    for obj in ordered:
        if (obj["apiVersion"], obj["kind"]) != ("v1", "Secret"):
            continue
        principal = _signing_principal(obj)
        live = lookup(obj)
        if live is not None:
            out[describe(obj)] = None
            if principal is not None:
                value = _secret_value(live, SIGNING_KEY_ENV)
                keys[principal] = PrincipalKey.parse(principal, value)
        elif principal is not None:
            keys[principal] = PrincipalKey.generate(principal)
            new.add(principal)
            data = {**obj.get("stringData", {}), SIGNING_KEY_ENV: keys[principal].env_value()}
            out[describe(obj)] = {**obj, "stringData": data}
        else:
            out[describe(obj)] = fill_placeholders(obj)
    for obj in ordered:
        if not _is_trusted_keys(obj):
            continue
        live = lookup(obj)
        if live is None:
            value = trusted_keys_value(keys.values())
            out[describe(obj)] = {**obj, "data": {**obj.get("data", {}), TRUSTED_KEYS_ENV: value}}
            continue
        out[describe(obj)] = None
        trusted = trusted_entries((live.get("data") or {}).get(TRUSTED_KEYS_ENV, ""))
        untrusted = [k for k in keys.values() if k.trusted_entry() not in trusted]
        if untrusted:
            raise UntrustedSigningKey(
                [k for k in untrusted if k.principal not in new],
                [k.principal for k in untrusted if k.principal in new],
            )
    return out


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
            UntrustedSigningKey: the trusted keys exist and do not trust a
                principal's signing key (raised before anything is applied).
            BadSigningKey: an existing signing Secret holds no valid key.
        """
        ordered = sorted(objs, key=sort_key)
        generated = generate(ordered, lambda o: self._request("GET", o, expect_missing=True))
        namespaces = sorted({o["metadata"].get("namespace") for o in ordered} - {None})
        done = [self._apply(_namespace(n), dry_run) for n in namespaces]
        for obj in ordered:
            name = describe(obj)
            if obj["kind"] == "EventPolicy":
                done.append(self._apply_policy(obj, dry_run))
            elif name not in generated:
                done.append(self._apply(obj, dry_run))
            elif (filled := generated[name]) is None:
                done.append(Applied(name, "kept"))
            else:
                self._apply(filled, dry_run)
                done.append(Applied(name, "created"))
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

    def _apply_policy(self, obj: Obj, dry_run: bool) -> Applied:
        try:
            return self._apply(obj, dry_run)
        except ApplyFailed as exc:
            if exc.status == 404:
                why = "no EventPolicy kind here (Knative Eventing older than 1.15)"
            elif OIDC_OFF in exc.reason:
                why = "authentication-oidc is off; apply again once it is on"
            else:
                raise
            return Applied(describe(obj), "skipped", why)

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


def _signing_principal(secret: Obj) -> str | None:
    """The principal a rendered Secret holds the signing key of, or None for another Secret."""
    principal = (secret["metadata"].get("annotations") or {}).get(PRINCIPAL_ANNOTATION)
    return str(principal) if principal is not None else None


def _is_trusted_keys(obj: Obj) -> bool:
    return (obj["apiVersion"], obj["kind"], obj["metadata"]["name"]) == (
        "v1",
        "ConfigMap",
        TRUSTED_KEYS_CONFIGMAP,
    )


def _secret_value(secret: Obj, key: str) -> str:
    """One value of a Secret as the API server returns it (base64 under ``data``)."""
    encoded = (secret.get("data") or {}).get(key, "")
    return base64.b64decode(encoded).decode()


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
