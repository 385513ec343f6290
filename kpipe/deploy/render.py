"""Renders ``deploy/knative`` the way ``kubectl kustomize`` does, for the subset kpipe uses.

Supported kustomization fields: ``resources`` (files and directories),
``patches`` (``path`` or inline ``patch``; the target is the patch's own kind
and name), ``configMapGenerator`` (``files`` only, with
``options.disableNameSuffixHash: true`` and optional ``options.labels``),
``images`` and ``namespace``. Anything else is refused instead of being
silently ignored. Patches merge maps recursively; for built-in kinds,
lists with a strategic-merge key (containers and env by ``name``, ...) merge
by that key, as kustomize does with the Kubernetes schema; for custom
resources (Knative) lists are replaced, as kustomize does without a schema.
A test checks the output agrees with ``kubectl kustomize`` where it exists.

Example:
    >>> objs = render(KNATIVE_DIR / "overlays" / "gpu")
    >>> sorted({o["kind"] for o in objs})[:3]
    ['Broker', 'ConfigMap', 'Deployment']
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from kpipe.core.errors import KpipeError

Obj = dict[str, Any]

KNATIVE_DIR = Path(__file__).resolve().parents[2] / "deploy" / "knative"
OVERLAYS = ("dev", "gpu")

_SUPPORTED = {
    "apiVersion",
    "kind",
    "resources",
    "patches",
    "configMapGenerator",
    "images",
    "namespace",
}
_CLUSTER_SCOPED = {"Namespace", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding"}
# Built-in API groups: kustomize knows their schema and merges lists by key.
_BUILTIN_GROUPS = {"", "apps", "batch", "policy", "networking.k8s.io", "rbac.authorization.k8s.io"}
_MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "ports": "containerPort",
    "imagePullSecrets": "name",
}
# The kpipe image every kpipe container runs (pinned in base/kustomization.yaml).
IMAGE = "ghcr.io/kpipe/kpipe"
# Apply order: what others refer to first. A Knative Service is "Service.serving.knative.dev".
KIND_ORDER = (
    "Namespace",
    "ConfigMap",
    "Secret",
    "PersistentVolumeClaim",
    "Service",
    "StatefulSet",
    "Deployment",
    "Job",
    "Broker",
    "Service.serving.knative.dev",
    "Trigger",
    "SinkBinding",
    # Last: Knative refuses them while authentication-oidc is off (apply skips them).
    "EventPolicy",
)


class UnsupportedKustomization(KpipeError, ValueError):
    """A kustomization uses a field or form this renderer does not implement."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


def overlay_dir(overlay: str | None) -> Path:
    """The directory of an overlay name (``dev``, ``gpu``), or the base for None."""
    return KNATIVE_DIR / "base" if overlay in (None, "base") else KNATIVE_DIR / "overlays" / overlay


def render(directory: Path, namespace: str | None = None, image: str | None = None) -> list[Obj]:
    """Build the objects of a kustomization directory, in apply order.

    Args:
        directory: a directory holding ``kustomization.yaml``.
        namespace: put every namespaced object in this namespace instead.
        image: the kpipe image (``repo:tag``) instead of the pinned one.

    Returns:
        The objects as plain dicts, sorted by :data:`KIND_ORDER` then name.

    Raises:
        UnsupportedKustomization: a field or patch this renderer cannot honour.
        FileNotFoundError: the directory or a file it names does not exist.
    """
    objs = _build(directory.resolve())
    if image is not None:
        name, tag = _split_image(image)
        _set_images(objs, IMAGE, {"newName": name, "newTag": tag} if tag else {"newName": name})
    if namespace is not None:
        _set_namespace(objs, namespace)
    return sorted(objs, key=sort_key)


def sort_key(obj: Obj) -> tuple[int, str, str]:
    """Apply order of an object: its kind's place in :data:`KIND_ORDER`, then its name."""
    group = _group(obj["apiVersion"])
    kind = f"{obj['kind']}.{group}" if group and group not in _BUILTIN_GROUPS else obj["kind"]
    if kind not in KIND_ORDER:
        kind = obj["kind"]
    rank = KIND_ORDER.index(kind) if kind in KIND_ORDER else len(KIND_ORDER)
    return rank, obj["kind"], obj["metadata"]["name"]


def to_yaml(objs: Iterable[Obj]) -> str:
    """Multi-document YAML, as ``kubectl kustomize`` prints it."""
    return "---\n".join(yaml.safe_dump(o, sort_keys=False, default_flow_style=False) for o in objs)


