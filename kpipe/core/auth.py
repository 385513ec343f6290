"""The one bearer-token check (RFC 6750) of every kpipe server that takes a shared token.

The router's API (``KPIPE_API_TOKEN``) and the bucket-notification adapter
(``KPIPE_WEBHOOK_TOKEN``, MinIO's ``auth_token``) both call :func:`check_bearer`.
What it accepts is RFC 6750's ``credentials = "Bearer" 1*SP b64token``: the
scheme in any case (RFC 9110 section 11.1), one or more spaces, then exactly
one token; whitespace around the whole field value is not part of it (RFC 9110
section 5.5). Each refusal carries the ``WWW-Authenticate`` challenge RFC 6750
section 3 asks for, and never the token.

Example:
    >>> check_bearer("bearer s3cret", "s3cret")
    >>> try:
    ...     check_bearer("Bearer nope", "s3cret")
    ... except BearerRefused as exc:
    ...     exc.challenge
    'Bearer realm="kpipe", error="invalid_token", error_description="the bearer token is not valid"'
"""

from __future__ import annotations

import hmac

from kpipe.core.errors import KpipeError

REALM = "kpipe"


class BearerRefused(KpipeError):
    """A request without the bearer token a server requires.

    ``rfc6750_error`` is the ``error`` of the ``WWW-Authenticate`` challenge:
    None when no bearer token was sent at all (RFC 6750 section 3.1: the
    client may not know it needs one, so the challenge carries no details).
    """

    code = "unauthorized"
    rfc6750_error: str | None = None

    @property
    def challenge(self) -> str:
        """The ``WWW-Authenticate`` header value to answer with."""
        if self.rfc6750_error is None:
            return f'Bearer realm="{REALM}"'
        return (
            f'Bearer realm="{REALM}", error="{self.rfc6750_error}", '
            f'error_description="{self.message}"'
        )


class TokenMissing(BearerRefused):
    """No ``Authorization: Bearer`` credentials (none at all, or another scheme)."""

    def __init__(self) -> None:
        super().__init__("a valid bearer token is required")


class TokenInvalid(BearerRefused):
    """Bearer credentials with a token that is not the server's."""

    code = "invalid_token"
    rfc6750_error = "invalid_token"

    def __init__(self) -> None:
        super().__init__("the bearer token is not valid")


class AuthorizationMalformed(BearerRefused):
    """A ``Bearer`` header without exactly one token after the scheme."""

    code = "malformed_authorization"
    rfc6750_error = "invalid_request"

    def __init__(self) -> None:
        super().__init__("the Authorization header must be 'Bearer <token>', with one token")


def bearer_token(authorization: str | None) -> str:
    """The token of an ``Authorization`` header value.

    Raises:
        TokenMissing: no header, or a scheme other than Bearer (a bare token too).
        AuthorizationMalformed: ``Bearer`` with no token, or with more than one.
    """
    scheme, _, credentials = (authorization or "").strip().partition(" ")
    if scheme.lower() != "bearer":
        raise TokenMissing()
    token = credentials.lstrip(" ")
    if not token or any(c.isspace() for c in token):
        raise AuthorizationMalformed()
    return token


def check_bearer(authorization: str | None, token: str) -> None:
    """Pass only when ``authorization`` is ``Bearer <token>``.

    Args:
        authorization: the request's ``Authorization`` header value, if any.
        token: the token the server requires (not empty).

    Raises:
        TokenMissing, AuthorizationMalformed: see :func:`bearer_token`.
        TokenInvalid: a well-formed bearer token that is not ``token``.
    """
    presented = bearer_token(authorization)
    # compare_digest: the time taken must not tell how much of the token matched.
    if not hmac.compare_digest(presented.encode(), token.encode()):
        raise TokenInvalid()
