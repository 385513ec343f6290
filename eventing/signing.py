"""Signed kpipe events: a receiver knows which kpipe principal sent an event, whatever carried it.

Every kpipe event that makes something happen is signed by the one
principal that may send it, with Ed25519, and checked by its receiver
against that principal's public keys alone:

=========================  ========================  ==============================
event type                 signed by                 checked by
=========================  ========================  ==============================
``object.created``         ``adapter``               router
``step.requested``         ``router``                the part named in ``kpipefunction``
``step.completed/failed``  ``part/<kpipefunction>``  router
``run.completed/failed``   ``router``                anyone who listens
=========================  ========================  ==============================

Each part is its own principal, ``part/<function>``, with its own key: an
answer verifies only under the key of the function it names, and the router
then checks that this function is the step's (so a part that is broken into
can speak only for itself, never answer for another part's step). A part
holds only its own key and the router's public key, so it cannot ask another
part to do anything either; only the adapter, which checked MinIO's webhook
token, can start a run.

The signature covers the exact values acted on: a fixed prefix, then the
canonical JSON (sorted keys, no spaces, ASCII) of the event's ``id``,
``type``, ``source``, ``subject``, ``time``, kpipe's extension attributes
(``kpipepipeline``, ``kpipeversion``, ``kpiperun``, ``kpipestep``,
``kpipefunction``, ``kpipekeyid``) and its JSON ``data``, as Python's
``json`` writes the parsed data: a broker may change the body's whitespace
and key order, and rewrite ``traceparent`` (tracing does), but a broker that
re-encoded numbers (``12.0`` as ``12``) would break the signature, and it
may not change anything signed. The signature and the signing key's id
travel in the extension attributes ``kpipesignature`` and ``kpipekeyid``.

Keys rotate without downtime, one principal at a time: a receiver trusts
every key listed for a principal (``KPIPE_TRUSTED_KEYS``), so add the new
public key there and roll the receivers, then give the sender the new
private key (``KPIPE_SIGNING_KEY``) and roll it, then drop the old public key.

Example:
    >>> key = SigningKey.generate("router-1")
    >>> trusted = TrustedKeys.parse(f"router={key.public_entry()}")
    >>> event = Event(EventType.RUN_COMPLETED, "/kpipe/router", {"run": "r"})
    >>> trusted.verify(key.sign(event)).data
    {'run': 'r'}
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC
from enum import StrEnum

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from eventing.contract import Event, EventType
from eventing.errors import EventingError

_PREFIX = b"kpipe-event-signature-v1\n"


class Role(StrEnum):
    """Who may send what: the router, the adapter, or a part (one principal per function)."""

    ROUTER = "router"
    ADAPTER = "adapter"
    PART = "part"


# The only role whose keys may sign each event type.
SIGNER: Mapping[EventType, Role] = {
    EventType.OBJECT_CREATED: Role.ADAPTER,
    EventType.STEP_REQUESTED: Role.ROUTER,
    EventType.STEP_COMPLETED: Role.PART,
    EventType.STEP_FAILED: Role.PART,
    EventType.RUN_COMPLETED: Role.ROUTER,
    EventType.RUN_FAILED: Role.ROUTER,
}


class BadKey(EventingError, ValueError):
    """A configured key is not ``<key id>:<base64 of 32 bytes>``."""

    code = "bad_key"


class Unauthenticated(EventingError, PermissionError):
    """An event that is unsigned, or not signed by a key its type's role holds; answered 401."""

    code = "unauthenticated"


def part_principal(function: str) -> str:
    """The principal a part answers as: ``part/<function>``.

    Example:
        >>> part_principal("detect_faces")
        'part/detect_faces'
    """
    return f"{Role.PART}/{function}"


def role_of(principal: str) -> Role:
    """The role of a principal (``router``, ``adapter`` or ``part/<function>``).

    Raises:
        BadKey: it is none of those (``parts``, the one key all parts shared
            before each part had its own, included).
    """
    if principal in (Role.ROUTER, Role.ADAPTER):
        return Role(principal)
    kind, sep, function = principal.partition("/")
    if kind == Role.PART and sep and function and "/" not in function:
        return Role.PART
    if principal == "parts":
        raise BadKey(
            "the shared 'parts' key is gone: each part has its own key, trusted as "
            "'part/<function>=<key id>:<base64 key>'"
        )
    raise BadKey(f"unknown principal {principal!r}: router, adapter or part/<function>")


def signer_of(event: Event) -> str:
    """The one principal whose key may sign ``event``; '' for a part's answer naming no function."""
    role = SIGNER[event.type]
    if role is not Role.PART:
        return role.value
    function = event.context.function if event.context else ""
    return part_principal(function) if function else ""


def signed_bytes(event: Event) -> bytes:
    """The bytes a signature of ``event`` covers (see the module docstring)."""
    ctx = event.context
    fields = {
        "id": event.id,
        "type": event.type.value,
        "source": event.source,
        "subject": event.subject,
        "time": event.time.astimezone(UTC).isoformat(),
        "keyid": event.key_id,
        "pipeline": ctx.pipeline if ctx else None,
        "version": ctx.version if ctx else None,
        "run": ctx.run if ctx else None,
        "step": ctx.step if ctx else None,
        "function": ctx.function if ctx else None,
        "data": event.data,
    }
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return _PREFIX + canonical.encode("ascii")


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _unb64(text: str, what: str) -> bytes:
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise BadKey(f"{what} is not base64") from None
    if len(raw) != 32:
        raise BadKey(f"{what} is {len(raw)} bytes, not 32")
    return raw


def _split_entry(entry: str, what: str) -> tuple[str, str]:
    key_id, sep, material = entry.strip().partition(":")
    if not sep or not key_id or not material:
        raise BadKey(f"{what} must be '<key id>:<base64 key>'")
    return key_id, material


