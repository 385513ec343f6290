"""The one table from error codes to HTTP statuses, for every kpipe server."""

from __future__ import annotations

import importlib

import pytest

from eventing.errors import DeliveryFailed, MalformedEvent
from eventing.objectstore import StoreRefused, StoreUnavailable
from eventing.signing import Unauthenticated
from functions.errors import ModelNotReady, OutOfScope
from kpipe.core.auth import AuthorizationMalformed, TokenInvalid, TokenMissing
from kpipe.core.errors import KpipeError
from kpipe.core.http_body import BodyTooLarge
from kpipe.core.http_status import INTERNAL, STATUS_BY_CODE, status_for
from kpipe.local.broker.errors import BrokerBusy
from router.conditions import BadCondition
from router.errors import Conflict, Problem, RunNotFound, SpecInvalid

# Every module that defines kpipe errors a server may answer with.
ERROR_MODULES = [
    "eventing.errors",
    "kpipe.local.broker.errors",
    "eventing.oidc",
    "eventing.signing",
    "functions.catalog",
    "functions.delivery",
    "functions.errors",
    "functions.step",
    "eventing.objectstore",
    "kpipe.core.auth",
    "kpipe.client",
    "kpipe.core.http_body",
    "router.conditions",
    "router.errors",
]


def _error_classes() -> list[type[KpipeError]]:
    for module in ERROR_MODULES:
        importlib.import_module(module)
    found: list[type[KpipeError]] = []
    pending: list[type[KpipeError]] = [KpipeError]
    while pending:
        kind = pending.pop()
        found.append(kind)
        pending.extend(kind.__subclasses__())
    return found


def _own_codes() -> dict[str, list[str]]:
    """Each code, and the classes that set it themselves."""
    codes: dict[str, list[str]] = {}
    for kind in _error_classes():
        if "code" in vars(kind):
            codes.setdefault(vars(kind)["code"], []).append(kind.__qualname__)
    return codes


def test_every_code_in_the_table_is_the_code_of_an_error() -> None:
    assert set(STATUS_BY_CODE) - set(_own_codes()) == set()


def test_statuses_are_client_or_server_errors() -> None:
    assert all(400 <= status < 600 for status in STATUS_BY_CODE.values())


@pytest.mark.parametrize(
    ("exc", "status"),
    [
        (RunNotFound("r1"), 404),
        (SpecInvalid([Problem("$", "bad")]), 422),
        (Conflict("no"), 409),
        (BadCondition("x"), 422),
        (MalformedEvent("bad"), 400),
        (DeliveryFailed("down"), 503),
        (BrokerBusy("t"), 503),
        (StoreUnavailable("down"), 503),
        (ModelNotReady("m", "http://triton:8000"), 503),
        (StoreRefused("uploads/a.jpg", "AccessDenied"), 502),
        (BodyTooLarge(10), 413),
        (TokenMissing(), 401),
        (TokenInvalid(), 401),
        (AuthorizationMalformed(), 400),
        (Unauthenticated("not signed"), 401),
        (OutOfScope("not in the run"), 403),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, Exception) else None,
)
def test_status_for(exc: KpipeError, status: int) -> None:
    assert status_for(exc) == status


def test_a_subclass_without_its_own_status_takes_its_bases() -> None:
    class TinyBody(BodyTooLarge):
        code = "tiny_body"

    assert status_for(TinyBody(1)) == 413


@pytest.mark.parametrize("exc", [KpipeError("x"), ValueError("x"), KeyError("x")])
def test_anything_else_is_500(exc: BaseException) -> None:
    assert status_for(exc) == INTERNAL == 500
