"""The OIDC subjects ``kpipe deploy`` generates: Knative's names, and what they keep out.

The attack: any pod of the cluster may ask the API server for a token of any
audience (``kubectl create token default --audience kpipe/resize``). A
receiver rendered by ``kpipe deploy`` accepts only the service accounts of
the Triggers that deliver to it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric import rsa

from eventing.oidc import OIDCSettings, OIDCVerifier, SubjectNotAllowed
from kpipe.deploy.cli import deploy
from kpipe.deploy.render import overlay_dir, render
from kpipe.deploy.subjects import (
    SUBJECTS_ENV,
    child_name,
    senders,
    trigger_service_account,
    trigger_subject,
    with_oidc_subjects,
)
from tests.deploy.conftest import by_kind
from tests.eventing.test_oidc import KID, Issuer, rsa_jwk, serving, token

Obj = dict[str, Any]
KSVC = "serving.knative.dev/v1"


# knative.dev/pkg kmeta/names_test.go TestChildName, and knative/eventing
# pkg/auth/serviceaccount_test.go (the long Broker name).
@pytest.mark.parametrize(
    ("parent", "suffix", "want"),
    [
        ("asdf", "-deployment", "asdf-deployment"),
        (
            "f" * 63,
            "-deployment",
            "ffffffffffffffffffff105d7597f637e83cc711605ac3ea4957-deployment",
        ),
        ("f" * 63, "-deploy", "ffffffffffffffffffffffff105d7597f637e83cc711605ac3ea4957-deploy"),
        ("f" * 63, "f" * 63, "fffffffffffffffffffffffffffffff0502661254f13c89973cb3a83e0cbec0"),
        ("a", "f" * 63, "ab5cfd486935decbc0d305799f4ce4414ffffffffffffffffffffffffffffff"),
        ("b" * 32, "f" * 32, "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb329c7c81b9ab3ba71aa139066aa5625d"),
        ("aaaa", "b---a" * 20, "aaaa7a3f7966594e3f0849720eced8212c18b---ab---ab---ab---ab---ab"),
        (
            "a" * 17,
            "a.-.-.-.-.-.-.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "aaaaaaaaaaaaaaaaaa1eb10dc911444f8434af83b7225442da",
        ),
        (
            "my-loooooooooooooooooooooooooooooooooooooog-Broker",
            "-oidc-eventing.knative.dev-Broker",
            "my-looooooooooooooooooooooooooo2dfc2a3825b8d82077b0f25518b36884",
        ),
    ],
)
def test_child_name_is_knatives(parent: str, suffix: str, want: str) -> None:
    assert child_name(parent, suffix).lower() == want


def test_a_triggers_service_account_is_named_as_knative_names_it() -> None:
    assert trigger_service_account("part-resize") == "part-resize-oidc-eventing.knative.dev-trigger"
    assert trigger_service_account("Part-X") == "part-x-oidc-eventing.knative.dev-trigger"
    long = trigger_service_account("part-" + "x" * 40)
    assert len(long) == 63
    assert long.startswith("part-" + "x" * 26)


def _env(ksvc: Obj) -> dict[str, str]:
    container = ksvc["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}


def test_each_receiver_accepts_exactly_the_triggers_that_deliver_to_it(
    rendered: list[Obj],
) -> None:
    services = by_kind(rendered, KSVC, "Service")
    delivering = senders(rendered)
    assert set(delivering) == {
        n for n, s in services.items() if s["metadata"]["name"] not in ("router", "adapter")
    }
    for name, ksvc in services.items():
        expected = {
            trigger_subject(t["metadata"]["namespace"], t["metadata"]["name"])
            for t in delivering.get(name, [])
        }
        got = _env(ksvc).get(SUBJECTS_ENV)
        assert set(got.split(",") if got else ()) == expected, name


def test_the_subjects_of_the_dev_overlay() -> None:
    services = by_kind(with_oidc_subjects(render(overlay_dir("dev"))), KSVC, "Service")
    sa = "system:serviceaccount:kpipe:{}-oidc-eventing.knative.dev-trigger".format
    assert _env(services["resize"])[SUBJECTS_ENV] == sa("part-resize")
    events = _env(services["router-events"])[SUBJECTS_ENV].split(",")
    # Its own Triggers' deliveries, and every part Trigger's dead letters.
    assert {sa("router-object-created"), sa("router-step-completed")} <= set(events)
    assert {sa("part-resize"), sa("part-detect-faces")} <= set(events)
    assert SUBJECTS_ENV not in _env(services["router"])


def test_the_subjects_follow_the_namespace_rendered() -> None:
    result = CliRunner().invoke(deploy, ["render", "--overlay", "gpu", "--namespace", "vision"])
    assert result.exit_code == 0, result.output
    assert "system:serviceaccount:vision:part-resize-oidc-eventing.knative.dev-trigger" in (
        result.output
    )
    assert "system:serviceaccount:kpipe:" not in result.output


def test_the_base_without_a_namespace_gets_no_subjects() -> None:
    objs = with_oidc_subjects(render(overlay_dir("base")))
    assert SUBJECTS_ENV not in repr(objs)


def test_a_subject_written_by_hand_is_replaced() -> None:
    objs = render(overlay_dir("dev"))
    resize = by_kind(objs, KSVC, "Service")["resize"]
    container = resize["spec"]["template"]["spec"]["containers"][0]
    container["env"].append({"name": SUBJECTS_ENV, "value": "system:serviceaccount:kpipe:*"})
    out = by_kind(with_oidc_subjects(objs), KSVC, "Service")["resize"]
    env = out["spec"]["template"]["spec"]["containers"][0]["env"]
    assert [e["value"] for e in env if e["name"] == SUBJECTS_ENV] == [
        trigger_subject("kpipe", "part-resize")
    ]


# -- the attack -----------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def issuer(cluster_key: rsa.RSAPrivateKey, free_port: Callable[[], int]) -> Iterator[Issuer]:
    with serving(Issuer(keys=[rsa_jwk(cluster_key, KID)]), free_port()) as running:
        yield running


def _receiver(issuer: Issuer, name: str) -> OIDCVerifier:
    """The verifier a rendered receiver starts with, with OIDC on against ``issuer``."""
    objs = with_oidc_subjects(render(overlay_dir("dev")))
    config = by_kind(objs, "v1", "ConfigMap")["kpipe-config"]["data"]
    env = config | _env(by_kind(objs, KSVC, "Service")[name])
    env |= {"KPIPE_OIDC_ISSUER": issuer.url, "KPIPE_OIDC_JWKS_URL": "", "KPIPE_OIDC_CA_FILE": ""}
    env["KPIPE_OIDC_TOKEN_FILE"] = ""
    verifier = OIDCVerifier.from_settings(OIDCSettings.model_validate(env))
    assert verifier is not None
    return verifier


def _bearer(issuer: Issuer, key: rsa.RSAPrivateKey, audience: str, subject: str) -> str:
    now = int(time.time())
    claims = {"iss": issuer.url, "aud": [audience], "sub": subject, "iat": now, "exp": now + 600}
    return f"Bearer {token(key, claims)}"


@pytest.mark.parametrize(
    "subject",
    [
        pytest.param("system:serviceaccount:kpipe:default", id="any-pod"),
        # A real Trigger's identity, but not one that delivers to this part.
        pytest.param(trigger_subject("kpipe", "part-blur"), id="another-parts-trigger"),
        pytest.param(trigger_subject("kpipe", "router-step-completed"), id="a-router-trigger"),
        # The same Trigger name in a namespace the attacker owns.
        pytest.param(trigger_subject("evil", "part-resize"), id="other-namespace"),
    ],
)
def test_a_token_for_a_parts_audience_from_another_service_account_is_refused(
    issuer: Issuer, cluster_key: rsa.RSAPrivateKey, subject: str
) -> None:
    verifier = _receiver(issuer, "resize")
    with pytest.raises(SubjectNotAllowed) as refused:
        verifier.verify(_bearer(issuer, cluster_key, "kpipe/resize", subject))
    assert refused.value.subject == subject


def test_the_parts_own_trigger_is_accepted(issuer: Issuer, cluster_key: rsa.RSAPrivateKey) -> None:
    own = trigger_subject("kpipe", "part-resize")
    claims = _receiver(issuer, "resize").verify(_bearer(issuer, cluster_key, "kpipe/resize", own))
    assert claims["sub"] == own


@pytest.mark.parametrize(
    ("subject", "allowed"),
    [
        pytest.param(trigger_subject("kpipe", "router-step-failed"), True, id="its-trigger"),
        pytest.param(trigger_subject("kpipe", "part-annotate"), True, id="a-parts-dead-letter"),
        pytest.param("system:serviceaccount:kpipe:default", False, id="any-pod"),
    ],
)
def test_the_routers_events_accept_only_their_triggers_and_dead_letters(
    issuer: Issuer, cluster_key: rsa.RSAPrivateKey, subject: str, allowed: bool
) -> None:
    verifier = _receiver(issuer, "router-events")
    header = _bearer(issuer, cluster_key, "kpipe/router-events", subject)
    if allowed:
        assert verifier.verify(header)["sub"] == subject
    else:
        with pytest.raises(SubjectNotAllowed):
            verifier.verify(header)
