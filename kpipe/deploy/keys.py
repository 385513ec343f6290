"""The event-signing keys of a cluster: one Ed25519 key pair per role, in the env formats.

Each role's Services get ``KPIPE_SIGNING_KEY`` = ``<key id>:<base64 of the raw
32-byte private key>`` from the Secret ``kpipe-<role>-signing``; every
receiver gets ``KPIPE_TRUSTED_KEYS`` = comma-separated
``<role>=<key id>:<base64 of the raw 32-byte public key>`` from the ConfigMap
``kpipe-trusted-keys``. A key id is the role and the first 8 bytes of the
public key's SHA-256, so two keys never share one.

The key material, its formats and its parsing are
:class:`eventing.signing.SigningKey`'s; this module adds where a cluster keeps
each role's key.

Example:
    >>> key = RoleKey.generate("parts")
    >>> RoleKey.parse("parts", key.env_value()).key_id == key.key_id
    True
    >>> key.trusted_entry().startswith("parts=parts-")
    True
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from eventing.signing import BadKey, Role, SigningKey
from kpipe.core.errors import KpipeError

SIGNING_ROLES = tuple(role.value for role in Role)
SIGNING_KEY_ENV = "KPIPE_SIGNING_KEY"
TRUSTED_KEYS_ENV = "KPIPE_TRUSTED_KEYS"
TRUSTED_KEYS_CONFIGMAP = "kpipe-trusted-keys"


def signing_secret_name(role: str) -> str:
    """The Secret holding a role's private key: ``kpipe-<role>-signing``."""
    return f"kpipe-{role}-signing"


class BadSigningKey(KpipeError, ValueError):
    """A ``KPIPE_SIGNING_KEY`` value that is not ``<key id>:<base64 of 32 bytes>``."""

    code = "bad_signing_key"

    def __init__(self, role: str, reason: str) -> None:
        super().__init__(f"the {role} signing key is malformed: {reason}")
        self.role = role
        self.reason = reason


@dataclass(frozen=True, eq=False)
class RoleKey:
    """One role's signing key (:class:`eventing.signing.SigningKey`), as the cluster stores it."""

    role: str
    key: SigningKey

    @classmethod
    def generate(cls, role: str) -> RoleKey:
        """A fresh key pair for ``role``, its id the role and a hash of its public key."""
        return cls(role, SigningKey.for_principal(role))

    @classmethod
    def parse(cls, role: str, value: str) -> RoleKey:
        """The key in a ``KPIPE_SIGNING_KEY`` value.

        Raises:
            BadSigningKey: not ``<key id>:<base64 of 32 bytes>``.
        """
        try:
            key = SigningKey.parse(value)
        except BadKey as exc:
            raise BadSigningKey(role, exc.message) from None
        if any(c in key.key_id for c in ",=") or key.key_id != key.key_id.strip():
            raise BadSigningKey(role, f"key id {key.key_id!r} has a separator in it")
        return cls(role, key)

    @property
    def key_id(self) -> str:
        return self.key.key_id

    def __eq__(self, other: object) -> bool:
        # The same role and the same private key (key objects do not compare).
        if not isinstance(other, RoleKey):
            return NotImplemented
        return (self.role, self.env_value()) == (other.role, other.env_value())

    def __hash__(self) -> int:
        return hash((self.role, self.key_id))

    def env_value(self) -> str:
        """The ``KPIPE_SIGNING_KEY`` value of this key (a secret)."""
        return self.key.entry()

    def trusted_entry(self) -> str:
        """This key's entry in ``KPIPE_TRUSTED_KEYS``: ``<role>=<key id>:<base64 public>``."""
        return self.key.trusted_entry(self.role)


def trusted_keys_value(keys: Iterable[RoleKey]) -> str:
    """The ``KPIPE_TRUSTED_KEYS`` value that trusts exactly ``keys``."""
    return ",".join(k.trusted_entry() for k in keys)


def trusted_entries(value: str) -> set[str]:
    """The entries of a ``KPIPE_TRUSTED_KEYS`` value, spaces around them dropped."""
    return {entry.strip() for entry in value.split(",") if entry.strip()}
