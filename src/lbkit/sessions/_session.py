"""Session ids, cookies, serialisation and the ``Session`` object the middleware exposes.

- Ids come from :mod:`secrets` (256 bits, URL-safe text); incoming ids are checked for
  length and alphabet before use, and with a ``secret`` the cookie carries an HMAC-SHA256
  signature compared in constant time.
- Data is serialised as JSON by default (never pickle: a store's bytes are not trusted);
  the serializer is pluggable.
- ``Session`` records which keys changed so that a save that loses a versioned race can
  re-read the stored session, re-apply only those changes and retry.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Iterator, MutableMapping
from typing import Any, Literal, Protocol

import attrs

from lbkit.errors import ConfigError, SessionConflict, SessionDataError

__all__ = [
    "CookieConfig",
    "CookieSigner",
    "JSONSerializer",
    "Serializer",
    "Session",
    "new_session_id",
    "parse_cookie_header",
]

_ID = re.compile(r"[A-Za-z0-9_-]{43}\Z")
_MISSING = object()


def new_session_id() -> str:
    """A new session id: 32 random bytes from :mod:`secrets` as 43 URL-safe characters."""
    return secrets.token_urlsafe(32)


class Serializer(Protocol):
    """Turns session data into bytes and back."""

    def dumps(self, data: dict[str, Any]) -> bytes:
        """Serialise."""

    def loads(self, raw: bytes) -> dict[str, Any]:
        """Deserialise; raise :class:`~lbkit.SessionDataError` for bytes it cannot read."""


class JSONSerializer:
    """Compact UTF-8 JSON (the default)."""

    def dumps(self, data: dict[str, Any]) -> bytes:
        """Serialise to compact JSON."""
        return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode("utf-8")

    def loads(self, raw: bytes) -> dict[str, Any]:
        """Parse JSON; the top level must be an object (else :class:`SessionDataError`)."""
        try:
            data = json.loads(raw.decode("utf-8"))
        except (ValueError, RecursionError) as exc:  # RecursionError: nesting too deep
            raise SessionDataError(f"stored session data is not readable JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise SessionDataError("stored session data is not a JSON object")
        return data


class CookieSigner:
    """Signs session ids with HMAC-SHA256 so forged ids are refused before any lookup."""

    def __init__(self, secret: str | bytes) -> None:
        key = secret.encode() if isinstance(secret, str) else secret
        if len(key) < 32:
            raise ConfigError(
                "the cookie secret must be at least 32 bytes (e.g. secrets.token_urlsafe(32))"
            )
        self._key = key

    def _mac(self, session_id: str) -> str:
        digest = hmac.new(self._key, session_id.encode("ascii"), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")

    def sign(self, session_id: str) -> str:
        """``id.signature``."""
        return f"{session_id}.{self._mac(session_id)}"

    def unsign(self, value: str) -> str | None:
        """The id if the signature is right (constant-time comparison), else None."""
        session_id, dot, mac = value.partition(".")
        if not dot or not _ID.match(session_id):
            return None
        if hmac.compare_digest(mac.encode("ascii", "replace"), self._mac(session_id).encode()):
            return session_id
        return None


def parse_session_cookie(value: str | None, signer: CookieSigner | None) -> str | None:
    """A valid session id from a cookie value, or None (bounded and validated)."""
    if not value or len(value) > 200:
        return None
    if signer is not None:
        return signer.unsign(value)
    return value if _ID.match(value) else None


def parse_cookie_header(header: str, name: str) -> str | None:
    """The value of cookie ``name`` in a ``Cookie:`` header (first one wins), bounded."""
    if len(header) > 16384:
        header = header[:16384]
    for part in header.split(";"):
        k, eq, v = part.strip().partition("=")
        if eq and k == name:
            return v.strip().strip('"')
    return None


@attrs.frozen(slots=True)
class CookieConfig:
    """How the session cookie is written. Defaults are the safe ones."""

    name: str = "session"
    path: str = "/"
    domain: str | None = None
    secure: bool = True
    http_only: bool = True
    same_site: Literal["Lax", "Strict", "None"] | None = "Lax"
    max_age: int | None = None

    def __attrs_post_init__(self) -> None:
        if not re.match(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+\Z", self.name):
            raise ConfigError(f"invalid cookie name {self.name!r}")
        if self.same_site == "None" and not self.secure:
            raise ConfigError("SameSite=None cookies must be Secure")

    def header(self, value: str, *, delete: bool = False) -> str:
        """The ``Set-Cookie`` header value."""
        parts = [f"{self.name}={value}", f"Path={self.path}"]
        if self.domain:
            parts.append(f"Domain={self.domain}")
        if delete:
            parts.append("Max-Age=0")
        elif self.max_age is not None:
            parts.append(f"Max-Age={self.max_age}")
        if self.secure:
            parts.append("Secure")
        if self.http_only:
            parts.append("HttpOnly")
        if self.same_site:
            parts.append(f"SameSite={self.same_site}")
        return "; ".join(parts)


class Session(MutableMapping[str, Any]):
    """A user's session data: a dict that knows what changed.

    ``id`` is None until the session is first saved; ``regenerate()`` asks for a new id on
    the next save (call it on login, against session fixation); ``invalidate()`` deletes
    the session and its cookie. It remembers the data as loaded and which keys this request
    read before changing them, so a save that races another request can tell a real
    conflict (both changed a key this one read) from changes that merge.
    """

    def __init__(
        self, session_id: str | None, data: dict[str, Any] | None = None, version: int | None = None
    ) -> None:
        self.id = session_id
        self.version = version
        self._data: dict[str, Any] = dict(data or {})
        self._base: dict[str, Any] = dict(self._data)
        self._read: set[str] = set()
        self._changes: dict[str, Any] = {}
        self.cleared = False
        self.regenerated = False
        self.invalidated = False
        self.accessed = False

    @property
    def modified(self) -> bool:
        """Whether anything must be saved."""
        return bool(self._changes) or self.cleared or self.regenerated or self.invalidated

    @property
    def new(self) -> bool:
        """Whether the session has no stored id yet."""
        return self.id is None

    def __getitem__(self, key: str) -> Any:
        self.accessed = True
        if key not in self._changes:
            self._read.add(key)  # a value from the store, not this request's own write
        return self._data[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._data[key] = value
        self._changes[key] = value

    def __delitem__(self, key: str) -> None:
        del self._data[key]
        self._changes[key] = _MISSING

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def clear(self) -> None:
        """Remove every key."""
        self._data.clear()
        self._changes.clear()
        self.cleared = True

    def regenerate(self) -> None:
        """Move the data to a new id on the next save (use after login)."""
        self.regenerated = True

    def invalidate(self) -> None:
        """Delete the session from the store and the client."""
        self.clear()
        self.invalidated = True

    def to_dict(self) -> dict[str, Any]:
        """A copy of the data."""
        return dict(self._data)

    def rebase(self, stored: dict[str, Any]) -> dict[str, Any]:
        """``stored`` with this request's changes applied (used after a lost race).

        Raises :class:`~lbkit.SessionConflict` when another request changed a key that
        this one read and then changed (its write was computed from an old value); a key
        this request wrote without reading it simply takes this request's value.
        """
        for key in self._changes:
            if key in self._read and stored.get(key, _MISSING) != self._base.get(key, _MISSING):
                raise SessionConflict(
                    f"session key {key!r} was changed by another request since this one read it"
                )
        merged = {} if self.cleared else dict(stored)
        for key, value in self._changes.items():
            if value is _MISSING:
                merged.pop(key, None)
            else:
                merged[key] = value
        return merged

    def mark_saved(self, session_id: str, version: int | None, data: dict[str, Any]) -> None:
        """Record a successful save of ``data``."""
        self.id = session_id
        self.version = version
        self._data = dict(data)
        self._base = dict(data)
        self._read.clear()
        self._changes.clear()
        self.cleared = self.regenerated = False
