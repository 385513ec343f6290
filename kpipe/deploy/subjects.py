"""The OIDC subjects the broker delivers as, generated onto each receiver at render time.

With Knative's ``authentication-oidc`` on, the broker sends each delivery of a
Trigger, to its subscriber and to its dead-letter sink alike, with a token of
a service account Knative makes for that Trigger. Its name is
``kmeta.ChildName(<trigger>, "-oidc-eventing.knative.dev-Trigger")`` in lower
case (knative/eventing ``pkg/auth/serviceaccount.go``,
``GetOIDCServiceAccountNameForResource``; the broker filter sends both kinds
of delivery with ``trigger.Status.Auth.ServiceAccountName``,
``pkg/broker/filter/filter_handler.go``), so the token's ``sub`` is
``system:serviceaccount:<namespace>:<trigger>-oidc-eventing.knative.dev-trigger``.

:func:`with_oidc_subjects` sets ``KPIPE_OIDC_SUBJECTS`` on every Knative
Service a Trigger delivers to: the subjects of exactly those Triggers, in the
namespace the render put them in. The subjects are never written by hand, so
a Trigger added, renamed or moved to another namespace changes them too. A
render without a namespace (the bare base) gets none, and a receiver whose
``KPIPE_OIDC_ISSUER`` is set then refuses to start.

Example:
    >>> trigger_subject("kpipe", "part-resize")
    'system:serviceaccount:kpipe:part-resize-oidc-eventing.knative.dev-trigger'
"""

from __future__ import annotations

import copy
import hashlib
import re
from collections.abc import Iterable
from typing import Any

Obj = dict[str, Any]

SUBJECTS_ENV = "KPIPE_OIDC_SUBJECTS"
# kmeta.ChildName's limits: a Kubernetes name is at most 63 characters, and an
# MD5 in hex takes 32 of them.
_LONGEST = 63
_HEAD = _LONGEST - 32
# The suffix of a Trigger's OIDC service account: "-oidc-<group>-<Kind>".
_TRIGGER_SUFFIX = "-oidc-eventing.knative.dev-Trigger"
_ALPHANUMERIC = re.compile(r"[a-zA-Z0-9]")
_KSVC = "serving.knative.dev/v1"
_TRIGGER = ("eventing.knative.dev/v1", "Trigger")


def child_name(parent: str, suffix: str) -> str:
    """``parent`` + ``suffix``, hashed to fit 63 characters: knative.dev/pkg ``kmeta.ChildName``.

    Example:
        >>> child_name("asdf", "-deployment")
        'asdf-deployment'
    """
    if len(parent) <= _LONGEST - len(suffix):
        return parent + suffix
    if _HEAD - len(suffix) <= 0:
        # The suffix leaves no room: hash parent and suffix together.
        digest = hashlib.md5((parent + suffix).encode(), usedforsecurity=False).hexdigest()
        name = parent[:_HEAD] + digest
        if (room := _LONGEST - len(name)) > 0:
            name += suffix[:room]
        while not _ALPHANUMERIC.fullmatch(name[-1]):
            name = name[:-1]
        return name
    digest = hashlib.md5(parent.encode(), usedforsecurity=False).hexdigest()
    return parent[: _HEAD - len(suffix)] + digest + suffix


def trigger_service_account(trigger: str) -> str:
    """The service account Knative makes for a Trigger's OIDC identity."""
    return child_name(trigger, _TRIGGER_SUFFIX).lower()


def trigger_subject(namespace: str, trigger: str) -> str:
    """The ``sub`` of the tokens the broker sends as ``trigger``."""
    return f"system:serviceaccount:{namespace}:{trigger_service_account(trigger)}"


def senders(objs: Iterable[Obj]) -> dict[str, list[Obj]]:
    """The Triggers that deliver to each Knative Service (as subscriber or dead-letter sink)."""
    out: dict[str, list[Obj]] = {}
    for obj in objs:
        if (obj["apiVersion"], obj["kind"]) != _TRIGGER:
            continue
        spec = obj["spec"]
        destinations = [spec["subscriber"], spec.get("delivery", {}).get("deadLetterSink", {})]
        for ref in (d.get("ref") for d in destinations):
            if ref and (ref["apiVersion"], ref["kind"]) == (_KSVC, "Service"):
                triggers = out.setdefault(ref["name"], [])
                if obj not in triggers:
                    triggers.append(obj)
    return out


def with_oidc_subjects(objs: Iterable[Obj]) -> list[Obj]:
    """``objs``, each Knative Service a Trigger delivers to with its ``KPIPE_OIDC_SUBJECTS``.

    The value is the comma-separated subjects of the Triggers that deliver
    to it, in their order; an entry already in the container's ``env`` is
    replaced. Objects without a namespace (the bare base) are left as they are.
    """
    out = [copy.deepcopy(o) for o in objs]
    by_receiver = senders(out)
    for obj in out:
        name = obj["metadata"]["name"]
        if (obj["apiVersion"], obj["kind"]) != (_KSVC, "Service") or name not in by_receiver:
            continue
        subjects = [
            trigger_subject(t["metadata"]["namespace"], t["metadata"]["name"])
            for t in by_receiver[name]
            if t["metadata"].get("namespace")
        ]
        if not subjects:
            continue
        for container in obj["spec"]["template"]["spec"]["containers"]:
            env = [e for e in container.get("env", []) if e["name"] != SUBJECTS_ENV]
            container["env"] = [*env, {"name": SUBJECTS_ENV, "value": ",".join(subjects)}]
    return out
