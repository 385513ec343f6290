"""The local stack's secrets: an Ed25519 key per principal, and the webhook token.

``kpipe up`` makes them on its first start, with no configuration, and
gives each process only its own private key (``KPIPE_SIGNING_KEY``): the
router's, the adapter's, and each part's own (``part-<function>.key``),
plus every principal's public key (``KPIPE_TRUSTED_KEYS``), all in
``KPIPE_HOME/keys``. A key file is
``<key id>:<base64 private key>``, readable by its owner only (mode 0600).
The webhook token (``webhook.token``) is what the S3 server sends the
notification adapter, like MinIO's ``auth_token``.
To rotate the local keys, stop the stack and delete the folder: the next
start makes new ones (the stack's own processes are its only receivers).

Example:
    >>> keys = ensure_keys(Path(".kpipe"), ["resize"])  # doctest: +SKIP
    >>> sorted(keys)  # doctest: +SKIP
    ['adapter', 'part/resize', 'router']
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterable
from pathlib import Path

from eventing.signing import Role, SigningKey, TrustedKeys, part_principal


def _secret(path: Path, make: str) -> str:
    """The content of ``path``, which is written first with ``make`` if it does not exist.

    The value is written and fsynced in a temporary file (0600 from its first
    byte), then linked to ``path``, which fails if it exists: two starts at once
    never both write, and neither ever reads a half-written file.
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.exists():
        return path.read_text(encoding="ascii").strip()
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as out:
            out.write(make)
            out.flush()
            os.fsync(out.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            return path.read_text(encoding="ascii").strip()
    finally:
        temporary.unlink(missing_ok=True)
    return make


def ensure_keys(home: Path, parts: Iterable[str] = ()) -> dict[str, SigningKey]:
    """The router's, the adapter's and each of ``parts``' keys, by principal, from ``home/keys``.

    Each is made (mode 0600) where missing; a part's file is ``part-<function>.key``.

    Raises:
        eventing.signing.BadKey: a key file is not a valid key.
    """
    principals = [Role.ROUTER.value, Role.ADAPTER.value, *map(part_principal, parts)]
    return {
        principal: SigningKey.parse(
            _secret(
                home / "keys" / f"{principal.replace('/', '-')}.key",
                SigningKey.for_principal(principal).entry(),
            )
        )
        for principal in principals
    }


def ensure_webhook_token(home: Path) -> str:
    """The token the S3 server sends the adapter, from ``home/keys``; made where missing."""
    return _secret(home / "keys" / "webhook.token", secrets.token_urlsafe(32))


def trusted_keys_env(keys: dict[str, SigningKey]) -> str:
    """``KPIPE_TRUSTED_KEYS`` for ``keys``: every principal's public key."""
    value = ",".join(key.trusted_entry(principal) for principal, key in keys.items())
    TrustedKeys.parse(value)  # what the receivers will parse
    return value
