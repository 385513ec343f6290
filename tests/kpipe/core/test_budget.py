"""The delivery budget's numbers fit together, and every user reads them from one place."""

from __future__ import annotations

from kpipe.core import budget
from kpipe.core.settings import DeliverySettings
from kpipe.deploy.parts import _PART_DELIVERY
from kpipe.local.config import StackConfig
from router.settings import RouterSettings


def test_the_part_not_the_broker_ends_the_retries() -> None:
    # The broker must still be retrying when the part stops answering 503.
    assert budget.CLUSTER_PART.shortest_s > budget.RETRY_FOR_S
    assert budget.LOCAL_PART.longest_s > budget.RETRY_FOR_S  # the local broker counts from 1


def test_a_redrive_comes_after_every_redelivery_the_broker_may_still_make() -> None:
    last = max(budget.CLUSTER_PART.longest_s, budget.LOCAL_PART.longest_s)
    assert last + budget.DELIVERY_TIMEOUT_S < budget.REDRIVE_AFTER_S
    assert budget.REDRIVE_AFTER_S > budget.RETRY_FOR_S + budget.DELIVERY_TIMEOUT_S


def test_a_run_is_redriven_at_least_twice_before_its_deadline() -> None:
    assert budget.RUN_DEADLINE_S > 2 * budget.REDRIVE_AFTER_S + budget.SWEEP_INTERVAL_S


def test_every_user_reads_the_budget_from_its_home() -> None:
    router = RouterSettings()
    assert router.redrive_after_s == budget.REDRIVE_AFTER_S
    assert router.run_deadline_s == budget.RUN_DEADLINE_S
    assert router.sweep_interval_s == budget.SWEEP_INTERVAL_S
    assert DeliverySettings().retry_for_s == budget.RETRY_FOR_S
    stack = StackConfig()
    assert (stack.part_retry, stack.backoff_delay_s) == (
        budget.LOCAL_PART.retry,
        budget.LOCAL_PART.backoff_delay_s,
    )
    assert stack.retry == budget.LOCAL_ROUTER.retry
    assert {
        "retry": budget.CLUSTER_PART.retry,
        "backoffPolicy": "exponential",
        "backoffDelay": budget.CLUSTER_PART.iso_delay,
    } == _PART_DELIVERY
