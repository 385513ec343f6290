"""The per-role object-store policies in deploy/knative/base/minio-policies, checked two ways.

1. As documents: the IAM policy grammar MinIO takes, only the S3 actions and
   buckets kpipe uses, nothing that administers the store.
2. Enforced, with real S3 calls: moto's S3 server with IAM access control on
   (``/moto-api/reset-auth``) holds one user per role with the very JSON file
   the set-up Job gives MinIO attached, and each role's client (kpipe's own
   ``MinioStore`` where kpipe has the call) is allowed exactly what its role
   needs. moto runs in its own process: its authentication switch is global.

What moto does not check, so these tests cannot show (MinIO and AWS do check
both): a CopyObject's read of its *source* (moto only checks ``s3:PutObject``
on the destination; MinIO also checks ``s3:GetObject`` on the source), and
``HeadBucket`` (moto wants an ``s3:HeadBucket`` action, which does not exist in
IAM; MinIO and AWS check ``s3:ListBucket``). The policies use no ``Condition``
(moto would deny any statement that has one, as it passes no request context).
"""

from __future__ import annotations

import io
import json
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from botocore.config import Config
from minio import Minio
from minio.commonconfig import CopySource
from minio.error import InvalidResponseError, S3Error

from eventing.contract import ObjectRef
from eventing.objectstore import MinioStore, StoreRefused
from kpipe.core.settings import ObjectStoreSettings
from kpipe.deploy.render import KNATIVE_DIR

POLICY_DIR = KNATIVE_DIR / "base" / "minio-policies"
BUCKETS = ("uploads", "processed", "models")
# Every action a kpipe role may hold; anything else (admin, delete, ACLs,
# bucket configuration) is refused by the document check.
KPIPE_ACTIONS = {"s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload", "s3:ListBucket"}
ROLES = ("parts", "router", "api", "triton")

SOURCE = ObjectRef("uploads", "photos/astronaut.jpg")
INTERMEDIATE = ObjectRef("processed", "privacy-blur/_runs/r1/small/astronaut.jpg")
MODEL = ObjectRef("models", "text_detection/1/model.onnx")


