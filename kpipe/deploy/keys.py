"""The event-signing keys of a cluster: one Ed25519 key pair per principal, in the env formats.

The principals are ``router``, ``adapter`` and one ``part/<function>`` per
part of the catalogue (:mod:`eventing.signing`). Each principal's Services
get ``KPIPE_SIGNING_KEY`` = ``<key id>:<base64 of the raw 32-byte private
key>`` from its own Secret (:func:`signing_secret_name`: ``kpipe-router-signing``,
``kpipe-part-detect-faces-signing``, ...), which names its principal in the
annotation :data:`PRINCIPAL_ANNOTATION`; every receiver gets
``KPIPE_TRUSTED_KEYS`` = comma-separated ``<principal>=<key id>:<base64 of
the raw 32-byte public key>`` from the ConfigMap ``kpipe-trusted-keys``. A
key id is the principal (``/`` as ``-``) and the first 8 bytes of the public
key's SHA-256, so two keys never share one.

The key material, its formats and its parsing are
:class:`eventing.signing.SigningKey`'s; this module adds where a cluster keeps
each principal's key.

Example:
    >>> key = PrincipalKey.generate("part/resize")
    >>> PrincipalKey.parse("part/resize", key.env_value()).key_id == key.key_id
    True
    >>> key.trusted_entry().startswith("part/resize=part-resize-")
    True
    >>> signing_secret_name("part/detect_faces")
    'kpipe-part-detect-faces-signing'
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from eventing.signing import BadKey, SigningKey, role_of
from kpipe.core.errors import KpipeError

SIGNING_KEY_ENV = "KPIPE_SIGNING_KEY"
TRUSTED_KEYS_ENV = "KPIPE_TRUSTED_KEYS"
TRUSTED_KEYS_CONFIGMAP = "kpipe-trusted-keys"
# On each signing Secret: the principal whose key it holds (a label value cannot hold "/").
PRINCIPAL_ANNOTATION = "kpipe.io/signing-principal"


def signing_secret_name(principal: str) -> str:
    """The Secret holding a principal's private key: ``kpipe-<principal>-signing``.

    ``/`` and ``_`` become ``-`` (Kubernetes names have neither), so a part's
    Secret is ``kpipe-part-<its Service's name>-signing``.
    """
    return f"kpipe-{principal.replace('/', '-').replace('_', '-')}-signing"


class BadSigningKey(KpipeError, ValueError):
    """A ``KPIPE_SIGNING_KEY`` value that is not ``<key id>:<base64 of 32 bytes>``."""

    code = "bad_signing_key"

    def __init__(self, principal: str, reason: str) -> None:
        super().__init__(f"the {principal} signing key is malformed: {reason}")
        self.principal = principal
        self.reason = reason


@dataclass(frozen=True, eq=False)
class PrincipalKey:
    """One principal's signing key (:class:`eventing.signing.SigningKey`), as a cluster keeps it."""

    principal: str
    key: SigningKey

    @classmethod
    def generate(cls, principal: str) -> PrincipalKey:
        """A fresh key pair for ``principal``, its id the principal and a hash of its public key.

        Raises:
            BadSigningKey: ``principal`` is not router, adapter or part/<function>.
        """
        try:
            return cls(principal, SigningKey.for_principal(principal))
        except BadKey as exc:
            raise BadSigningKey(principal, exc.message) from None

    @classmethod
    def parse(cls, principal: str, value: str) -> PrincipalKey:
        """The key in a ``KPIPE_SIGNING_KEY`` value.

        Raises:
            BadSigningKey: not ``<key id>:<base64 of 32 bytes>``, or ``principal``
                is not router, adapter or part/<function>.
        """
        try:
            role_of(principal)
            key = SigningKey.parse(value)
        except BadKey as exc:
            raise BadSigningKey(principal, exc.message) from None
        if any(c in key.key_id for c in ",=") or key.key_id != key.key_id.strip():
            raise BadSigningKey(principal, f"key id {key.key_id!r} has a separator in it")
        return cls(principal, key)

    @property
    def key_id(self) -> str:
        return self.key.key_id

    def __eq__(self, other: object) -> bool:
        # The same principal and the same private key (key objects do not compare).
        if not isinstance(other, PrincipalKey):
            return NotImplemented
        return (self.principal, self.env_value()) == (other.principal, other.env_value())

    def __hash__(self) -> int:
        return hash((self.principal, self.key_id))

    def env_value(self) -> str:
        """The ``KPIPE_SIGNING_KEY`` value of this key (a secret)."""
        return self.key.entry()

    def trusted_entry(self) -> str:
        """This key's entry in ``KPIPE_TRUSTED_KEYS``: ``<principal>=<key id>:<base64 public>``."""
        return self.key.trusted_entry(self.principal)


def trusted_keys_value(keys: Iterable[PrincipalKey]) -> str:
    """The ``KPIPE_TRUSTED_KEYS`` value that trusts exactly ``keys``."""
    return ",".join(k.trusted_entry() for k in keys)


def trusted_entries(value: str) -> set[str]:
    """The entries of a ``KPIPE_TRUSTED_KEYS`` value, spaces around them dropped."""
    return {entry.strip() for entry in value.split(",") if entry.strip()}