def _build(directory: Path) -> list[Obj]:
    path = directory / "kustomization.yaml"
    spec = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    unknown = set(spec) - _SUPPORTED
    if unknown:
        raise UnsupportedKustomization(path, f"unsupported fields {sorted(unknown)}")
    objs: list[Obj] = []
    for entry in spec.get("resources", []):
        target = (directory / entry).resolve()
        objs += _build(target) if target.is_dir() else _load(target)
    objs += [_generate_configmap(path, directory, g) for g in spec.get("configMapGenerator", [])]
    for patch in spec.get("patches", []):
        _apply_patch(objs, _patch_body(path, directory, patch), path)
    for image in spec.get("images", []):
        _set_images(objs, image["name"], image)
    if "namespace" in spec:
        _set_namespace(objs, spec["namespace"])
    return objs


def _load(path: Path) -> list[Obj]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]


def _generate_configmap(path: Path, directory: Path, generator: Obj) -> Obj:
    """A ConfigMap from files, as kustomize's configMapGenerator makes it (no name hash).

    A name hash would need every reference to the ConfigMap rewritten, which
    this renderer does not do, so a generator without
    ``disableNameSuffixHash: true`` is refused.
    """
    if set(generator) - {"name", "files", "options"}:
        raise UnsupportedKustomization(path, f"configMapGenerator fields {sorted(generator)}")
    options = generator.get("options", {})
    if set(options) - {"disableNameSuffixHash", "labels"}:
        raise UnsupportedKustomization(path, f"configMapGenerator options {sorted(options)}")
    if options.get("disableNameSuffixHash") is not True:
        raise UnsupportedKustomization(path, "configMapGenerator needs disableNameSuffixHash")
    data = {}
    for entry in generator.get("files", []):
        key, _, source = entry.rpartition("=")
        file = (directory / source).resolve()
        if not file.is_relative_to(directory):
            raise UnsupportedKustomization(path, f"{source} is outside {directory}")
        data[key or file.name] = file.read_text(encoding="utf-8")
    metadata: Obj = {"name": generator["name"]}
    if options.get("labels"):
        metadata["labels"] = dict(options["labels"])
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": data}


def _patch_body(path: Path, directory: Path, patch: Obj) -> Obj:
    if set(patch) - {"path", "patch"}:
        raise UnsupportedKustomization(path, f"patch fields {sorted(patch)}: only path or patch")
    body = _load(directory / patch["path"]) if "path" in patch else [yaml.safe_load(patch["patch"])]
    if len(body) != 1 or not isinstance(body[0], dict):
        raise UnsupportedKustomization(path, "a patch must be one object (no JSON 6902 lists)")
    return body[0]


def _apply_patch(objs: list[Obj], patch: Obj, path: Path) -> None:
    key = _identity(patch)
    matches = [o for o in objs if _identity(o) == key]
    if len(matches) != 1:
        raise UnsupportedKustomization(path, f"patch {key} matches {len(matches)} objects")
    _merge(matches[0], patch, strategic=key[0] in _BUILTIN_GROUPS)


def _identity(obj: Obj) -> tuple[str, str, str]:
    return _group(obj["apiVersion"]), obj["kind"], obj["metadata"]["name"]


def _merge(base: Obj, patch: Obj, strategic: bool) -> None:
    for key, value in patch.items():
        current = base.get(key)
        if value is None:
            base.pop(key, None)
        elif isinstance(value, dict) and isinstance(current, dict):
            _merge(current, value, strategic)
        elif (
            strategic
            and key in _MERGE_KEYS
            and isinstance(value, list)
            and isinstance(current, list)
        ):
            _merge_list(current, value, _MERGE_KEYS[key], strategic)
        else:
            base[key] = copy.deepcopy(value)


def _merge_list(current: list[Obj], patch: list[Obj], merge_key: str, strategic: bool) -> None:
    for item in patch:
        found = next((c for c in current if c.get(merge_key) == item.get(merge_key)), None)
        if found is None:
            current.append(copy.deepcopy(item))
        else:
            _merge(found, item, strategic)


def _group(api_version: str) -> str:
    return api_version.rpartition("/")[0]


def _split_image(ref: str) -> tuple[str, str | None]:
    name, sep, tag = ref.rpartition(":")
    if not sep or "/" in tag:
        return ref, None
    return name, tag


def _set_images(objs: list[Obj], name: str, image: Obj) -> None:
    for container in _containers(objs):
        current, tag = _split_image(container.get("image", ""))
        if current != name:
            continue
        new_tag = image.get("newTag", tag)
        new_name = image.get("newName", current)
        container["image"] = f"{new_name}:{new_tag}" if new_tag else new_name


def _containers(node: Any) -> Iterable[Obj]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("containers", "initContainers") and isinstance(value, list):
                yield from (c for c in value if isinstance(c, dict))
            else:
                yield from _containers(value)
    elif isinstance(node, list):
        for item in node:
            yield from _containers(item)


def _set_namespace(objs: list[Obj], namespace: str) -> None:
    for obj in objs:
        if obj["kind"] not in _CLUSTER_SCOPED:
            obj["metadata"]["namespace"] = namespace
