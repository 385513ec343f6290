"""cold_start_s times only answers that did the part's real work, and splits where the time goes."""

from __future__ import annotations

from typing import Any

import pytest

from bench.figures._cold import PROBES, import_timeline, parse_importtime, verdict
from bench.figures.cold_start import GOAL_S, figure
from eventing.contract import StepOutput
from kpipe.local.config import PARTS

COMPLETED = "io.kpipe.step.completed"
UPSTREAM = {"text": {"up": StepOutput((), {"count": 3})}}


def test_every_part_has_a_probe() -> None:
    assert set(PROBES) == set(PARTS)


def test_the_text_parts_work_on_a_page_and_read_text_gets_its_boxes() -> None:
    assert PROBES["detect_text"].photo == PROBES["read_text"].photo == "page"
    assert PROBES["read_text"].upstream == "text"
    # A read_text with no upstream boxes returns without calling Triton: it would not count.
    assert verdict(200, COMPLETED, {"metadata": {"strings": []}}, PROBES["read_text"])


@pytest.mark.parametrize(
    ("part", "status", "event_type", "data"),
    [
        ("detect_objects", 503, None, {"error": {"code": "model_not_ready"}}),
        ("detect_faces", 200, "io.kpipe.step.failed", {"code": "inference_failed"}),
        ("detect_faces", 200, COMPLETED, {"metadata": {"count": 0}}),
        ("detect_text", 200, COMPLETED, {"metadata": {"count": 0}}),
        ("blur", 200, COMPLETED, {"metadata": {"blurred": 0}}),
        ("annotate", 200, COMPLETED, {"metadata": {"annotated": 0}}),
        ("resize", 200, COMPLETED, {"metadata": {"resized": False}}),
    ],
)
def test_an_answer_that_did_not_do_the_work_is_not_counted(
    part: str, status: int, event_type: str | None, data: dict[str, Any]
) -> None:
    assert verdict(status, event_type, data, PROBES[part]) is not None


@pytest.mark.parametrize(
    ("part", "metadata"),
    [
        ("detect_faces", {"count": 1}),
        ("read_text", {"strings": ["Region-based"]}),
        ("blur_faces", {"blurred": 1}),
        ("resize", {"resized": True}),
        ("convert", {"format": "png"}),
        ("detect_objects", {"count": 0}),
    ],
)
def test_a_completion_that_shows_the_work_counts(part: str, metadata: dict[str, Any]) -> None:
    assert verdict(200, COMPLETED, {"metadata": metadata}, PROBES[part]) is None


def _part(total: float | None, not_counted: list[str]) -> dict[str, Any]:
    return {
        "total_s": total,
        "to_listening_s": 0.3,
        "first_answer_s": 0.4,
        "step_s": 0.2,
        "warm_answer_s": 0.25,
        "cpu_s": 0.5,
        "not_counted": not_counted,
        "runs": [],
    }


def test_a_part_that_cannot_answer_has_no_figure_and_says_why() -> None:
    measured = {
        "resize": _part(0.4, []),
        "detect_objects": _part(None, ["answered 503 without an event"]),
        "detect_faces": _part(0.9, []),
    }
    result = figure(measured, {"resize": _part(0.8, [])}, {}, UPSTREAM)
    assert result.value == {"resize": 0.4, "detect_objects": None, "detect_faces": 0.9}
    (no_model,) = [o for o in result.obstacles if o.startswith("detect_objects")]
    assert "503" in no_model
    # Over the goal: the obstacle says where the time went.
    (slow,) = [o for o in result.obstacles if o.startswith("detect_faces")]
    assert "listening port" in slow
    assert "the step itself 0.20 s" in slow
    assert not [o for o in result.obstacles if o.startswith("resize")]
    rows = {row[0]: row for row in result.tables[0].rows}
    assert rows["resize"][9:13] == (
        "0.800",
        "0.50",
        "0.500",
        "1.00",
    )  # beside functions-framework, as a ratio
    assert result.goals[0].target == GOAL_S


def test_import_lines_split_at_the_moment_the_port_listened() -> None:
    lines = [
        (0.01, "import time: self [us] | cumulative | imported package\n"),
        (0.05, "import time:      100 |       1000 |   numpy.core\n"),
        (0.10, "import time:      200 |     300000 | numpy\n"),
        (0.20, "import time:      200 |     100000 | uvicorn\n"),
        (0.40, '{"level": "INFO", "message": "a log line"}\n'),
        (0.45, "import time:      300 |      60000 | cv2\n"),
        (0.90, "import time:      300 |      70000 | tritonclient\n"),
    ]
    split = import_timeline(lines, listening_s=0.3, answered_s=0.6)
    assert split["before_listening_s"] == pytest.approx(0.4)
    assert split["during_first_answer_s"] == pytest.approx(0.06)
    assert split["slowest_before"] == [("numpy", 0.3), ("uvicorn", 0.1)]
    assert split["slowest_during"] == [("cv2", 0.06)]


def test_importtime_lines_give_depth_and_module() -> None:
    assert parse_importtime("import time:       12 |        34 |     PIL.Image\n") == (
        2,
        "PIL.Image",
        34e-6,
    )
    assert parse_importtime("import time: self [us] | cumulative | imported package") is None