@dataclass(frozen=True)
class SigningKey:
    """One role's private key and its id."""

    key_id: str
    private: Ed25519PrivateKey

    @classmethod
    def generate(cls, key_id: str) -> SigningKey:
        return cls(key_id, Ed25519PrivateKey.generate())

    @classmethod
    def for_principal(cls, principal: str) -> SigningKey:
        """A fresh key for ``principal``; its id is the principal and a hash of its public key.

        So two keys never share an id, which is what lets receivers trust an old
        and a new key of one principal side by side while it is rotated.
        ``part/resize``'s key id is ``part-resize-<16 hex digits>``.
        """
        role_of(principal)
        private = Ed25519PrivateKey.generate()
        public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        name = principal.replace("/", "-")
        return cls(f"{name}-{hashlib.sha256(public).hexdigest()[:16]}", private)

    @classmethod
    def parse(cls, entry: str) -> SigningKey:
        """From ``<key id>:<base64 of the 32-byte raw private key>`` (``KPIPE_SIGNING_KEY``)."""
        key_id, material = _split_entry(entry, "KPIPE_SIGNING_KEY")
        raw = _unb64(material, f"the private key {key_id!r}")
        return cls(key_id, Ed25519PrivateKey.from_private_bytes(raw))

    def entry(self) -> str:
        """The ``KPIPE_SIGNING_KEY`` value of this key (a secret)."""
        from cryptography.hazmat.primitives.serialization import NoEncryption, PrivateFormat

        raw = self.private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        return f"{self.key_id}:{_b64(raw)}"

    def public_entry(self) -> str:
        """``<key id>:<base64 public key>``, for a principal's entry in ``KPIPE_TRUSTED_KEYS``."""
        raw = self.private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        return f"{self.key_id}:{_b64(raw)}"

    def trusted_entry(self, principal: str) -> str:
        """This key's ``KPIPE_TRUSTED_KEYS`` entry for ``principal``: ``<principal>=<public>``."""
        return f"{principal}={self.public_entry()}"

    def sign(self, event: Event) -> Event:
        """``event`` with this key's id and its signature."""
        keyed = dataclasses.replace(event, key_id=self.key_id, signature=None)
        signature = self.private.sign(signed_bytes(keyed))
        return dataclasses.replace(keyed, signature=_b64(signature))

    def __repr__(self) -> str:
        return f"SigningKey({self.key_id!r}, <private>)"


@dataclass(frozen=True)
class TrustedKeys:
    """The public keys a receiver accepts, per principal and key id."""

    keys: Mapping[str, Mapping[str, Ed25519PublicKey]]

    @classmethod
    def parse(cls, text: str) -> TrustedKeys:
        """From ``KPIPE_TRUSTED_KEYS``: comma-separated ``<principal>=<key id>:<base64 key>``.

        Raises:
            BadKey: an entry is not of that form, or names no known principal.
        """
        keys: dict[str, dict[str, Ed25519PublicKey]] = {}
        for entry in (e for e in text.split(",") if e.strip()):
            principal, sep, rest = entry.strip().partition("=")
            principal = principal.strip()
            if not sep:
                raise BadKey("each KPIPE_TRUSTED_KEYS entry is '<principal>=<key id>:<base64 key>'")
            role_of(principal)
            key_id, material = _split_entry(rest, f"the trusted key of {principal}")
            raw = _unb64(material, f"the public key {key_id!r}")
            keys.setdefault(principal, {})[key_id] = Ed25519PublicKey.from_public_bytes(raw)
        return cls(keys)

    @classmethod
    def of(cls, entries: Mapping[str, Iterable[SigningKey]]) -> TrustedKeys:
        """The public halves of ``entries``, per principal (for tests and ``kpipe up``)."""
        return cls.parse(",".join(key.trusted_entry(p) for p, ks in entries.items() for key in ks))

    def has(self, role: Role) -> bool:
        """Whether any principal of ``role`` has a trusted key."""
        return any(role_of(principal) is role for principal, ks in self.keys.items() if ks)

    def verify(self, event: Event) -> Event:
        """``event``, if a key of the one principal that may send it signed it.

        That principal is the role of its type's, and for a part's answer the
        part of the function the answer names (``kpipefunction``).

        Raises:
            Unauthenticated: it is unsigned, its key is not trusted for that
                principal, or the signature does not match what it says.
        """
        principal = signer_of(event)
        if not event.signature or not event.key_id:
            raise Unauthenticated(f"{event.type} {event.id} is not signed")
        if not principal:
            raise Unauthenticated(f"{event.type} {event.id} names no function to answer for")
        public = self.keys.get(principal, {}).get(event.key_id)
        if public is None:
            raise Unauthenticated(
                f"{event.type} {event.id} is signed with key {event.key_id!r}, "
                f"which is not a trusted key of {principal}"
            )
        try:
            signature = base64.b64decode(event.signature, validate=True)
            public.verify(signature, signed_bytes(event))
        except (InvalidSignature, binascii.Error, ValueError):
            raise Unauthenticated(
                f"{event.type} {event.id}: the signature does not match"
            ) from None
        return event


class SigningSettings(BaseSettings):
    """A process's own signing key and the keys it trusts (see the module docstring)."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    signing_key: str | None = Field(None, validation_alias="KPIPE_SIGNING_KEY", repr=False)
    trusted_keys: str = Field("", validation_alias="KPIPE_TRUSTED_KEYS")

    def key(self) -> SigningKey | None:
        """This process's key, or None when it signs nothing."""
        return SigningKey.parse(self.signing_key) if self.signing_key else None

    def trusted(self) -> TrustedKeys:
        return TrustedKeys.parse(self.trusted_keys)
