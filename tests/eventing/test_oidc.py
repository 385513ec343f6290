"""The OIDC verifier against a real local issuer: discovery document and JWKS over HTTP(S).

The issuer here plays the Kubernetes API server's service-account issuer: it
serves ``/.well-known/openid-configuration`` and ``/openid/v1/jwks`` with RSA
keys the test generates, and the tokens are signed with them as the API server
signs the tokens Knative's broker sends.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import ipaddress
import json
import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from pydantic import ValidationError

from eventing.oidc import (
    IssuerUnavailable,
    OIDCSettings,
    OIDCVerifier,
    SubjectNotAllowed,
    TokenRejected,
)

AUDIENCE = "kpipe/resize"
# The service account Knative makes for the Trigger part-resize (pkg/auth/serviceaccount.go).
SUBJECT = "system:serviceaccount:kpipe:part-resize-oidc-eventing.knative.dev-trigger"
KID = "key-1"
JWKS_PATH = "/openid/v1/jwks"
DISCOVERY_PATH = "/.well-known/openid-configuration"


@dataclass
class Issuer:
    """A real HTTP(S) server standing in for the cluster's service-account issuer."""

    keys: list[dict[str, Any]]
    # When set, discovery and JWKS answer 401 without this bearer token (as Kubernetes does).
    required_token: str | None = None
    # The issuer the discovery document names (default: the server's own URL).
    claimed_issuer: str | None = None
    hits: Counter[str] = field(default_factory=Counter)
    url: str = ""

    def handler(self) -> type[BaseHTTPRequestHandler]:
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                issuer.hits[self.path] += 1
                wanted = issuer.required_token
                if wanted and self.headers.get("authorization") != f"Bearer {wanted}":
                    self._json(401, {"message": "Unauthorized"})
                elif self.path == DISCOVERY_PATH:
                    document = {
                        "issuer": issuer.claimed_issuer or issuer.url,
                        "jwks_uri": issuer.url + JWKS_PATH,
                        "id_token_signing_alg_values_supported": ["RS256"],
                    }
                    self._json(200, document)
                elif self.path == JWKS_PATH:
                    self._json(200, {"keys": issuer.keys})
                else:
                    self._json(404, {"message": "not found"})

            def _json(self, code: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler


@contextmanager
def serving(issuer: Issuer, port: int, tls: ssl.SSLContext | None = None) -> Iterator[Issuer]:
    server = ThreadingHTTPServer(("127.0.0.1", port), issuer.handler())
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    issuer.url = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield issuer
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def rsa_jwk(key: rsa.RSAPrivateKey, kid: str) -> dict[str, Any]:
    jwk: dict[str, Any] = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    return {**jwk, "kid": kid, "alg": "RS256", "use": "sig"}


@pytest.fixture(scope="module")
def signing_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def other_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def issuer(signing_key: rsa.RSAPrivateKey, free_port: Callable[[], int]) -> Iterator[Issuer]:
    with serving(Issuer(keys=[rsa_jwk(signing_key, KID)]), free_port()) as running:
        yield running


def settings(issuer: Issuer, **overrides: Any) -> OIDCSettings:
    values: dict[str, Any] = {
        "KPIPE_OIDC_ISSUER": issuer.url,
        "KPIPE_OIDC_AUDIENCE": AUDIENCE,
        "KPIPE_OIDC_SUBJECTS": SUBJECT,
    }
    values |= overrides
    return OIDCSettings.model_validate(values)


def claims(issuer: Issuer, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {"iss": issuer.url, "aud": [AUDIENCE], "sub": SUBJECT, "iat": now, "exp": now + 600}
    return {k: v for k, v in (base | overrides).items() if v is not None}


def token(key: Any, payload: dict[str, Any], kid: str | None = KID, alg: str = "RS256") -> str:
    headers = {"kid": kid} if kid is not None else {}
    return jwt.encode(payload, key, algorithm=alg, headers=headers)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned_token(header: dict[str, Any], payload: dict[str, Any], key: bytes | None) -> str:
    """A JWT built by hand: HMAC-SHA256 over it with ``key``, or no signature at all."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(payload).encode())}"
    if key is None:
        return signing_input + "."
    mac = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(mac)}"


def test_a_token_from_the_issuer_for_this_audience_is_accepted(
    issuer: Issuer, signing_key: rsa.RSAPrivateKey
) -> None:
    verifier = OIDCVerifier(settings(issuer))
    got = verifier.verify(f"Bearer {token(signing_key, claims(issuer))}")
    assert got["sub"] == SUBJECT
    assert got["aud"] == [AUDIENCE]
    # The JWKS came from the discovery document's jwks_uri.
    assert issuer.hits[DISCOVERY_PATH] == 1
    assert issuer.hits[JWKS_PATH] == 1


def test_the_keys_are_cached_between_requests(
    issuer: Issuer, signing_key: rsa.RSAPrivateKey
) -> None:
    verifier = OIDCVerifier(settings(issuer))
    for _ in range(3):
        verifier.verify(f"Bearer {token(signing_key, claims(issuer))}")
    assert issuer.hits == Counter({DISCOVERY_PATH: 1, JWKS_PATH: 1})


def test_an_explicit_jwks_url_skips_discovery(
    issuer: Issuer, signing_key: rsa.RSAPrivateKey
) -> None:
    verifier = OIDCVerifier(settings(issuer, KPIPE_OIDC_JWKS_URL=issuer.url + JWKS_PATH))
    verifier.verify(f"Bearer {token(signing_key, claims(issuer))}")
    assert issuer.hits == Counter({JWKS_PATH: 1})


@pytest.mark.parametrize(
    "authorization",
    [
        pytest.param(None, id="no-header"),
        pytest.param("", id="empty"),
        pytest.param("Bearer", id="bearer-without-token"),
        pytest.param("Bearer   ", id="bearer-blank"),
        pytest.param("Basic a3BpcGU6a3BpcGU=", id="basic"),
        pytest.param("Bearer not-a-jwt", id="garbage"),
    ],
)
def test_a_request_without_a_bearer_jwt_is_refused(
    issuer: Issuer, authorization: str | None
) -> None:
    with pytest.raises(TokenRejected):
        OIDCVerifier(settings(issuer)).verify(authorization)
    # Refused before any key was fetched.
    assert issuer.hits == Counter()


def _wrong_audience(issuer: Issuer, key: rsa.RSAPrivateKey, other: rsa.RSAPrivateKey) -> str:
    return token(key, claims(issuer, aud=["kpipe/blur"]))


def _wrong_issuer(issuer: Issuer, key: rsa.RSAPrivateKey, other: rsa.RSAPrivateKey) -> str:
    return token(key, claims(issuer, iss="https://evil.example.com"))


def _expired(issuer: Issuer, key: rsa.RSAPrivateKey, other: rsa.RSAPrivateKey) -> str:
    now = int(time.time())
    return token(key, claims(issuer, iat=now - 7200, exp=now - 3600))


def _not_yet_issued(issuer: Issuer, key: rsa.RSAPrivateKey, other: rsa.RSAPrivateKey) -> str:
    now = int(time.time())
    return token(key, claims(issuer, iat=now + 3600, exp=now + 7200))


def _no_expiry(issuer: Issuer, key: rsa.RSAPrivateKey, other: rsa.RSAPrivateKey) -> str:
    return token(key, claims(issuer, exp=None))


def _no_subject(issuer: Issuer, key: rsa.RSAPrivateKey, other: rsa.RSAPrivateKey) -> str:
    return token(key, claims(issuer, sub=None))


def _wrong_key(issuer: Issuer, key: rsa.RSAPrivateKey, other: rsa.RSAPrivateKey) -> str:
    # Signed by a key the issuer never published, under the published key's id.
    return token(other, claims(issuer))


def _unknown_kid(issuer: Issuer, key: rsa.RSAPrivateKey, other: rsa.RSAPrivateKey) -> str:
    return token(other, claims(issuer), kid="key-2")


def _no_kid(issuer: Issuer, key: rsa.RSAPrivateKey, other: rsa.RSAPrivateKey) -> str:
    return token(key, claims(issuer), kid=None)


def _alg_none(issuer: Issuer, key: rsa.RSAPrivateKey, other: rsa.RSAPrivateKey) -> str:
    return unsigned_token({"alg": "none", "typ": "JWT", "kid": KID}, claims(issuer), None)


def _hs256_with_the_public_key(
    issuer: Issuer, key: rsa.RSAPrivateKey, other: rsa.RSAPrivateKey
) -> str:
    # The classic confusion: the published RSA public key used as an HMAC secret.
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return unsigned_token({"alg": "HS256", "typ": "JWT", "kid": KID}, claims(issuer), public_pem)


def _tampered(issuer: Issuer, key: rsa.RSAPrivateKey, other: rsa.RSAPrivateKey) -> str:
    header, _, signature = token(key, claims(issuer)).split(".")
    payload = _b64(json.dumps(claims(issuer, sub="system:serviceaccount:kpipe:evil")).encode())
    return f"{header}.{payload}.{signature}"


def _ps256_header_on_an_rs256_key(
    issuer: Issuer, key: rsa.RSAPrivateKey, other: rsa.RSAPrivateKey
) -> str:
    return token(key, claims(issuer), alg="PS256")


@pytest.mark.parametrize(
    ("forge", "reason"),
    [
        pytest.param(_wrong_audience, "audience", id="wrong-audience"),
        pytest.param(_wrong_issuer, "issuer", id="wrong-issuer"),
        pytest.param(_expired, "expired", id="expired"),
        pytest.param(_not_yet_issued, "not yet valid", id="issued-in-the-future"),
        pytest.param(_no_expiry, "exp", id="no-expiry"),
        pytest.param(_no_subject, "sub", id="no-subject"),
        pytest.param(_wrong_key, "Signature verification failed", id="wrong-key"),
        pytest.param(_unknown_kid, "unknown key id", id="unknown-kid"),
        pytest.param(_no_kid, "names no key", id="no-kid"),
        pytest.param(_alg_none, "'none' is not accepted", id="alg-none"),
        pytest.param(_hs256_with_the_public_key, "'HS256' is not accepted", id="hs256-public-key"),
        pytest.param(_tampered, "Signature verification failed", id="tampered-claims"),
        pytest.param(_ps256_header_on_an_rs256_key, "RS256 key", id="alg-swap-ps256"),
    ],
)
def test_a_forged_or_misdirected_token_is_refused(
    issuer: Issuer,
    signing_key: rsa.RSAPrivateKey,
    other_key: rsa.RSAPrivateKey,
    forge: Callable[[Issuer, rsa.RSAPrivateKey, rsa.RSAPrivateKey], str],
    reason: str,
) -> None:
    verifier = OIDCVerifier(settings(issuer))
    with pytest.raises(TokenRejected, match=f"(?i){reason}") as refused:
        verifier.verify(f"Bearer {forge(issuer, signing_key, other_key)}")
    # The reason is for the log and the 401; the token itself never appears in it.
    assert "Bearer" not in refused.value.reason


def test_unknown_key_ids_cannot_make_the_verifier_hammer_the_issuer(
    issuer: Issuer, other_key: rsa.RSAPrivateKey
) -> None:
    verifier = OIDCVerifier(settings(issuer))
    for n in range(5):
        with pytest.raises(TokenRejected, match="unknown key id"):
            verifier.verify(f"Bearer {token(other_key, claims(issuer), kid=f'forged-{n}')}")
    # One fetch, then the refresh cooldown (30 s by default) holds back the rest.
    assert issuer.hits[JWKS_PATH] == 1


def test_a_rotated_key_is_fetched_when_a_token_names_it(
    issuer: Issuer, signing_key: rsa.RSAPrivateKey, other_key: rsa.RSAPrivateKey
) -> None:
    verifier = OIDCVerifier(settings(issuer, KPIPE_OIDC_JWKS_COOLDOWN_S=0))
    verifier.verify(f"Bearer {token(signing_key, claims(issuer))}")
    issuer.keys.append(rsa_jwk(other_key, "key-2"))
    got = verifier.verify(f"Bearer {token(other_key, claims(issuer), kid='key-2')}")
    assert got["sub"] == SUBJECT
    assert issuer.hits[JWKS_PATH] == 2


def test_an_ec_key_from_the_jwks_verifies_es256_tokens(
    free_port: Callable[[], int],
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    jwk = {**ECAlgorithm.to_jwk(key.public_key(), as_dict=True), "kid": "ec-1", "use": "sig"}
    with serving(Issuer(keys=[jwk]), free_port()) as running:
        verifier = OIDCVerifier(settings(running))
        got = verifier.verify(f"Bearer {token(key, claims(running), kid='ec-1', alg='ES256')}")
    assert got["sub"] == SUBJECT


@pytest.mark.parametrize(
    ("patterns", "allowed"),
    [
        pytest.param(SUBJECT, True, id="exact"),
        pytest.param("system:serviceaccount:kpipe:part-resize-*", True, id="prefix"),
        pytest.param("system:serviceaccount:other:*, " + SUBJECT, True, id="second-of-two"),
        pytest.param("system:serviceaccount:other:*", False, id="other-namespace"),
        pytest.param(SUBJECT + "-x", False, id="longer-name"),
    ],
)
def test_subjects_limit_who_may_send(
    issuer: Issuer, signing_key: rsa.RSAPrivateKey, patterns: str, allowed: bool
) -> None:
    verifier = OIDCVerifier(settings(issuer, KPIPE_OIDC_SUBJECTS=patterns))
    header = f"Bearer {token(signing_key, claims(issuer))}"
    if allowed:
        assert verifier.verify(header)["sub"] == SUBJECT
    else:
        with pytest.raises(SubjectNotAllowed) as refused:
            verifier.verify(header)
        assert refused.value.subject == SUBJECT


def test_a_token_for_this_audience_from_another_service_account_is_refused(
    issuer: Issuer, signing_key: rsa.RSAPrivateKey
) -> None:
    """Any pod may ask the API server for a token of any audience: the subject decides."""
    verifier = OIDCVerifier(settings(issuer))
    other = "system:serviceaccount:kpipe:default"
    header = f"Bearer {token(signing_key, claims(issuer, sub=other))}"
    with pytest.raises(SubjectNotAllowed) as refused:
        verifier.verify(header)
    assert refused.value.subject == other


def test_any_subject_is_accepted_only_when_said(
    issuer: Issuer, signing_key: rsa.RSAPrivateKey
) -> None:
    verifier = OIDCVerifier(settings(issuer, KPIPE_OIDC_SUBJECTS="", KPIPE_OIDC_ANY_SUBJECT="true"))
    other = "system:serviceaccount:kpipe:default"
    assert verifier.verify(f"Bearer {token(signing_key, claims(issuer, sub=other))}")["sub"] == (
        other
    )


def test_a_verifier_without_subjects_refuses_to_exist() -> None:
    """Settings made without validation cannot open the door either."""
    unchecked = OIDCSettings.model_construct(
        issuer="https://kubernetes.default.svc", audience=AUDIENCE, subjects="", any_subject=False
    )
    with pytest.raises(ValueError, match="KPIPE_OIDC_SUBJECTS or KPIPE_OIDC_ANY_SUBJECT"):
        OIDCVerifier(unchecked)


def test_an_unreachable_issuer_is_unavailable_not_unauthorized(
    signing_key: rsa.RSAPrivateKey, free_port: Callable[[], int]
) -> None:
    nobody = Issuer(keys=[], url=f"http://127.0.0.1:{free_port()}")
    verifier = OIDCVerifier(settings(nobody, KPIPE_OIDC_TIMEOUT_S=2))
    with pytest.raises(IssuerUnavailable) as unavailable:
        verifier.verify(f"Bearer {token(signing_key, claims(nobody))}")
    assert unavailable.value.url == nobody.url + DISCOVERY_PATH


def test_a_discovery_document_naming_another_issuer_is_not_trusted(
    signing_key: rsa.RSAPrivateKey, free_port: Callable[[], int]
) -> None:
    impostor = Issuer(keys=[rsa_jwk(signing_key, KID)], claimed_issuer="https://elsewhere")
    with serving(impostor, free_port()) as running:
        verifier = OIDCVerifier(settings(running))
        with pytest.raises(IssuerUnavailable, match="names issuer 'https://elsewhere'"):
            verifier.verify(f"Bearer {token(signing_key, claims(running))}")
        assert running.hits[JWKS_PATH] == 0


def test_a_jwks_without_signing_keys_is_unavailable(
    signing_key: rsa.RSAPrivateKey, free_port: Callable[[], int]
) -> None:
    with serving(Issuer(keys=[]), free_port()) as running:
        verifier = OIDCVerifier(settings(running))
        with pytest.raises(IssuerUnavailable, match="did not contain any keys"):
            verifier.verify(f"Bearer {token(signing_key, claims(running))}")


@dataclass(frozen=True)
class Tls:
    server: ssl.SSLContext
    ca_file: Path


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Tls:
    """A CA, and a certificate it signed for 127.0.0.1 (as a cluster CA signs the API server's)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test cluster CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "apiserver")]))
        .issuer_name(ca_name)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    directory = tmp_path_factory.mktemp("tls")
    (directory / "ca.crt").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (directory / "server.crt").write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    (directory / "server.key").write_bytes(
        leaf_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(directory / "server.crt", directory / "server.key")
    return Tls(server, directory / "ca.crt")


def test_over_https_with_the_cluster_ca_and_a_service_account_token(
    signing_key: rsa.RSAPrivateKey, tls: Tls, tmp_path: Path, free_port: Callable[[], int]
) -> None:
    """The cluster's shape: https, a private CA, and JWKS served only to a bearer token."""
    token_file = tmp_path / "token"
    token_file.write_text("sa-token-1\n")
    guarded = Issuer(keys=[rsa_jwk(signing_key, KID)], required_token="sa-token-1")
    with serving(guarded, free_port(), tls.server) as running:
        verifier = OIDCVerifier(
            settings(
                running, KPIPE_OIDC_CA_FILE=str(tls.ca_file), KPIPE_OIDC_TOKEN_FILE=str(token_file)
            )
        )
        got = verifier.verify(f"Bearer {token(signing_key, claims(running))}")
        assert got["sub"] == SUBJECT
        assert running.hits == Counter({DISCOVERY_PATH: 1, JWKS_PATH: 1})


def test_https_with_a_certificate_the_ca_did_not_sign_is_unavailable(
    signing_key: rsa.RSAPrivateKey, tls: Tls, free_port: Callable[[], int]
) -> None:
    with serving(Issuer(keys=[rsa_jwk(signing_key, KID)]), free_port(), tls.server) as running:
        # No KPIPE_OIDC_CA_FILE: the system's CAs do not know the test CA.
        verifier = OIDCVerifier(settings(running))
        with pytest.raises(IssuerUnavailable, match="CERTIFICATE_VERIFY_FAILED"):
            verifier.verify(f"Bearer {token(signing_key, claims(running))}")
        assert running.hits == Counter()


def test_the_token_file_is_read_again_when_the_keys_are_refetched(
    signing_key: rsa.RSAPrivateKey,
    other_key: rsa.RSAPrivateKey,
    tls: Tls,
    tmp_path: Path,
    free_port: Callable[[], int],
) -> None:
    """Kubernetes rotates the mounted token; a refetch must send the current one."""
    token_file = tmp_path / "token"
    token_file.write_text("sa-token-1")
    guarded = Issuer(keys=[rsa_jwk(signing_key, KID)], required_token="sa-token-1")
    with serving(guarded, free_port(), tls.server) as running:
        verifier = OIDCVerifier(
            settings(
                running,
                KPIPE_OIDC_JWKS_URL=running.url + JWKS_PATH,
                KPIPE_OIDC_CA_FILE=str(tls.ca_file),
                KPIPE_OIDC_TOKEN_FILE=str(token_file),
                KPIPE_OIDC_JWKS_COOLDOWN_S=0,
            )
        )
        verifier.verify(f"Bearer {token(signing_key, claims(running))}")
        token_file.write_text("sa-token-2")
        running.required_token = "sa-token-2"
        running.keys.append(rsa_jwk(other_key, "key-2"))
        got = verifier.verify(f"Bearer {token(other_key, claims(running), kid='key-2')}")
        assert got["sub"] == SUBJECT


def test_oidc_is_off_until_an_issuer_is_set() -> None:
    off = OIDCSettings.model_validate(
        {"KPIPE_OIDC_ISSUER": "", "KPIPE_OIDC_AUDIENCE": "kpipe/resize"}
    )
    assert not off.enabled
    assert OIDCVerifier.from_settings(off) is None


@pytest.mark.parametrize(
    ("values", "message"),
    [
        pytest.param(
            {"KPIPE_OIDC_ISSUER": "https://kubernetes.default.svc"},
            "KPIPE_OIDC_AUDIENCE is required",
            id="issuer-without-audience",
        ),
        pytest.param(
            {
                "KPIPE_OIDC_ISSUER": "http://issuer.example.com",
                "KPIPE_OIDC_AUDIENCE": "a",
                "KPIPE_OIDC_SUBJECTS": "s",
            },
            "plain http is only accepted on loopback",
            id="plain-http-issuer",
        ),
        pytest.param(
            {
                "KPIPE_OIDC_ISSUER": "https://kubernetes.default.svc",
                "KPIPE_OIDC_AUDIENCE": "a",
                "KPIPE_OIDC_SUBJECTS": "s",
                "KPIPE_OIDC_JWKS_URL": "file:///etc/passwd",
            },
            "not an https URL",
            id="file-jwks-url",
        ),
        pytest.param(
            {"KPIPE_OIDC_ISSUER": "https://kubernetes.default.svc", "KPIPE_OIDC_AUDIENCE": "a"},
            "KPIPE_OIDC_SUBJECTS is required",
            id="issuer-without-subjects",
        ),
        pytest.param(
            {
                "KPIPE_OIDC_ISSUER": "https://kubernetes.default.svc",
                "KPIPE_OIDC_AUDIENCE": "a",
                "KPIPE_OIDC_SUBJECTS": " , ",
            },
            "KPIPE_OIDC_SUBJECTS is required",
            id="issuer-with-blank-subjects",
        ),
        pytest.param(
            {
                "KPIPE_OIDC_ISSUER": "https://kubernetes.default.svc",
                "KPIPE_OIDC_AUDIENCE": "a",
                "KPIPE_OIDC_SUBJECTS": "s",
                "KPIPE_OIDC_ANY_SUBJECT": "true",
            },
            "contradict",
            id="subjects-and-any-subject",
        ),
    ],
)
def test_unsafe_or_incomplete_settings_are_refused(values: dict[str, str], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        OIDCSettings.model_validate(values)


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KPIPE_OIDC_ISSUER", "https://kubernetes.default.svc.cluster.local")
    monkeypatch.setenv("KPIPE_OIDC_AUDIENCE", "kpipe/router-events")
    monkeypatch.setenv("KPIPE_OIDC_SUBJECTS", "system:serviceaccount:kpipe:a, system:x:*")
    read = OIDCSettings()
    assert read.enabled
    assert read.audience == "kpipe/router-events"
    assert read.subject_patterns() == ("system:serviceaccount:kpipe:a", "system:x:*")


def test_a_failed_discovery_is_not_tried_again_before_the_cooldown(
    issuer: Issuer, signing_key: rsa.RSAPrivateKey
) -> None:
    # Every request with a token would otherwise wait on the issuer again.
    issuer.claimed_issuer = "https://somewhere-else.example"
    verifier = OIDCVerifier(settings(issuer))
    for _ in range(5):
        with pytest.raises(IssuerUnavailable):
            verifier.verify(f"Bearer {token(signing_key, claims(issuer))}")
    assert issuer.hits[DISCOVERY_PATH] == 1
