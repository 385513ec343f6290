"""A part for the back-pressure tests: it holds its step slot a while and counts its runs."""

from __future__ import annotations

import threading
import time

from functions.part import Group, Params, Part, PartResult, Picture, StepContext

HOLD_S = 0.3
RUNS: list[str] = []  # the run id of every execution, in order
_LOCK = threading.Lock()


class SlowParams(Params):
    pass


def _run(pictures: list[Picture], params: SlowParams, context: StepContext) -> PartResult:
    time.sleep(HOLD_S)
    with _LOCK:
        RUNS.append(context.source.key)
    return PartResult(pictures[0])


PART = Part(
    name="slow",
    group=Group.PRE,
    summary="Holds its slot for HOLD_S seconds, then passes its picture on.",
    params=SlowParams,
    run=_run,
)
