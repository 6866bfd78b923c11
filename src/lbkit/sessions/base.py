"""The session-store contract shared by every backend, sync and asyncio.

Values are bytes; keys are validated before they reach a backend. A versioned write
(``set(..., if_version=v)``) succeeds only if the key still has version ``v`` (use
:data:`ABSENT` to create a key only if it does not exist); otherwise
:class:`~lbkit.SessionConflict`. ``ttl`` is in seconds; ``None`` keeps the value until it
is deleted (or, for stores that cannot hold it forever, for the store's default).
"""

from __future__ import annotations

import math
import re
import secrets
from typing import Protocol, runtime_checkable

from lbkit.errors import (
    InvalidKeyError,
    InvalidStoreArgument,
    SessionConflict,
    UnsupportedOperation,
    ValueTooLarge,
)

__all__ = [
    "ABSENT",
    "DEFAULT_MAX_VALUE",
    "KEY_PATTERN",
    "MAX_TTL",
    "AsyncSessionStore",
    "SessionStore",
    "Version",
    "check_expected",
    "check_set",
    "check_ttl",
    "check_value",
    "check_version",
    "new_version",
    "unsupported",
    "validate_key",
]

#: A version: an opaque integer that changes on every write.
Version = int
#: ``if_version=ABSENT``: write only if the key does not exist yet.
ABSENT: Version = 0
#: Default largest value accepted (bytes).
DEFAULT_MAX_VALUE = 1024 * 1024
#: What a key may be: 1..200 of letters, digits, ``_``, ``-``, ``:`` and ``,`` (session ids
#: are urlsafe, PHP's may hold ``,``; ``:`` allows prefixes such as ``app:``). Never ``.``,
#: ``/`` or white space.
KEY_PATTERN = re.compile(r"[A-Za-z0-9_:,-]{1,200}\Z")
#: Longest TTL any store accepts (ten years, in seconds).
MAX_TTL = 10 * 365 * 24 * 3600


def validate_key(key: str) -> str:
    """Return ``key`` if valid, else raise :class:`~lbkit.InvalidKeyError`."""
    if not isinstance(key, str) or not KEY_PATTERN.match(key):
        shown = repr(key)[:80]
        raise InvalidKeyError(
            f"invalid session key {shown}: expected 1..200 characters of A-Z a-z 0-9 _ - : ,"
        )
    return key


def check_value(value: bytes, limit: int) -> bytes:
    """Return ``value`` as bytes if it is bytes-like within ``limit``, else raise."""
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise InvalidStoreArgument(
            f"session values are bytes, not {type(value).__name__}: encode them first"
        )
    data = bytes(value)
    if len(data) > limit:
        raise ValueTooLarge(f"value of {len(data)} bytes exceeds the store limit of {limit} bytes")
    return data


def check_ttl(ttl: float | None) -> float | None:
    """Return ``ttl`` if it is None or a number of seconds in (0, :data:`MAX_TTL`]."""
    if ttl is None:
        return None
    if (
        isinstance(ttl, bool)
        or not isinstance(ttl, (int, float))
        or math.isnan(ttl)
        or not 0 < ttl <= MAX_TTL
    ):
        raise InvalidStoreArgument(
            f"invalid ttl {ttl!r}: expected None or seconds in (0, {MAX_TTL}] as int or float"
        )
    return float(ttl)


def check_version(version: Version | None) -> Version | None:
    """Return ``if_version`` if it is None, :data:`ABSENT` or a version a store gave."""
    if version is None:
        return None
    if isinstance(version, bool) or not isinstance(version, int) or not 0 <= version < 2**64:
        raise InvalidStoreArgument(
            f"invalid if_version {version!r}: expected None, ABSENT (0) or a version "
            "returned by the store (an int in 1..2**64-1)"
        )
    return version


def check_set(
    key: str, value: bytes, ttl: float | None, if_version: Version | None, limit: int
) -> tuple[bytes, float | None]:
    """Every check of a ``set`` call, before any I/O: the value as bytes and the ttl."""
    validate_key(key)
    data = check_value(value, limit)
    seconds = check_ttl(ttl)
    check_version(if_version)
    return data, seconds


def check_expected(key: str, have: Version, if_version: Version | None) -> None:
    """The compare of a versioned write: :class:`~lbkit.SessionConflict` unless the key's
    current version ``have`` (:data:`ABSENT` if missing) is ``if_version`` (None: any)."""
    if if_version is not None and have != if_version:
        raise SessionConflict(f"session {key!r} changed: version {have}, expected {if_version}")


def new_version(previous: Version) -> Version:
    """A fresh random version (62 bits, never ABSENT, never ``previous``).

    Random rather than counted, so a key deleted and written again never repeats an
    old version: a stale ``if_version`` cannot match a newer value.
    """
    while True:
        version = secrets.randbits(62) + 1
        if version != previous:
            return version


def unsupported(backend: str, capability: str, why: str) -> UnsupportedOperation:
    """The error for a capability a backend's protocol lacks."""
    return UnsupportedOperation(f"{backend} store cannot {capability}: {why}")


@runtime_checkable
class SessionStore(Protocol):
    """What every synchronous store offers."""

    #: What this backend supports, among ``{"ttl", "touch", "versions"}``.
    capabilities: frozenset[str]

    def get(self, key: str) -> bytes | None:
        """The value of ``key``, or None if missing or expired."""

    def get_versioned(self, key: str) -> tuple[bytes, Version] | None:
        """The value and version of ``key``, or None."""

    def set(
        self,
        key: str,
        value: bytes,
        ttl: float | None = None,
        *,
        if_version: Version | None = None,
    ) -> Version | None:
        """Store ``value``; returns the new version (None if the backend has none)."""

    def delete(self, key: str) -> bool:
        """Remove ``key``; returns whether it existed."""

    def touch(self, key: str, ttl: float) -> bool:
        """Extend the TTL of ``key``; returns whether it existed."""

    def close(self) -> None:
        """Release connections."""


@runtime_checkable
class AsyncSessionStore(Protocol):
    """The asyncio twin of :class:`SessionStore`: the same methods as coroutines."""

    capabilities: frozenset[str]

    async def get(self, key: str) -> bytes | None:
        """See :meth:`SessionStore.get`."""

    async def get_versioned(self, key: str) -> tuple[bytes, Version] | None:
        """See :meth:`SessionStore.get_versioned`."""

    async def set(
        self,
        key: str,
        value: bytes,
        ttl: float | None = None,
        *,
        if_version: Version | None = None,
    ) -> Version | None:
        """See :meth:`SessionStore.set`."""

    async def delete(self, key: str) -> bool:
        """See :meth:`SessionStore.delete`."""

    async def touch(self, key: str, ttl: float) -> bool:
        """See :meth:`SessionStore.touch`."""

    async def close(self) -> None:
        """Release connections."""
