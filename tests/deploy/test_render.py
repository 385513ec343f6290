"""``kpipe deploy render``: the kustomize subset, the CLI, and agreement with kubectl."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from kpipe.deploy.cli import deploy
from kpipe.deploy.render import UnsupportedKustomization, overlay_dir, render


def _key(obj: dict[str, Any]) -> tuple[str, str, str | None, str]:
    meta = obj["metadata"]
    return obj["apiVersion"], obj["kind"], meta.get("namespace"), meta["name"]


def test_render_agrees_with_kubectl_kustomize(overlay: str) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.fail("kubectl (with kustomize) is needed to check the renderer against it")
    out = subprocess.run(
        [kubectl, "kustomize", str(overlay_dir(overlay))],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    theirs = {_key(o): o for o in yaml.safe_load_all(out) if o}
    ours = {_key(o): o for o in render(overlay_dir(overlay))}
    assert ours == theirs


def test_cli_prints_multi_document_yaml(overlay: str) -> None:
    result = CliRunner().invoke(deploy, ["render", "--overlay", overlay])
    assert result.exit_code == 0, result.output
    docs = [d for d in yaml.safe_load_all(result.output) if d]
    assert [_key(d) for d in docs] == [_key(o) for o in render(overlay_dir(overlay))]


def test_namespace_and_image_overrides() -> None:
    result = CliRunner().invoke(
        deploy,
        ["render", "--overlay", "gpu", "--namespace", "vision", "--image", "reg:5000/kp:dev1"],
    )
    assert result.exit_code == 0, result.output
    docs = [d for d in yaml.safe_load_all(result.output) if d]
    assert {d["metadata"]["namespace"] for d in docs} == {"vision"}
    router = next(d for d in docs if d["metadata"]["name"] == "router")
    assert router["spec"]["template"]["spec"]["containers"][0]["image"] == "reg:5000/kp:dev1"


def test_overlays_differ_only_where_they_say() -> None:
    dev = {_key(o): o for o in render(overlay_dir("dev"))}
    gpu = {_key(o): o for o in render(overlay_dir("gpu"))}
    assert dev.keys() == gpu.keys()
    assert [k[3] for k in dev if dev[k] != gpu[k]] == ["triton"]


@pytest.mark.parametrize(
    ("kustomization", "reason"),
    [
        (
            "resources: [a.yaml]\nsecretGenerator: []\n",
            "unsupported fields ['secretGenerator']",
        ),
        (
            "configMapGenerator: [{name: p, files: [p.json]}]\n",
            "needs disableNameSuffixHash",
        ),
        (
            "configMapGenerator: [{name: p, literals: [a=b],"
            " options: {disableNameSuffixHash: true}}]\n",
            "configMapGenerator fields",
        ),
        (
            "configMapGenerator: [{name: p, files: [../p.json],"
            " options: {disableNameSuffixHash: true}}]\n",
            "is outside",
        ),
        (
            "resources: [a.yaml]\npatches: [{path: p.yaml, target: {kind: X}}]\n",
            "only path or patch",
        ),
        ("resources: [a.yaml]\npatches: [{path: p.yaml}]\n", "matches 0 objects"),
    ],
)
def test_what_the_renderer_cannot_honour_is_refused(
    tmp_path: Path, kustomization: str, reason: str
) -> None:
    (tmp_path / "kustomization.yaml").write_text(kustomization)
    (tmp_path / "a.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n")
    (tmp_path / "p.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\n")
    with pytest.raises(UnsupportedKustomization, match=reason.replace("[", r"\[")):
        render(tmp_path)


def test_strategic_merge_merges_containers_by_name(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text("resources: [d.yaml]\npatches: [{path: p.yaml}]\n")
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "d"},
        "spec": {
            "template": {
                "spec": {
                    "containers": [{"name": "a", "image": "x:1"}, {"name": "b", "image": "y:1"}]
                }
            }
        },
    }
    patch = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "d"},
        "spec": {"template": {"spec": {"containers": [{"name": "b", "args": ["--v"]}]}}},
    }
    (tmp_path / "d.yaml").write_text(yaml.safe_dump(deployment))
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(patch))
    [out] = render(tmp_path)
    assert out["spec"]["template"]["spec"]["containers"] == [
        {"name": "a", "image": "x:1"},
        {"name": "b", "image": "y:1", "args": ["--v"]},
    ]


def test_config_map_generator_reads_files_as_kustomize_does(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text(
        "configMapGenerator:\n"
        "  - name: policies\n"
        "    files: [p/a.json, renamed.json=p/b.json]\n"
        "    options:\n"
        "      disableNameSuffixHash: true\n"
        "      labels: {app.kubernetes.io/part-of: kpipe}\n"
    )
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "a.json").write_text('{\n  "a": 1\n}\n')
    (tmp_path / "p" / "b.json").write_text('{"b": 2}')
    [out] = render(tmp_path, namespace="ns")
    assert out == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "policies",
            "labels": {"app.kubernetes.io/part-of": "kpipe"},
            "namespace": "ns",
        },
        "data": {"a.json": '{\n  "a": 1\n}\n', "renamed.json": '{"b": 2}'},
    }
