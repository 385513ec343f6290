"""The Dockerfile (no engine here to build it): pinned, non-root, and what the manifests run."""

from __future__ import annotations

import re
from pathlib import Path

from kpipe.deploy.parts import part_objects

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = (REPO_ROOT / "Dockerfile").read_text()


def test_base_images_are_pinned() -> None:
    default = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", DOCKERFILE, re.M)
    assert default is not None
    assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+", default.group(1))
    assert ":latest" not in DOCKERFILE


def test_it_runs_as_a_numeric_non_root_user() -> None:
    users = re.findall(r"^USER (\S+)$", DOCKERFILE, re.M)
    assert users
    assert users[-1].isdigit()
    assert users[-1] != "0"


def test_every_copied_path_exists_and_no_weights_are_copied() -> None:
    sources = [
        s
        for line in re.findall(r"^COPY (?!--from)(.+)$", DOCKERFILE, re.M)
        for s in line.split()[:-1]
    ]
    assert sources
    for source in sources:
        assert (REPO_ROOT / source).exists(), source
    assert not any(s.startswith("triton") for s in sources)


def test_the_default_command_serves_the_parts_source_the_manifests_name() -> None:
    assert 'CMD ["functions-framework", "--source", "functions/main.py", "--asgi"]' in DOCKERFILE
    services = [o for o in part_objects() if o["kind"] == "Service"]
    assert services
    for service in services:
        (container,) = service["spec"]["template"]["spec"]["containers"]
        assert container["command"] == ["functions-framework"]
        assert container["args"] == [
            "--source",
            "functions/main.py",
            "--target",
            "$(FUNCTION_TARGET)",
            "--asgi",
        ]
