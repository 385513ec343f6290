"""Verifying the OIDC token Knative's broker sends with each delivery.

With Knative's ``authentication-oidc`` feature on, the broker sends every
event to a subscriber with ``Authorization: Bearer <JWT>``: a Kubernetes
service-account token of the Trigger's OIDC identity, issued by the cluster's
service-account issuer for the audience the Trigger names
(``spec.subscriber.audience``). Knative enforces EventPolicies only at its own
ingresses (brokers, channels); a Knative Service that receives events checks
the token itself. :class:`OIDCVerifier` does: signature (a key from the
issuer's JWKS), issuer, audience, expiry and the subject: the token's ``sub``
is ``system:serviceaccount:<namespace>:<trigger>-oidc-eventing.knative.dev-trigger``,
the service account Knative made for the Trigger that delivered it, and a
token for the right audience from any other service account is refused.

Configured from the environment (:class:`OIDCSettings`); off unless
``KPIPE_OIDC_ISSUER`` is set. A receiver with an issuer but no
``KPIPE_OIDC_SUBJECTS`` refuses to start (any pod can ask the API server for a
token of any audience), unless ``KPIPE_OIDC_ANY_SUBJECT=true`` says that is
meant. In a cluster (``kpipe deploy render`` generates the subjects)::

    KPIPE_OIDC_ISSUER=https://kubernetes.default.svc.cluster.local  # the API server's issuer
    KPIPE_OIDC_AUDIENCE=kpipe/resize            # this receiver's Trigger audience
    KPIPE_OIDC_SUBJECTS=system:serviceaccount:kpipe:part-resize-oidc-eventing.knative.dev-trigger
    KPIPE_OIDC_JWKS_URL=https://kubernetes.default.svc/openid/v1/jwks
    KPIPE_OIDC_CA_FILE=/var/run/secrets/kubernetes.io/serviceaccount/ca.crt
    KPIPE_OIDC_TOKEN_FILE=/var/run/secrets/kubernetes.io/serviceaccount/token

Example:
    >>> verifier = OIDCVerifier.from_settings(OIDCSettings())  # doctest: +SKIP
    >>> claims = verifier.verify(request.headers.get("authorization"))  # doctest: +SKIP
    >>> claims["sub"]  # doctest: +SKIP
    'system:serviceaccount:kpipe:part-resize-oidc-eventing.knative.dev-trigger'
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import ssl
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any, Self
from urllib.parse import urlsplit

import jwt
from jwt import PyJWK, PyJWKClient
from jwt.exceptions import (
    PyJWKClientConnectionError,
    PyJWKClientError,
    PyJWKError,
    PyJWKSetError,
    PyJWTError,
)
from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from eventing.errors import EventingError
from kpipe.core.auth import AuthorizationMalformed, TokenMissing, bearer_token

# Asymmetric algorithms only: a token's own ``alg`` header never chooses HMAC
# (the public key as an HMAC secret) or ``none``.
ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
# Claims a Kubernetes service-account token always carries; a token without one is refused.
REQUIRED_CLAIMS = ("iss", "aud", "sub", "exp", "iat")
_DISCOVERY_PATH = "/.well-known/openid-configuration"
_LOOPBACK_NAMES = frozenset({"localhost"})


class OIDCError(EventingError):
    """Root of the OIDC verifier's errors."""

    code = "oidc_error"


class TokenRejected(OIDCError, PermissionError):
    """No token, or one that is not valid for this receiver; the receiver answers 401.

    Attributes:
        reason: why, in words fit for a log line (never the token itself).
    """

    code = "unauthorized"

    def __init__(self, reason: str) -> None:
        super().__init__(f"OIDC token refused: {reason}")
        self.reason = reason


class SubjectNotAllowed(OIDCError, PermissionError):
    """A valid token whose subject this receiver does not accept; answered 403.

    Attributes:
        subject: the token's ``sub`` claim.
    """

    code = "forbidden"

    def __init__(self, subject: str) -> None:
        super().__init__(f"OIDC subject {subject!r} may not send here")
        self.subject = subject


class IssuerUnavailable(OIDCError, ConnectionError):
    """The issuer's discovery document or JWKS could not be read; answered 503.

    Not the sender's fault: a 503 makes the broker redeliver later.
    """

    code = "oidc_unavailable"

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"cannot read {url}: {reason}")
        self.url = url
        self.reason = reason


