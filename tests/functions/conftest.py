"""Fixtures of the functions tests: a real S3 server, a store on it, step requests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from eventing.contract import ObjectRef, PipelineContext, StepCall, StepRequest, run_prefix
from eventing.objectstore import MinioStore
from eventing.signing import Role, SigningKey, TrustedKeys, part_principal
from functions.catalog import Catalog
from functions.runtime import StepRuntime
from kpipe.core.settings import ImageSettings
from kpipe.local.config import PARTS
from tests.conftest import OUTPUT_BUCKET
from tests.eventing.conftest import serve, subscriber  # noqa: F401

# The run every request of these tests belongs to; outputs go under its prefix.
PIPELINE, RUN = "p", "r1"
CONTEXT = PipelineContext(PIPELINE, 1, RUN, "s0", "resize")
# The router's key signs requests; these tests' parts sign every function's
# answers with one key, trusted as each part's (in the product each has its own).
ROUTER_KEY = SigningKey.generate("router-test")
PARTS_KEY = SigningKey.generate("parts-test")
TRUSTED = TrustedKeys.of(
    {Role.ROUTER: [ROUTER_KEY], **{part_principal(name): [PARTS_KEY] for name in PARTS}}
)


@pytest.fixture
def runtime(store: MinioStore) -> StepRuntime:
    return StepRuntime(
        store=store, catalog=Catalog(), images=ImageSettings(), trusted=TRUSTED, signer=PARTS_KEY
    )


@pytest.fixture
def make_request() -> Callable[..., StepRequest]:
    """Builds a step request on ``source`` running ``calls`` (function, params) in order."""

    def build(
        source: ObjectRef,
        *calls: tuple[str, dict[str, Any]],
        output_key: str = f"{run_prefix(PIPELINE, RUN)}out.jpg",
        final: bool = False,
    ) -> StepRequest:
        return StepRequest(
            source=source,
            inputs=(source,),
            calls=tuple(StepCall(f"s{i}", fn, params) for i, (fn, params) in enumerate(calls)),
            output=ObjectRef(OUTPUT_BUCKET, output_key),
            final=final,
        )

    return build
