"""The local broker over real HTTP: ingress, filters, retries, replies, dead letters."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from eventing.contract import EventType, ObjectCreated
from eventing.http import to_http
from kpipe.local.broker import BrokerConfig, DeliverySpec, Trigger, create_broker_app

FAST = DeliverySpec(retry=3, backoff_policy="exponential", backoff_delay_s=0.02, timeout_s=5)
CREATED = {"type": EventType.OBJECT_CREATED.value}
OK_EMPTY = (202, b"", {})


def _event(ce_type: str = "io.kpipe.object.created", **extra: str) -> tuple[dict[str, str], bytes]:
    headers, body = to_http(ObjectCreated("uploads", "a.jpg", 1, "e").to_event("/kpipe/s3/uploads"))
    headers["ce-type"] = ce_type
    headers.update({f"ce-{k}": v for k, v in extra.items()})
    return headers, body


def _reply(ce_type: str, structured: bool = False) -> tuple[int, bytes, dict[str, str]]:
    if structured:
        body = {
            "specversion": "1.0",
            "id": "r1",
            "source": "/fn",
            "type": ce_type,
            "data": {"ok": 1},
        }
        return 200, json.dumps(body).encode(), {"content-type": "application/cloudevents+json"}
    headers = {"ce-specversion": "1.0", "ce-id": "r1", "ce-source": "/fn", "ce-type": ce_type}
    return 200, b'{"ok": 1}', {**headers, "content-type": "application/json"}


@pytest.fixture
def broker(serve: Callable[[Any], str]) -> Callable[..., str]:
    """Start a broker on a free port with the given triggers."""

    def start(*triggers: Trigger, delivery: DeliverySpec = FAST, ttl: int = 255) -> str:
        return serve(create_broker_app(BrokerConfig(tuple(triggers), delivery.over(FAST), ttl)))

    return start


def _status(http: httpx.Client, url: str) -> dict[str, Any]:
    return http.get(f"{url}/status").json()  # type: ignore[no-any-return]


@pytest.mark.parametrize("path", ["/", "/default/default"])
def test_ingress_accepts_binary_and_routes_by_filter(
    broker: Callable[..., str],
    subscriber: Any,
    http: httpx.Client,
    path: str,
    wait_for: Callable[..., None],
) -> None:
    router, other = subscriber(OK_EMPTY), subscriber(OK_EMPTY)
    url = broker(Trigger("router", router.url, CREATED), Trigger("other", other.url, {"type": "x"}))
    response = http.post(url + path, headers=_event()[0], content=_event()[1])
    assert (response.status_code, response.content) == (202, b"")
    wait_for(lambda: router.count == 1)
    got = router.received[0]
    assert got.headers["ce-type"] == "io.kpipe.object.created"
    assert got.headers["prefer"] == "reply"
    assert "ce-knativebrokerttl" not in got.headers
    assert json.loads(got.body)["key"] == "a.jpg"
    assert other.count == 0


def test_ingress_accepts_structured_generic_events(
    broker: Callable[..., str], subscriber: Any, http: httpx.Client, wait_for: Callable[..., None]
) -> None:
    sub = subscriber(OK_EMPTY)
    url = broker(Trigger("any", sub.url, {"type": "com.example.thing"}))
    body = {
        "specversion": "1.0",
        "id": "1",
        "source": "/x",
        "type": "com.example.thing",
        "data": "hi",
    }
    response = http.post(
        url, content=json.dumps(body), headers={"content-type": "application/cloudevents+json"}
    )
    assert response.status_code == 202
    wait_for(lambda: sub.count == 1)
    assert sub.received[0].headers["ce-source"] == "/x"
    assert sub.received[0].body == b'"hi"'


@pytest.mark.parametrize(
    ("headers", "body"),
    [
        ({"content-type": "application/json"}, b'{"a": 1}'),
        ({"ce-specversion": "1.0", "ce-type": "t", "ce-source": "/s"}, b""),
        ({"ce-specversion": "0.3", "ce-type": "t", "ce-source": "/s", "ce-id": "1"}, b""),
        (
            {
                "ce-specversion": "1.0",
                "ce-type": "t",
                "ce-source": "/s",
                "ce-id": "1",
                "content-type": "application/json",
            },
            b"{bad json",
        ),
        ({"content-type": "application/cloudevents+json"}, b'{"specversion": "1.0"}'),
    ],
)
def test_ingress_refuses_malformed_events(
    broker: Callable[..., str], http: httpx.Client, headers: dict[str, str], body: bytes
) -> None:
    url = broker()
    response = http.post(url, headers=headers, content=body)
    assert response.status_code == 400
    assert _status(http, url)["counters"]["rejected_malformed"] == 1


def test_ingress_refuses_oversized_events(serve: Callable[[Any], str], http: httpx.Client) -> None:
    url = serve(create_broker_app(BrokerConfig(), max_event_bytes=64))
    headers, _ = _event()
    assert http.post(url, headers=headers, content=b"x" * 65).status_code == 413
    assert http.get(f"{url}/healthz").status_code == 200


@pytest.mark.parametrize("failure", [503, 500, 429, 404, 409, 408])
def test_retries_with_growing_backoff_then_delivers(
    broker: Callable[..., str],
    subscriber: Any,
    http: httpx.Client,
    failure: int,
    wait_for: Callable[..., None],
) -> None:
    sub = subscriber((failure, b"", {}), (failure, b"", {}), OK_EMPTY)
    url = broker(Trigger("t", sub.url, CREATED))
    http.post(url, headers=_event()[0], content=_event()[1])
    wait_for(lambda: sub.count == 3 and _status(http, url)["counters"]["delivered"] == 1)
    times = [r.at for r in sub.received]
    assert times[1] - times[0] >= 0.04 * 0.9  # backoffDelay * 2**1
    assert times[2] - times[1] >= 0.08 * 0.9  # backoffDelay * 2**2
    assert len({r.headers["ce-id"] for r in sub.received}) == 1


@pytest.mark.parametrize(
    ("answer", "attempts", "code", "data"),
    [
        ((400, b"bad event", {}), 1, "400", b"bad event"),
        ((403, b"", {}), 1, "403", None),
        ((503, b"x" * 2000, {}), 4, "503", b"x" * 1024),
        ((200, b"OK", {"content-type": "text/plain"}), 4, "502", b"OK"),
    ],
)
def test_failed_events_go_to_the_dead_letter_sink(
    broker: Callable[..., str],
    subscriber: Any,
    http: httpx.Client,
    answer: tuple[int, bytes, dict[str, str]],
    attempts: int,
    code: str,
    data: bytes | None,
    wait_for: Callable[..., None],
) -> None:
    sub, dls = subscriber(answer), subscriber(OK_EMPTY)
    url = broker(Trigger("t", sub.url, CREATED, delivery=DeliverySpec(dead_letter_sink=dls.url)))
    http.post(url, headers=_event()[0], content=_event()[1])
    wait_for(lambda: dls.count == 1)
    assert sub.count == attempts
    headers = dls.received[0].headers
    assert headers["ce-knativeerrordest"] == sub.url
    assert headers["ce-knativeerrorcode"] == code
    if data is None:
        assert "ce-knativeerrordata" not in headers
    else:
        assert base64.b64decode(headers["ce-knativeerrordata"]) == data
    assert json.loads(dls.received[0].body)["key"] == "a.jpg"
    wait_for(lambda: _status(http, url)["counters"]["dead_lettered"] == 1)


def test_unreachable_subscriber_without_dead_letter_sink_is_dropped(
    broker: Callable[..., str],
    http: httpx.Client,
    free_port: Callable[[], int],
    wait_for: Callable[..., None],
) -> None:
    url = broker(Trigger("t", f"http://127.0.0.1:{free_port()}/", CREATED))
    http.post(url, headers=_event()[0], content=_event()[1])
    wait_for(lambda: _status(http, url)["counters"]["dropped"] == 1)
    assert _status(http, url)["counters"]["retries"] == 3


@pytest.mark.parametrize("structured", [False, True])
def test_reply_events_go_back_into_the_broker(
    broker: Callable[..., str],
    subscriber: Any,
    http: httpx.Client,
    structured: bool,
    wait_for: Callable[..., None],
) -> None:
    fn = subscriber(_reply("io.kpipe.step.completed", structured))
    router = subscriber(OK_EMPTY)
    url = broker(
        Trigger("fn", fn.url, CREATED),
        Trigger("router", router.url, {"type": "io.kpipe.step.completed"}),
    )
    http.post(url, headers=_event()[0], content=_event()[1])
    wait_for(lambda: router.count == 1)
    assert router.received[0].headers["ce-source"] == "/fn"
    assert json.loads(router.received[0].body) == {"ok": 1}
    assert _status(http, url)["counters"]["replies"] == 1


def test_a_202_is_never_a_reply(
    broker: Callable[..., str], subscriber: Any, http: httpx.Client, wait_for: Callable[..., None]
) -> None:
    _, body, headers = _reply("io.kpipe.step.completed")
    fn, router = subscriber((202, body, headers)), subscriber(OK_EMPTY)
    url = broker(
        Trigger("fn", fn.url, CREATED),
        Trigger("router", router.url, {"type": "io.kpipe.step.completed"}),
    )
    http.post(url, headers=_event()[0], content=_event()[1])
    wait_for(lambda: _status(http, url)["counters"]["delivered"] == 1)
    assert router.count == 0


def test_the_ttl_stops_a_reply_loop(
    broker: Callable[..., str], subscriber: Any, http: httpx.Client, wait_for: Callable[..., None]
) -> None:
    loop = subscriber(_reply("io.kpipe.object.created"))
    url = broker(Trigger("loop", loop.url, CREATED), ttl=5)
    http.post(url, headers=_event()[0], content=_event()[1])
    wait_for(lambda: _status(http, url)["counters"].get("dropped_ttl") == 1)
    assert loop.count == 5


def test_an_incoming_ttl_is_honoured(
    broker: Callable[..., str], subscriber: Any, http: httpx.Client, wait_for: Callable[..., None]
) -> None:
    loop = subscriber(_reply("io.kpipe.object.created"))
    url = broker(Trigger("loop", loop.url, CREATED))
    headers, body = _event(knativebrokerttl="2")
    http.post(url, headers=headers, content=body)
    wait_for(lambda: _status(http, url)["counters"].get("dropped_ttl") == 1)
    assert loop.count == 2


def test_status_reports_queues(
    broker: Callable[..., str], subscriber: Any, http: httpx.Client
) -> None:
    sub = subscriber(OK_EMPTY)
    url = broker(Trigger("t", sub.url, CREATED))
    status = _status(http, url)
    assert status["triggers"]["t"] == {"subscriber": sub.url, "queued": 0, "in_flight": 0}
    assert status["counters"]["received"] == 0
