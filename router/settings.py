"""The router's settings, read once from the environment."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from kpipe.core import budget
from kpipe.core.settings import HomeSettings

# Which endpoints one router process serves (KPIPE_ROUTER_SERVES): `all` of
# them (local), the public `api` (REST API and web page), or the cluster-local
# `events` (the broker's /events and /dead-letters). Every one serves /healthz
# and /metrics; router/api.py maps each to its routes.
Serves = Literal["all", "api", "events"]


class RouterSettings(HomeSettings):
    """How the router and REST API run.

    ``KPIPE_HEALTH_URLS`` lists extra components ``/healthz`` must check, as
    ``name=url`` pairs separated by commas. ``kpipe up`` sets it to every
    local process; in a cluster it stays empty, so a health probe never
    wakes a part that scaled to zero. A name the router already checks
    (``triton``, ``object-store``, ``database``) replaces that check.

    ``KPIPE_API_TOKEN``, when set (an empty value is the same as unset), is
    the bearer token every REST call and ``/metrics`` need.
    """

    database_url: str | None = Field(None, validation_alias="KPIPE_DATABASE_URL", repr=False)
    api_token: str | None = Field(None, validation_alias="KPIPE_API_TOKEN", repr=False)
    serves: Serves = Field("all", validation_alias="KPIPE_ROUTER_SERVES")
    health_urls: str = Field("", validation_alias="KPIPE_HEALTH_URLS")
    # A step request with no answer after this long is sent again, after every
    # redelivery the broker may still make; a run with no progress (no step
    # changing status) for run_deadline_s fails. See kpipe/core/budget.py.
    redrive_after_s: float = Field(
        budget.REDRIVE_AFTER_S, validation_alias="KPIPE_REDRIVE_AFTER_S", gt=0
    )
    sweep_interval_s: float = Field(
        budget.SWEEP_INTERVAL_S, validation_alias="KPIPE_SWEEP_INTERVAL_S", gt=0
    )
    run_deadline_s: float = Field(
        budget.RUN_DEADLINE_S, validation_alias="KPIPE_RUN_DEADLINE_S", gt=0
    )
    # Uploads whose notification was lost are found by listing each trigger
    # this often (0 turns it off), once they are `grace` old and until they
    # are `lookback` old (see router/reconciler.py).
    reconcile_interval_s: float = Field(60.0, validation_alias="KPIPE_RECONCILE_INTERVAL_S", ge=0)
    reconcile_grace_s: float = Field(60.0, validation_alias="KPIPE_RECONCILE_GRACE_S", ge=0)
    reconcile_lookback_s: float = Field(
        86_400.0, validation_alias="KPIPE_RECONCILE_LOOKBACK_S", gt=0
    )
    max_body_bytes: int = Field(1_048_576, validation_alias="KPIPE_MAX_BODY_BYTES", gt=0)
    max_upload_bytes: int = Field(52_428_800, validation_alias="KPIPE_MAX_UPLOAD_BYTES", gt=0)

    @field_validator("api_token")
    @classmethod
    def _empty_token_is_none(cls, token: str | None) -> str | None:
        # `KPIPE_API_TOKEN=` (as a template or a shell leaves it) means no token.
        return token or None

    def database(self) -> str:
        """The SQLAlchemy URL: KPIPE_DATABASE_URL, else an SQLite file in the home dir."""
        if self.database_url:
            return self.database_url
        self.home.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{(self.home / 'kpipe.db').resolve()}"

    def health_targets(self) -> dict[str, str]:
        pairs = [p.split("=", 1) for p in self.health_urls.split(",") if "=" in p]
        return {name.strip(): url.strip() for name, url in pairs}