def _policy(role: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((POLICY_DIR / f"{role}.json").read_text())
    return document


def _statements(role: str) -> list[dict[str, Any]]:
    return list(_policy(role)["Statement"])


def test_there_is_one_policy_per_role_and_no_other() -> None:
    assert sorted(p.stem for p in POLICY_DIR.glob("*")) == sorted(ROLES)


@pytest.mark.parametrize("role", ROLES)
def test_the_policy_is_a_minio_iam_document(role: str) -> None:
    document = _policy(role)
    assert set(document) == {"Version", "Statement"}
    assert document["Version"] == "2012-10-17"
    for statement in document["Statement"]:
        assert set(statement) == {"Sid", "Effect", "Action", "Resource"}, statement
        assert statement["Effect"] == "Allow"
        assert isinstance(statement["Action"], list)
        assert isinstance(statement["Resource"], list)


@pytest.mark.parametrize("role", ROLES)
def test_a_policy_grants_only_object_actions_on_kpipes_buckets(role: str) -> None:
    for statement in _statements(role):
        assert set(statement["Action"]) <= KPIPE_ACTIONS, statement["Sid"]
        for resource in statement["Resource"]:
            bucket, _, key = resource.removeprefix("arn:aws:s3:::").partition("/")
            assert resource.startswith("arn:aws:s3:::"), resource
            assert bucket in BUCKETS, resource
            # A bucket ARN for ListBucket, an object ARN (bucket/*) for the rest.
            if statement["Action"] == ["s3:ListBucket"]:
                assert key == ""
                assert not resource.endswith("/")
            else:
                assert key == "*", resource


def _grants(role: str, action: str) -> set[str]:
    return {r for s in _statements(role) if action in s["Action"] for r in s["Resource"]}


@pytest.mark.parametrize(
    ("role", "action", "resources"),
    [
        ("parts", "s3:GetObject", {"arn:aws:s3:::uploads/*", "arn:aws:s3:::processed/*"}),
        ("parts", "s3:PutObject", {"arn:aws:s3:::processed/*"}),
        ("parts", "s3:ListBucket", set()),
        ("router", "s3:PutObject", {"arn:aws:s3:::processed/*"}),
        ("router", "s3:ListBucket", {"arn:aws:s3:::uploads", "arn:aws:s3:::processed"}),
        ("api", "s3:PutObject", {"arn:aws:s3:::uploads/*", "arn:aws:s3:::processed/*"}),
        ("triton", "s3:GetObject", {"arn:aws:s3:::models/*"}),
        ("triton", "s3:PutObject", set()),
    ],
)
def test_each_role_gets_exactly_its_grants(role: str, action: str, resources: set[str]) -> None:
    assert _grants(role, action) == resources


def test_only_triton_may_read_the_models() -> None:
    readers = {r for r in ROLES if any("models" in g for g in _grants(r, "s3:GetObject"))}
    assert readers == {"triton"}


# -- enforced by a real S3 server ---------------------------------------------


@dataclass(frozen=True)
class Store:
    """moto's S3 server with IAM enforced, and each role's credentials on it."""

    endpoint: str
    credentials: dict[str, tuple[str, str]]

    def minio(self, role: str | None) -> Minio:
        """A minio client signing as ``role``; None: anonymous (no credentials at all)."""
        access, secret = self.credentials[role] if role else (None, None)
        return Minio(self.endpoint, access, secret, secure=False, region="us-east-1")

    def kpipe_store(self, role: str) -> MinioStore:
        """The object store exactly as kpipe's components build it, for ``role``."""
        access, secret = self.credentials[role]
        settings = ObjectStoreSettings.model_validate(
            {
                "MINIO_ENDPOINT": self.endpoint,
                "MINIO_ACCESS_KEY": access,
                "MINIO_SECRET_KEY": secret,
            }
        )
        return MinioStore(settings, attempts=0)


def _wait_listening(url: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            if time.monotonic() > deadline:
                pytest.fail(f"moto's server did not answer {url} within {timeout_s} s")
            time.sleep(0.1)


def _enforce_iam(endpoint: str) -> None:
    """From now on every request must be signed by a user its policies allow."""
    request = urllib.request.Request(
        f"http://{endpoint}/moto-api/reset-auth",
        data=b"0",
        method="POST",
        headers={"Content-Type": "text/plain"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert json.load(response)["status"] == "ok"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def store(astronaut_jpeg: bytes) -> Iterator[Store]:
    port = _free_port()
    endpoint = f"127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_listening(f"http://{endpoint}/moto-api/")
        yield _populate(endpoint, astronaut_jpeg)
    finally:
        server.terminate()
        server.wait(10)


def _populate(endpoint: str, photo: bytes) -> Store:
    """Buckets, objects and one IAM user per role, made before IAM is enforced."""
    config = Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1})
    admin = {
        "endpoint_url": f"http://{endpoint}",
        "aws_access_key_id": "setup",
        "aws_secret_access_key": "setup",
        "region_name": "us-east-1",
        "config": config,
    }
    s3 = boto3.client("s3", **admin)
    iam = boto3.client("iam", **admin)
    for bucket in BUCKETS:
        s3.create_bucket(Bucket=bucket)
    for ref, body in ((SOURCE, photo), (INTERMEDIATE, photo), (MODEL, b"\x08\x07onnx")):
        s3.put_object(Bucket=ref.bucket, Key=ref.key, Body=body)
    credentials = {}
    for role in ROLES:
        user = f"kpipe-{role}"
        iam.create_user(UserName=user)
        document = (POLICY_DIR / f"{role}.json").read_text()
        arn = iam.create_policy(PolicyName=user, PolicyDocument=document)["Policy"]["Arn"]
        iam.attach_user_policy(UserName=user, PolicyArn=arn)
        key = iam.create_access_key(UserName=user)["AccessKey"]
        credentials[role] = (key["AccessKeyId"], key["SecretAccessKey"])
    _enforce_iam(endpoint)
    return Store(endpoint, credentials)


def _refusal(call: Callable[[], object]) -> str | None:
    """None when the store did the call, else the code of its refusal."""
    try:
        call()
    except StoreRefused as exc:
        return "AccessDenied" if ": AccessDenied:" in exc.message else exc.message
    except S3Error as exc:
        return exc.code
    except InvalidResponseError as exc:
        # moto answers an unsigned request with a bare 403 page, not S3's XML.
        return "AccessDenied" if "Response code: 403" in str(exc) else str(exc)
    return None


def _with_store(store: Store, role: str, call: Callable[[MinioStore], object]) -> object:
    with store.kpipe_store(role) as kpipe_store:
        return call(kpipe_store)


# Each operation: (store, role) -> a call that performs it once.
Operation = Callable[[Store, str | None], Callable[[], object]]


def _read(ref: ObjectRef) -> Operation:
    def op(store: Store, role: str | None) -> Callable[[], object]:
        if role is None:
            return lambda: store.minio(None).get_object(ref.bucket, ref.key).read()
        return lambda: _with_store(store, role, lambda s: s.get(ref))

    return op


def _write(ref: ObjectRef) -> Operation:
    def op(store: Store, role: str | None) -> Callable[[], object]:
        if role is None:
            body = io.BytesIO(b"x")
            return lambda: store.minio(None).put_object(ref.bucket, ref.key, body, 1)
        return lambda: _with_store(
            store, role, lambda s: s.put(ref, b"\xff\xd8 forged", "image/jpeg")
        )

    return op


def _list(bucket: str) -> Operation:
    def op(store: Store, role: str | None) -> Callable[[], object]:
        if role is None:
            return lambda: list(store.minio(None).list_objects(bucket, recursive=True))
        return lambda: _with_store(store, role, lambda s: list(s.list(bucket)))

    return op


def _copy(src: ObjectRef, dst: ObjectRef) -> Operation:
    def op(store: Store, role: str | None) -> Callable[[], object]:
        client = store.minio(role)
        return lambda: client.copy_object(dst.bucket, dst.key, CopySource(src.bucket, src.key))

    return op


def _delete(ref: ObjectRef) -> Operation:
    def op(store: Store, role: str | None) -> Callable[[], object]:
        return lambda: store.minio(role).remove_object(ref.bucket, ref.key)

    return op


OUTPUT = ObjectRef("processed", "privacy-blur/photos/astronaut.jpg")
FORGED_MODEL = ObjectRef("models", "text_detection/2/model.onnx")
# (role, what, operation, allowed). Role None is the adapter: it holds no credentials
# at all, so all it could send is unsigned requests. (moto answers an unsigned
# ListObjects with a 500 instead of a 403, so that row is not here.)
MATRIX = [
    ("parts", "read an upload", _read(SOURCE), True),
    ("parts", "read an intermediate", _read(INTERMEDIATE), True),
    ("parts", "write the output bucket", _write(OUTPUT), True),
    ("parts", "overwrite an upload", _write(SOURCE), False),
    ("parts", "delete an upload", _delete(SOURCE), False),
    ("parts", "read the models", _read(MODEL), False),
    ("parts", "replace a model", _write(FORGED_MODEL), False),
    ("parts", "list the uploads", _list("uploads"), False),
    ("parts", "list the models", _list("models"), False),
    ("router", "list the uploads", _list("uploads"), True),
    ("router", "list the output bucket", _list("processed"), True),
    ("router", "read an upload", _read(SOURCE), True),
    ("router", "copy an output into place", _copy(INTERMEDIATE, OUTPUT), True),
    ("router", "overwrite an upload", _write(SOURCE), False),
    ("router", "copy into the uploads", _copy(INTERMEDIATE, SOURCE), False),
    ("router", "delete an output", _delete(OUTPUT), False),
    ("router", "read the models", _read(MODEL), False),
    ("router", "list the models", _list("models"), False),
    ("api", "upload into the uploads", _write(ObjectRef("uploads", "photos/new.jpg")), True),
    ("api", "read an output", _read(INTERMEDIATE), True),
    ("api", "list the uploads", _list("uploads"), True),
    ("api", "delete an upload", _delete(SOURCE), False),
    ("api", "read the models", _read(MODEL), False),
    ("triton", "list the models", _list("models"), True),
    ("triton", "read a model", _read(MODEL), True),
    ("triton", "replace a model", _write(FORGED_MODEL), False),
    ("triton", "read an upload", _read(SOURCE), False),
    ("triton", "list the uploads", _list("uploads"), False),
    (None, "read an upload", _read(SOURCE), False),
    (None, "write the output bucket", _write(OUTPUT), False),
    (None, "read the models", _read(MODEL), False),
]


@pytest.mark.parametrize(
    ("role", "operation", "allowed"),
    [
        pytest.param(role, op, allowed, id=f"{role or 'adapter'}-{what.replace(' ', '-')}")
        for role, what, op, allowed in MATRIX
    ],
)
def test_each_role_can_do_exactly_what_it_needs(
    store: Store, role: str | None, operation: Operation, allowed: bool
) -> None:
    assert _refusal(operation(store, role)) == (None if allowed else "AccessDenied")


def test_a_key_that_is_no_users_is_refused(store: Store) -> None:
    forged = Minio(
        store.endpoint, "kpipe-parts", "guessed-secret", secure=False, region="us-east-1"
    )
    with pytest.raises(S3Error) as refused:
        forged.get_object(SOURCE.bucket, SOURCE.key)
    assert refused.value.code == "InvalidAccessKeyId"


def test_the_policies_the_tests_enforce_are_the_ones_the_job_mounts() -> None:
    """The set-up Job reads the same files, through the kustomize ConfigMap."""
    from kpipe.deploy.render import overlay_dir, render

    config = next(
        o
        for o in render(overlay_dir("dev"))
        if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "kpipe-minio-policies"
    )
    assert config["data"] == {
        f"{role}.json": (POLICY_DIR / f"{role}.json").read_text() for role in ROLES
    }
