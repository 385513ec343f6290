"""The local stack's secrets: made once, private to their owner, one key per principal."""

from __future__ import annotations

import stat
from pathlib import Path

from eventing.signing import TrustedKeys
from kpipe.local.keys import ensure_keys, ensure_webhook_token, trusted_keys_env


def test_keys_are_made_once_and_only_their_owner_can_read_them(tmp_path: Path) -> None:
    first = ensure_keys(tmp_path, ["resize", "detect_faces"])
    again = ensure_keys(tmp_path, ["resize", "detect_faces"])
    assert {p: key.entry() for p, key in first.items()} == {
        p: key.entry() for p, key in again.items()
    }
    assert set(first) == {"router", "adapter", "part/resize", "part/detect_faces"}
    # Every part its own key: none is shared.
    assert len({key.public_entry() for key in first.values()}) == len(first)
    assert stat.S_IMODE((tmp_path / "keys").stat().st_mode) == 0o700
    for name in ("router", "adapter", "part-resize", "part-detect_faces"):
        assert stat.S_IMODE((tmp_path / "keys" / f"{name}.key").stat().st_mode) == 0o600


def test_the_trusted_keys_env_holds_each_roles_public_key(tmp_path: Path) -> None:
    keys = ensure_keys(tmp_path, ["resize"])
    trusted = TrustedKeys.parse(trusted_keys_env(keys))
    assert {role: set(ids) for role, ids in trusted.keys.items()} == {
        role: {key.key_id} for role, key in keys.items()
    }
    assert all(key.entry().split(":")[1] not in trusted_keys_env(keys) for key in keys.values())


def test_the_webhook_token_is_made_once_and_private(tmp_path: Path) -> None:
    token = ensure_webhook_token(tmp_path)
    assert len(token) >= 32
    assert ensure_webhook_token(tmp_path) == token
    assert stat.S_IMODE((tmp_path / "keys" / "webhook.token").stat().st_mode) == 0o600