class OIDCSettings(BaseSettings):
    """How a receiver verifies the broker's OIDC tokens; off while ``issuer`` is unset.

    ``subjects`` is a comma-separated list of accepted ``sub`` claims, each
    exact or ending in ``*`` for a prefix (EventPolicy's ``from.sub`` syntax).
    With an issuer it is required: ``any_subject`` (``KPIPE_OIDC_ANY_SUBJECT=true``)
    is the only way to accept any subject the issuer signed for this audience.

    Raises:
        pydantic.ValidationError: an issuer without an audience, or without
            subjects and without ``KPIPE_OIDC_ANY_SUBJECT=true``, or both.
    """

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    issuer: str | None = Field(None, validation_alias="KPIPE_OIDC_ISSUER")
    audience: str | None = Field(None, validation_alias="KPIPE_OIDC_AUDIENCE")
    # Default: the jwks_uri of the issuer's discovery document.
    jwks_url: str | None = Field(None, validation_alias="KPIPE_OIDC_JWKS_URL")
    subjects: str = Field("", validation_alias="KPIPE_OIDC_SUBJECTS")
    # Accept any subject: only for a receiver every pod of the cluster may call.
    any_subject: bool = Field(False, validation_alias="KPIPE_OIDC_ANY_SUBJECT")
    # CA bundle for https to the issuer (else the system's), and a bearer
    # token file for it (Kubernetes serves its JWKS to service accounts only).
    ca_file: Path | None = Field(None, validation_alias="KPIPE_OIDC_CA_FILE")
    token_file: Path | None = Field(None, validation_alias="KPIPE_OIDC_TOKEN_FILE")
    timeout_s: float = Field(5.0, validation_alias="KPIPE_OIDC_TIMEOUT_S", gt=0)
    # The JWKS is cached this long; a token with an unknown key id refetches
    # it at most once per cooldown (so forged key ids cannot flood the issuer).
    jwks_lifespan_s: float = Field(300.0, validation_alias="KPIPE_OIDC_JWKS_LIFESPAN_S", gt=0)
    jwks_cooldown_s: float = Field(30.0, validation_alias="KPIPE_OIDC_JWKS_COOLDOWN_S", ge=0)
    # Clock skew allowed on exp, iat and nbf.
    leeway_s: float = Field(30.0, validation_alias="KPIPE_OIDC_LEEWAY_S", ge=0)

    @field_validator("issuer", "audience", "jwks_url", "ca_file", "token_file", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # A ConfigMap key left empty ("") means "not set".
        return None if value == "" else value

    @field_validator("issuer", "jwks_url")
    @classmethod
    def _https_or_loopback(cls, value: str | None) -> str | None:
        if value is not None:
            _check_url(value)
        return value

    @model_validator(mode="after")
    def _audience_with_issuer(self) -> Self:
        if self.issuer is None:
            return self
        if not self.audience:
            raise ValueError("KPIPE_OIDC_AUDIENCE is required when KPIPE_OIDC_ISSUER is set")
        if self.any_subject and self.subject_patterns():
            raise ValueError(
                "KPIPE_OIDC_ANY_SUBJECT=true and KPIPE_OIDC_SUBJECTS contradict each other: "
                "set one of them"
            )
        if not self.any_subject and not self.subject_patterns():
            # Any pod may mint a token for any audience: without subjects the
            # check would prove only "some pod of the cluster".
            raise ValueError(
                "KPIPE_OIDC_SUBJECTS is required when KPIPE_OIDC_ISSUER is set (the "
                "service accounts of the Triggers that deliver here; `kpipe deploy render` "
                "generates them); set KPIPE_OIDC_ANY_SUBJECT=true to accept any subject"
            )
        return self

    @property
    def enabled(self) -> bool:
        """True when tokens must be verified (``KPIPE_OIDC_ISSUER`` is set)."""
        return self.issuer is not None

    def subject_patterns(self) -> tuple[str, ...]:
        """The accepted subject patterns (empty, with an issuer: ``any_subject`` is set)."""
        return tuple(p.strip() for p in self.subjects.split(",") if p.strip())


def _check_url(url: str) -> None:
    """Refuse plain http except on loopback: the keys must not be swapped in transit."""
    parts = urlsplit(url)
    if parts.scheme == "https":
        return
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"{url!r} is not an https URL")
    host = parts.hostname
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host in _LOOPBACK_NAMES
    if not loopback:
        raise ValueError(f"{url!r}: plain http is only accepted on loopback; use https")


