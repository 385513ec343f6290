"""Object keys the router chooses: run ids, final outputs, intermediates.

Every key is deterministic, so a redelivered request overwrites instead of
duplicating, and every output key stays under ``<pipeline>/`` with no ``..``
segment, whatever the source key looks like.

Example:
    >>> final_key("privacy-blur", "2026/cat photo.jpg")
    'privacy-blur/2026/cat photo.jpg'
    >>> final_key("p", "../../etc/passwd")
    'p/__/__/etc/passwd'
    >>> final_key("p", "_runs/0f3a/resize/cat.jpg")
    'p/__runs/0f3a/resize/cat.jpg'
"""

from __future__ import annotations

import hashlib
import re

from eventing import contract

# S3 limits keys to 1024 bytes of UTF-8.
MAX_KEY_BYTES = 1024
# A part swaps a key's extension for its output format's (".webp" at most), so
# keys leave that much room under the limit.
EXTENSION_ROOM = 8
# Two or more dots, or one at the end of a segment (a part appending ".jpg"
# to "name." would make "name..jpg").
_DOTS = re.compile(r"\.{2,}|\.$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# The folder under ``<pipeline>/`` that holds the runs' intermediates (the
# contract's, which parts check); no final output may land in it, or an
# upload could overwrite a run's work.
RUNS_DIR = contract.RUNS_DIR
# Where a shadow version's final outputs go: ``<pipeline>/_shadow/v<version>/``.
SHADOW_DIR = "_shadow"


def run_id(pipeline: str, version: int, bucket: str, key: str, etag: str) -> str:
    """The id of the run of one pipeline version over one object version.

    A duplicated notification (same etag) gives the same id, so it cannot
    start a second run; a new upload under the same key (new etag) does.
    """
    identity = "\0".join((pipeline, str(version), bucket, key, etag))
    return hashlib.sha256(identity.encode()).hexdigest()[:24]


def _safe_segments(key: str) -> list[str]:
    segments = []
    for segment in key.split("/"):
        if segment in ("", "."):
            continue
        segment = _CONTROL.sub("_", segment)
        segments.append(_DOTS.sub(lambda m: "_" * len(m.group()), segment))
    return segments or ["_"]


def _fit(prefix: str, rest: str) -> str:
    """``prefix + rest``, shortened from the front of ``rest`` to fit S3's key limit."""
    key = prefix + rest
    limit = MAX_KEY_BYTES - EXTENSION_ROOM
    if len(key.encode()) <= limit:
        return key
    digest = hashlib.sha256(rest.encode()).hexdigest()[:16]
    budget = limit - len(prefix.encode()) - len(digest) - 1
    tail = rest.encode()[-budget:].decode(errors="ignore")
    return f"{prefix}{digest}-{tail}"


def final_key(
    pipeline: str, source_key: str, step: str | None = None, shadow: int | None = None
) -> str:
    """Where a final output goes: ``<pipeline>/[_shadow/v<n>/][<step>/]<source key>``.

    ``step`` is given when a pipeline has several terminal steps, so their
    outputs do not overwrite each other; ``shadow`` is the version of a
    shadow run, whose outputs never replace the live ones. A source key that
    starts with one of those folders (``_runs``, ``_shadow``) gets one more
    underscore, so no live output lands in them.
    """
    prefix = contract.pipeline_prefix(pipeline)
    if shadow is not None:
        prefix += f"{SHADOW_DIR}/v{shadow}/"
    prefix += f"{step}/" if step else ""
    segments = _safe_segments(source_key)
    if not step and segments[0] in (RUNS_DIR, SHADOW_DIR):
        segments[0] = f"_{segments[0]}"
    return _fit(prefix, "/".join(segments))


def canary_share(key: str) -> int:
    """A stable number in 0-99 for an object key: the keys below a canary's percent run it.

    Example:
        >>> canary_share("photos/cat.jpg") == canary_share("photos/cat.jpg")
        True
    """
    return int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) % 100


def intermediate_key(pipeline: str, run: str, step: str, source_key: str) -> str:
    """Where an intermediate output goes: under a per-run prefix inside the pipeline's."""
    return _fit(f"{contract.run_prefix(pipeline, run)}{step}/", _safe_segments(source_key)[-1])


def with_extension_of(key: str, like: str) -> str:
    """``key`` with its extension replaced by the one ``like`` has (or none)."""
    name = key.rsplit("/", 1)[-1]
    stem = key[: len(key) - len(name)] + (name.rsplit(".", 1)[0] if "." in name else name)
    like_name = like.rsplit("/", 1)[-1]
    return stem + ("." + like_name.rsplit(".", 1)[1] if "." in like_name else "")
