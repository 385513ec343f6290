"""The one bearer-token check (RFC 6750)."""

from __future__ import annotations

import pytest

from kpipe.core.auth import (
    AuthorizationMalformed,
    BearerRefused,
    TokenInvalid,
    TokenMissing,
    bearer_token,
    check_bearer,
)

TOKEN = "Zm9v-bar_baz.~+/="  # every b64token character class


@pytest.mark.parametrize(
    "header",
    [
        f"Bearer {TOKEN}",
        f"bearer {TOKEN}",
        f"BEARER {TOKEN}",
        f"Bearer    {TOKEN}",
        f" Bearer {TOKEN} ",
        f"Bearer {TOKEN}\t",
    ],
)
def test_a_bearer_token_is_taken_in_any_case_after_one_or_more_spaces(header: str) -> None:
    check_bearer(header, TOKEN)
    assert bearer_token(header) == TOKEN


@pytest.mark.parametrize(
    ("header", "refusal"),
    [
        (None, TokenMissing),
        ("", TokenMissing),
        ("   ", TokenMissing),
        (TOKEN, TokenMissing),
        (f"Basic {TOKEN}", TokenMissing),
        (f"Bearer\t{TOKEN}", TokenMissing),
        (f"Bearer{TOKEN}", TokenMissing),
        (f"Token {TOKEN}", TokenMissing),
        ("Bearer", AuthorizationMalformed),
        ("Bearer   ", AuthorizationMalformed),
        (f"Bearer {TOKEN} {TOKEN}", AuthorizationMalformed),
        (f"Bearer {TOKEN[:4]} {TOKEN[4:]}", AuthorizationMalformed),
        (f"Bearer {TOKEN}\t{TOKEN}", AuthorizationMalformed),
        ("Bearer nope", TokenInvalid),
        (f"Bearer {TOKEN[:-1]}", TokenInvalid),
        (f"Bearer {TOKEN}=", TokenInvalid),
        (f"Bearer {TOKEN.lower()}", TokenInvalid),
        ("Bearer ä" + TOKEN, TokenInvalid),
    ],
)
def test_anything_else_is_refused(header: str | None, refusal: type[BearerRefused]) -> None:
    with pytest.raises(refusal) as refused:
        check_bearer(header, TOKEN)
    assert type(refused.value) is refusal
    assert TOKEN not in refused.value.message
    assert TOKEN not in refused.value.challenge


@pytest.mark.parametrize(
    ("refusal", "challenge"),
    [
        (TokenMissing(), 'Bearer realm="kpipe"'),
        (
            TokenInvalid(),
            'Bearer realm="kpipe", error="invalid_token", '
            'error_description="the bearer token is not valid"',
        ),
        (
            AuthorizationMalformed(),
            'Bearer realm="kpipe", error="invalid_request", '
            "error_description=\"the Authorization header must be 'Bearer <token>', "
            'with one token"',
        ),
    ],
)
def test_each_refusal_carries_its_rfc_6750_challenge(
    refusal: BearerRefused, challenge: str
) -> None:
    assert refusal.challenge == challenge


def test_the_compare_is_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    import hmac

    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr("kpipe.core.auth.hmac.compare_digest", spy)
    with pytest.raises(TokenInvalid):
        check_bearer(f"Bearer {TOKEN[:-1]}", TOKEN)
    check_bearer(f"Bearer {TOKEN}", TOKEN)
    assert calls == [(TOKEN[:-1].encode(), TOKEN.encode()), (TOKEN.encode(), TOKEN.encode())]
