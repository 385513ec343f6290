"""read_text through the whole stack: a `when:` on the strings it read decides a step."""

from __future__ import annotations

import pytest

from tests.conftest import encode, rendered_text
from tests.e2e.conftest import Stack

pytestmark = [pytest.mark.slow, pytest.mark.stack]

PREFIX = "read-text-e2e/"
SPEC = {
    "name": "redact-confidential",
    "trigger": {"bucket": "uploads", "prefix": PREFIX, "suffix": ".png"},
    "output": {"bucket": "processed"},
    "steps": [
        {"id": "text", "function": "detect_text"},
        {"id": "ocr", "function": "read_text", "after": ["text"]},
        {
            "id": "redact",
            "function": "blur",
            "after": ["ocr"],
            "params": {"labels": ["text"]},
            "when": 'ocr.strings.exists(s, s.contains("CONFIDENTIAL"))',
        },
    ],
}


def test_a_step_runs_only_when_the_text_read_says_so(stack: Stack) -> None:
    stack.apply(SPEC)
    stack.upload(f"{PREFIX}memo.png", encode(rendered_text(["CONFIDENTIAL", "Q3 plan"]), "PNG"))
    stack.upload(f"{PREFIX}menu.png", encode(rendered_text(["Lunch menu", "Soup 4.50"]), "PNG"))

    memo = stack.wait_run("redact-confidential", f"{PREFIX}memo.png", timeout_s=180)
    menu = stack.wait_run("redact-confidential", f"{PREFIX}menu.png", timeout_s=180)
    assert (memo["status"], menu["status"]) == ("succeeded", "succeeded"), (memo, menu)
    memo_steps = {s["id"]: s for s in memo["steps"]}
    menu_steps = {s["id"]: s for s in menu["steps"]}
    assert memo_steps["ocr"]["metadata"]["strings"] == ["CONFIDENTIAL", "Q3 plan"]
    assert menu_steps["ocr"]["metadata"]["strings"] == ["Lunch menu", "Soup 4.50"]
    assert memo_steps["redact"]["status"] == "succeeded"
    assert memo_steps["redact"]["metadata"]["blurred"] == 2
    assert menu_steps["redact"]["status"] == "skipped"
