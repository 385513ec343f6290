"""The MinIO webhook to CloudEvent adapter."""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.testclient import TestClient

from eventing.adapter import create_adapter_app
from eventing.contract import Event, EventType
from eventing.errors import DeliveryFailed
from eventing.signing import Role, SigningKey, TrustedKeys

KEY = SigningKey.generate("adapter-test")

SAMPLE = "put-unversioned-nested-key.json"


class RecordingSink:
    """A BrokerClient fake: records events, or refuses them all."""

    def __init__(self, refuse: bool = False) -> None:
        self.events: list[Event] = []
        self.refuse = refuse

    def send(self, event: Event) -> None:
        if self.refuse:
            raise DeliveryFailed("broker down", status=503)
        self.events.append(event)


@pytest.fixture
def sample(samples_dir: Path) -> bytes:
    return (samples_dir / SAMPLE).read_bytes()


def test_sends_one_event_per_created_object(sample: bytes) -> None:
    sink = RecordingSink()
    with TestClient(create_adapter_app(sink, KEY, "s3cret")) as client:
        response = client.post("/", content=sample, headers={"Authorization": "Bearer s3cret"})
    assert (response.status_code, response.json()) == (200, {"events": 1})
    (event,) = sink.events
    assert event.type is EventType.OBJECT_CREATED
    assert event.source == "/kpipe/s3/images"
    assert event.data["key"] == "uploads/2026/03/cat photo.jpg"


def test_every_event_is_signed_with_the_adapter_key(sample: bytes) -> None:
    sink = RecordingSink()
    with TestClient(create_adapter_app(sink, KEY)) as client:
        client.post("/", content=sample)
    (event,) = sink.events
    assert event.key_id == KEY.key_id
    TrustedKeys.of({Role.ADAPTER: [KEY]}).verify(event)


def test_duplicate_notifications_give_duplicate_ids(sample: bytes) -> None:
    sink = RecordingSink()
    with TestClient(create_adapter_app(sink, KEY, None)) as client:
        client.post("/", content=sample)
        client.post("/", content=sample)
    assert sink.events[0].id == sink.events[1].id


@pytest.mark.parametrize(
    "header", [None, "Bearer wrong", "s3cret", "Basic s3cret", "Bearer s3cre", "Bearer s3cret x"]
)
def test_wrong_or_missing_token_is_401(sample: bytes, header: str | None) -> None:
    sink = RecordingSink()
    headers = {"Authorization": header} if header else {}
    with TestClient(create_adapter_app(sink, KEY, "s3cret")) as client:
        response = client.post("/", content=sample, headers=headers)
    assert response.status_code in (400, 401)
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert "s3cret" not in response.text
    assert sink.events == []


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
def test_the_bearer_scheme_is_case_insensitive(sample: bytes, scheme: str) -> None:
    sink = RecordingSink()
    with TestClient(create_adapter_app(sink, KEY, "s3cret")) as client:
        response = client.post("/", content=sample, headers={"Authorization": f"{scheme} s3cret"})
    assert response.status_code == 200


def test_malformed_body_is_400() -> None:
    with TestClient(create_adapter_app(RecordingSink(), KEY)) as client:
        response = client.post("/", content=b'{"no": "records"}')
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "malformed_notification"


def test_oversized_body_is_413() -> None:
    with TestClient(create_adapter_app(RecordingSink(), KEY, max_body=100)) as client:
        response = client.post("/", content=b"x" * 101)
    assert response.status_code == 413


def test_broker_refusal_is_503_so_minio_retries(sample: bytes) -> None:
    with TestClient(create_adapter_app(RecordingSink(refuse=True), KEY)) as client:
        response = client.post("/", content=sample)
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "delivery_failed"


def test_healthz() -> None:
    with TestClient(create_adapter_app(RecordingSink(), KEY)) as client:
        assert client.get("/healthz").status_code == 200


def test_the_adapter_does_not_start_without_the_webhook_token(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # It signs object.created, the event that starts runs: never for just anyone.
    from click.testing import CliRunner

    from eventing.adapter import main
    from eventing.signing import SigningKey

    monkeypatch.delenv("KPIPE_WEBHOOK_TOKEN", raising=False)
    monkeypatch.setenv("KPIPE_SIGNING_KEY", SigningKey.generate("adapter-test").entry())
    result = CliRunner().invoke(main, ["--sink", "http://127.0.0.1:9/"])
    assert result.exit_code != 0
    assert "KPIPE_WEBHOOK_TOKEN is not set" in result.output
