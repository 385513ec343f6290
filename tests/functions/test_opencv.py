"""OpenCV is imported under a lock: a cold part's first burst must not see half of cv2."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.e2e.conftest import REPO


def _functions_importing_cv2(path: Path) -> list[tuple[str, bool]]:
    """(function name, whether it calls load_opencv() before its `import cv2`)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.FunctionDef):
            continue
        loaded = False
        for statement in node.body:
            if isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Call):
                func = statement.value.func
                loaded |= isinstance(func, ast.Name) and func.id == "load_opencv"
            if isinstance(statement, ast.Import) and any(a.name == "cv2" for a in statement.names):
                found.append((node.name, loaded))
    return found


def test_every_part_loads_opencv_before_it_imports_cv2() -> None:
    sources = [p for p in (REPO / "functions").rglob("*.py") if p.name != "_opencv.py"]
    uses = {
        f"{p.name}:{name}": loaded for p in sources for name, loaded in _functions_importing_cv2(p)
    }
    assert uses, "no part imports cv2: the check looks in the wrong place"
    assert [use for use, loaded in uses.items() if not loaded] == []
