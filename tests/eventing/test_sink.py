"""The broker client: binary mode, kpipe's retry policy, DeliveryFailed."""

from __future__ import annotations

import httpx
import pytest

from eventing.contract import ObjectCreated
from eventing.errors import DeliveryFailed
from eventing.sink import HttpBrokerClient
from kpipe.core.retry import Backoff
from kpipe.core.settings import EventSettings

EVENT = ObjectCreated("uploads", "a.jpg", 1, "e").to_event("/kpipe/s3/uploads")


def _client(
    answers: list[int | Exception], sleeps: list[float]
) -> tuple[HttpBrokerClient, list[httpx.Request]]:
    requests: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        answer = answers[min(len(requests), len(answers)) - 1]
        if isinstance(answer, Exception):
            raise answer
        return httpx.Response(answer)

    client = HttpBrokerClient(
        "http://broker.test/",
        retries=3,
        backoff=Backoff(initial_s=0.1, factor=2, max_s=0.3, jitter=0),
        transport=httpx.MockTransport(handle),
        sleep=sleeps.append,
    )
    return client, requests


@pytest.mark.parametrize(
    "failure",
    [503, 500, 429, 404, 408, 409, httpx.ConnectError("refused"), httpx.ReadTimeout("slow")],
)
def test_retries_transient_failures_then_succeeds(failure: int | Exception) -> None:
    sleeps: list[float] = []
    client, requests = _client([failure, failure, 202], sleeps)
    with client:
        client.send(EVENT)
    assert len(requests) == 3
    assert sleeps == [0.1, 0.2]


def test_posts_binary_mode() -> None:
    client, requests = _client([202], [])
    with client:
        client.send(EVENT)
    request = requests[0]
    assert request.headers["ce-type"] == "io.kpipe.object.created"
    assert request.headers["ce-id"] == EVENT.id
    assert request.headers["content-type"] == "application/json"


@pytest.mark.parametrize("status", [400, 401, 403, 413])
def test_does_not_retry_a_refusal(status: int) -> None:
    client, requests = _client([status], [])
    with client, pytest.raises(DeliveryFailed) as failed:
        client.send(EVENT)
    assert (failed.value.status, len(requests)) == (status, 1)


def test_gives_up_after_the_retries_with_capped_backoff() -> None:
    sleeps: list[float] = []
    client, requests = _client([503], sleeps)
    with client, pytest.raises(DeliveryFailed, match="did not accept") as failed:
        client.send(EVENT)
    assert failed.value.status == 503
    assert len(requests) == 4
    assert sleeps == [0.1, 0.2, 0.3]


def test_needs_k_sink() -> None:
    with pytest.raises(DeliveryFailed, match="K_SINK"):
        HttpBrokerClient.from_settings(EventSettings(K_SINK=None))


def test_built_from_settings() -> None:
    settings = EventSettings(K_SINK="http://127.0.0.1:1/", KPIPE_SINK_TIMEOUT_S=2.5)
    with HttpBrokerClient.from_settings(settings, retries=0) as client:
        assert (client.url, client.retries) == ("http://127.0.0.1:1/", 0)
        with pytest.raises(DeliveryFailed) as failed:
            client.send(EVENT)  # nothing listens on port 1
        assert failed.value.status is None


def test_each_retry_is_logged_with_the_event_and_the_answer(
    caplog: pytest.LogCaptureFixture,
) -> None:
    client, _ = _client([503, 202], [])
    with client, caplog.at_level("WARNING", logger="eventing.sink"):
        client.send(EVENT)
    [record] = caplog.records
    assert EVENT.id in record.getMessage()
    assert "http://broker.test/" in record.getMessage()
    assert "attempt 1 failed (503" in record.getMessage()


def test_the_default_backoff_is_jittered_and_capped() -> None:
    sleeps: list[float] = []
    requests: list[httpx.Request] = []

    def refuse(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(503)

    client = HttpBrokerClient(
        "http://broker.test/", retries=3, transport=httpx.MockTransport(refuse), sleep=sleeps.append
    )
    with client, pytest.raises(DeliveryFailed):
        client.send(EVENT)
    ceilings = [client.backoff.ceiling(n) for n in range(3)]
    assert len(requests) == 4
    assert all(
        (1 - client.backoff.jitter) * c <= s <= c for s, c in zip(sleeps, ceilings, strict=True)
    )
