"""The house stays as built: libraries below, tools on top, a floor that stands alone.

The contracts are in ``[tool.importlinter]`` of ``pyproject.toml``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("kpipe", "eventing", "functions", "router")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """``lint-imports`` on the packages under ``root``, with the repository's contracts."""
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo", str(REPO / "pyproject.toml")],
        cwd=root,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def copy_of_the_tree(tmp_path: Path) -> Path:
    for package in PACKAGES:
        shutil.copytree(
            REPO / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    return tmp_path


def test_every_import_keeps_to_the_layers() -> None:
    result = _lint_imports(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 2 kept, 0 broken." in result.stdout


@pytest.mark.parametrize(
    ("module", "upward"),
    [
        ("kpipe/core/errors.py", "import eventing.contract"),
        ("eventing/contract.py", "import functions.part"),
        ("functions/step.py", "import router.engine"),
        ("router/engine.py", "import kpipe.local.stack"),
        ("eventing/signing.py", "import kpipe.cli"),
        ("router/store.py", "import router.__main__"),
        ("kpipe/local/stack.py", "import kpipe.local.broker.__main__"),
    ],
)
def test_an_upward_import_breaks_a_contract(
    copy_of_the_tree: Path, module: str, upward: str
) -> None:
    path = copy_of_the_tree / module
    path.write_text(path.read_text() + f"\n{upward}  # a breach, on purpose\n")
    result = _lint_imports(copy_of_the_tree)
    assert result.returncode == 1, result.stdout
    assert "BROKEN" in result.stdout


def test_the_floor_imports_alone_in_a_fresh_interpreter() -> None:
    floor = sorted(
        f"kpipe.core.{p.stem}"
        for p in (REPO / "kpipe" / "core").glob("*.py")
        if p.stem != "__init__"
    )
    script = (
        f"import sys\nfor name in {floor!r}:\n    __import__(name)\n"
        f"print(__import__('json').dumps(sorted(m for m in sys.modules "
        f"if m.split('.')[0] in {PACKAGES!r})))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    loaded = json.loads(result.stdout)
    assert "kpipe.core.errors" in loaded
    assert [m for m in loaded if m != "kpipe" and not m.startswith("kpipe.core")] == []