class _JWKSClient(PyJWKClient):
    """PyJWKClient that re-reads the bearer token file before each fetch (it rotates)."""

    def __init__(self, url: str, token_file: Path | None, **kwargs: Any) -> None:
        super().__init__(url, **kwargs)
        self._token_file = token_file

    def fetch_data(self) -> Any:
        if self._token_file is not None:
            self.headers = _auth_headers(self._token_file)
        return super().fetch_data()


def _auth_headers(token_file: Path | None) -> dict[str, str]:
    if token_file is None:
        return {}
    try:
        token = token_file.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise IssuerUnavailable(str(token_file), f"cannot read the token: {exc}") from None
    return {"Authorization": f"Bearer {token}"}


class OIDCVerifier:
    """Checks ``Authorization: Bearer <JWT>`` against one issuer and one audience.

    Thread-safe; create one per process and keep it (it caches the issuer's
    keys). Nothing is fetched until the first :meth:`verify`.

    Args:
        settings: issuer, audience, key source, timeouts; ``issuer`` must be set.

    Raises:
        ValueError: ``settings`` has no issuer, or no subjects and not ``any_subject``.
    """

    def __init__(self, settings: OIDCSettings) -> None:
        if settings.issuer is None or settings.audience is None:
            raise ValueError("OIDCVerifier needs KPIPE_OIDC_ISSUER and KPIPE_OIDC_AUDIENCE")
        if not settings.any_subject and not settings.subject_patterns():
            # Settings made without validation (model_construct) get here.
            raise ValueError("OIDCVerifier needs KPIPE_OIDC_SUBJECTS or KPIPE_OIDC_ANY_SUBJECT")
        self._settings = settings
        self._issuer = settings.issuer
        self._audience = settings.audience
        self._subjects = settings.subject_patterns()
        self._any_subject = settings.any_subject
        self._ssl = ssl.create_default_context(
            cafile=str(settings.ca_file) if settings.ca_file else None
        )
        self._lock = threading.Lock()
        self._jwks: _JWKSClient | None = None
        # A failed discovery is not tried again before the cooldown, so forged
        # tokens cannot make every request wait on (and hammer) the issuer.
        self._discovery_failed: tuple[float, IssuerUnavailable] | None = None

    @classmethod
    def from_settings(cls, settings: OIDCSettings) -> OIDCVerifier | None:
        """A verifier, or None when OIDC is off (``KPIPE_OIDC_ISSUER`` unset).

        ``settings`` were checked when they were read: an issuer without
        subjects (and without ``KPIPE_OIDC_ANY_SUBJECT=true``) never gets here.
        """
        return cls(settings) if settings.enabled else None

    def verify(self, authorization: str | None) -> dict[str, Any]:
        """The verified claims of the bearer token in an ``Authorization`` header value.

        Args:
            authorization: the header's value, or None when the request had none.

        Returns:
            The token's claims (``sub`` is the sender's service account).

        Raises:
            TokenRejected: no bearer token, or one that fails a check (401).
            SubjectNotAllowed: a valid token from a subject not accepted here (403).
            IssuerUnavailable: the issuer's keys could not be read (503).
        """
        try:
            token = bearer_token(authorization)  # kpipe's one reading of the header
        except (TokenMissing, AuthorizationMalformed):
            raise TokenRejected("no bearer token in the Authorization header") from None
        return self.verify_token(token)

    def verify_token(self, token: str) -> dict[str, Any]:
        """The verified claims of a compact JWT; raises as :meth:`verify` does."""
        try:
            header = jwt.get_unverified_header(token)
        except PyJWTError as exc:
            raise TokenRejected(f"malformed token: {exc}") from None
        alg = header.get("alg")
        if alg not in ALGORITHMS:
            raise TokenRejected(f"algorithm {alg!r} is not accepted")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise TokenRejected("the token names no key (kid)")
        key = self._signing_key(kid)
        if key.algorithm_name != alg:
            raise TokenRejected(f"key {kid!r} is a {key.algorithm_name} key, the token says {alg}")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key,
                algorithms=[alg],
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._settings.leeway_s,
                options={"require": list(REQUIRED_CLAIMS)},
            )
        except PyJWTError as exc:
            raise TokenRejected(str(exc) or type(exc).__name__) from None
        subject = str(claims["sub"])
        if not self._any_subject and not any(_matches(p, subject) for p in self._subjects):
            raise SubjectNotAllowed(subject)
        return claims

    def _signing_key(self, kid: str) -> PyJWK:
        client = self._client()
        try:
            return client.get_signing_key(kid)
        except PyJWKClientConnectionError as exc:
            raise IssuerUnavailable(client.uri, str(exc)) from None
        except PyJWKClientError as exc:
            if "Unable to find a signing key" in str(exc):
                raise TokenRejected(f"unknown key id {kid!r}") from None
            raise IssuerUnavailable(client.uri, str(exc)) from None
        except (PyJWKError, PyJWKSetError, ValueError) as exc:  # ValueError: not JSON
            raise IssuerUnavailable(client.uri, f"unusable JWKS: {exc}") from None

    def _client(self) -> _JWKSClient:
        with self._lock:
            if self._jwks is None:
                url = self._settings.jwks_url or self._discover_jwks_url_once()
                self._jwks = _JWKSClient(
                    url,
                    self._settings.token_file,
                    cache_jwk_set=True,
                    lifespan=self._settings.jwks_lifespan_s,
                    cooldown_duration=self._settings.jwks_cooldown_s,
                    timeout=self._settings.timeout_s,
                    ssl_context=self._ssl,
                )
            return self._jwks

    def _discover_jwks_url_once(self) -> str:
        """:meth:`_discover_jwks_url`, or its last failure while the cooldown lasts."""
        if self._discovery_failed is not None:
            failed_at, failure = self._discovery_failed
            if time.monotonic() - failed_at < self._settings.jwks_cooldown_s:
                raise failure
        try:
            url = self._discover_jwks_url()
        except IssuerUnavailable as exc:
            self._discovery_failed = (time.monotonic(), exc)
            raise
        except (OSError, ValueError) as exc:  # a body that is not JSON, a reset
            failure = IssuerUnavailable(self._issuer, str(exc))
            self._discovery_failed = (time.monotonic(), failure)
            raise failure from None
        self._discovery_failed = None
        return url

    def _discover_jwks_url(self) -> str:
        url = self._issuer.rstrip("/") + _DISCOVERY_PATH
        document = _fetch_json(
            url, _auth_headers(self._settings.token_file), self._ssl, self._settings.timeout_s
        )
        # OpenID Connect Discovery 1.0, 4.3: the document must name the issuer it was read from.
        if document.get("issuer") != self._issuer:
            raise IssuerUnavailable(url, f"it names issuer {document.get('issuer')!r}")
        jwks_uri = document.get("jwks_uri")
        if not isinstance(jwks_uri, str):
            raise IssuerUnavailable(url, "it has no jwks_uri")
        try:
            _check_url(jwks_uri)
        except ValueError as exc:
            raise IssuerUnavailable(url, str(exc)) from None
        return jwks_uri


def _matches(pattern: str, subject: str) -> bool:
    if pattern.endswith("*"):
        return subject.startswith(pattern[:-1])
    return subject == pattern


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _fetch_json(
    url: str, headers: dict[str, str], context: ssl.SSLContext, timeout_s: float
) -> dict[str, Any]:
    https = urllib.request.HTTPSHandler(context=context)
    opener = urllib.request.build_opener(_NoRedirect(), https)
    request = urllib.request.Request(url, headers={"Accept": "application/json", **headers})
    try:
        with opener.open(request, timeout=timeout_s) as response:
            document = json.load(response)
    except (OSError, http.client.HTTPException, ValueError) as exc:
        # URLError, HTTPError, timeouts and refused connections are OSErrors; bad JSON a ValueError.
        raise IssuerUnavailable(url, str(exc)) from None
    if not isinstance(document, dict):
        raise IssuerUnavailable(url, "not a JSON object")
    return document
