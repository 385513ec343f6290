"""Browser form uploads (POST Object) with a presigned POST policy, V4 and V2."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from botocore.config import Config

from kpipe.local.s3.server import S3Server
from tests.kpipe.local.s3.conftest import NOTIFIED, boto

pytestmark = pytest.mark.slow


@pytest.fixture(params=["s3v4", "s3"])
def signer(store: S3Server, request: pytest.FixtureRequest) -> Any:
    """boto3 signing POST policies with SigV4, and with the older V2 (what its default gives)."""
    return boto(store, Config(signature_version=request.param))


def _post(form: dict[str, Any], data: bytes = b"jpeg", name: str = "photo.jpg") -> httpx.Response:
    return httpx.post(form["url"], data=form["fields"], files={"file": (name, data, "image/jpeg")})


def test_a_form_upload_is_stored_and_notified_once(
    signer: Any, s3: Any, notified: Callable[[], list[str]]
) -> None:
    form = signer.generate_presigned_post(NOTIFIED, "forms/photo.jpg")
    answer = _post(form)
    assert answer.status_code == 204, answer.text
    assert answer.headers["etag"] == f'"{hashlib.md5(b"jpeg").hexdigest()}"'
    assert s3.get_object(Bucket=NOTIFIED, Key="forms/photo.jpg")["Body"].read() == b"jpeg"
    assert notified() == ["forms/photo.jpg"]


def test_filename_fills_the_key(signer: Any, s3: Any) -> None:
    form = signer.generate_presigned_post(
        NOTIFIED,
        "forms/${filename}",
        Conditions=[["starts-with", "$key", "forms/"]],
    )
    assert _post(form, name="cat.jpg").status_code == 204
    assert s3.get_object(Bucket=NOTIFIED, Key="forms/cat.jpg")["Body"].read() == b"jpeg"


def test_success_action_status_201_answers_with_the_location(signer: Any) -> None:
    form = signer.generate_presigned_post(
        NOTIFIED,
        "k.jpg",
        Fields={"success_action_status": "201"},
        Conditions=[{"success_action_status": "201"}],
    )
    answer = _post(form)
    assert answer.status_code == 201
    assert b"<Key>k.jpg</Key>" in answer.content


def test_metadata_and_type_fields_are_kept(signer: Any, s3: Any) -> None:
    fields = {"Content-Type": "image/png", "x-amz-meta-camera": "X100"}
    form = signer.generate_presigned_post(
        NOTIFIED, "m.png", Fields=fields, Conditions=[{k: v} for k, v in fields.items()]
    )
    assert _post(form).status_code == 204
    head = s3.head_object(Bucket=NOTIFIED, Key="m.png")
    assert (head["ContentType"], head["Metadata"]) == ("image/png", {"camera": "X100"})


def test_a_key_outside_the_policy_is_refused(
    signer: Any, s3: Any, notified: Callable[[], list[str]]
) -> None:
    form = signer.generate_presigned_post(NOTIFIED, "allowed.jpg")
    form["fields"]["key"] = "other.jpg"
    answer = _post(form)
    assert answer.status_code == 403
    assert b"<Code>AccessDenied</Code>" in answer.content
    assert notified() == []


def test_a_forged_signature_is_refused(signer: Any) -> None:
    form = signer.generate_presigned_post(NOTIFIED, "k.jpg")
    field = "x-amz-signature" if "x-amz-signature" in form["fields"] else "signature"
    form["fields"][field] = form["fields"][field][::-1]
    assert _post(form).status_code == 403


def test_an_expired_policy_is_refused(signer: Any) -> None:
    form = signer.generate_presigned_post(NOTIFIED, "k.jpg", ExpiresIn=-10)
    assert _post(form).status_code == 403


def test_a_file_over_the_content_length_range_is_refused(signer: Any, s3: Any) -> None:
    form = signer.generate_presigned_post(
        NOTIFIED, "big.jpg", Conditions=[["content-length-range", 1, 10]]
    )
    answer = _post(form, data=b"x" * 11)
    assert answer.status_code == 400
    assert b"<Code>EntityTooLarge</Code>" in answer.content


@pytest.mark.parametrize(
    "body",
    [b"", b"not a form", b"--x\r\nContent-Disposition: form-data; name=key\r\n\r\nk\r\n--x--\r\n"],
)
def test_a_malformed_form_is_a_400(store: S3Server, body: bytes) -> None:
    answer = httpx.post(
        f"http://{store.endpoint}/{NOTIFIED}",
        content=body,
        headers={"content-type": "multipart/form-data; boundary=x"},
    )
    assert answer.status_code == 400
    assert b"<Error>" in answer.content


@pytest.mark.parametrize(
    "conditions",
    [
        [["content-length-range", "one", "ten"]],
        [["nonsense", "$key", "x"]],
        ["not a condition"],
    ],
)
def test_a_malformed_policy_is_a_400(signer: Any, conditions: list[Any]) -> None:
    form = signer.generate_presigned_post(NOTIFIED, "k.jpg", Conditions=conditions)
    answer = _post(form)
    assert answer.status_code == 400
    assert b"<Code>MalformedPOSTRequest</Code>" in answer.content


def test_a_form_to_a_missing_bucket_is_a_404(signer: Any) -> None:
    form = signer.generate_presigned_post("no-such-bucket", "k.jpg")
    answer = _post(form)
    assert answer.status_code == 404
    assert b"<Code>NoSuchBucket</Code>" in answer.content


@pytest.mark.parametrize(
    ("dropped", "code"), [("key", "InvalidArgument"), ("signature", "InvalidArgument")]
)
def test_a_form_without_its_key_or_signature_is_a_400(signer: Any, dropped: str, code: str) -> None:
    form = signer.generate_presigned_post(NOTIFIED, "k.jpg")
    fields = form["fields"]
    del fields[dropped if dropped in fields else f"x-amz-{dropped}"]
    answer = _post(form)
    assert answer.status_code == 400
    assert f"<Code>{code}</Code>".encode() in answer.content
