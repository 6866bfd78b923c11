"""What the framework adapters share: options, cookies, and the load and save flows.

The flows are sans-I/O generators over :mod:`lbkit.sessions`' flow steps: they yield the
store calls they need (through :class:`StoreSteps`, which fits each call to what the store
can do) and receive the results, so one piece of code decides what to read and write for
every adapter, driven by ``run`` (sync stores) or ``arun`` (asyncio stores). A save that
loses a versioned race waits a short random back-off, re-reads the session, applies only the
keys this request changed and retries. A session deleted meanwhile (logged out elsewhere)
stays deleted.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import random
import re
import secrets
import time
from collections.abc import Sequence
from typing import Any, Literal

import attrs

from lbkit.errors import ConfigError, LbkitError, SessionConflict
from lbkit.sessions import (
    ABSENT,
    CookieConfig,
    JSONSerializer,
    Serializer,
    Version,
    new_session_id,
)
from lbkit.sessions._flow import Call, Flow, Pause
from lbkit.sessions._manager import BACKOFF_BASE, BACKOFF_CAP, MAX_RETRIES

__all__ = [
    "CookieAction",
    "Loaded",
    "SessionDict",
    "SessionOptions",
    "StoreSteps",
    "baseline",
    "changes",
    "load_flow",
    "request_is_https",
    "save_flow",
    "update_flow",
]

log = logging.getLogger("lbkit.integrations")

#: The key under which the session's own bookkeeping (creation time, per-session lifetime)
#: is stored next to the application's keys; never shown to the application.
META_KEY = "__lbkit__"

# lbkit's ids: 43 URL-safe characters (256 bits). PHP's (session.sid_bits_per_character
# 4, 5 or 6): [0-9a-f], [0-9a-v] or [0-9a-zA-Z,-], session.sid_length 22..256.
_LBKIT_ID = re.compile(r"[A-Za-z0-9_-]{43}\Z")
_PHP_ID = re.compile(r"[A-Za-z0-9,-]{22,256}\Z")
_PHP_ALPHABET = bytes.maketrans(b"+/", b"-,")


def _new_php_id() -> str:
    # 256 random bits in PHP's 6-bits-a-character alphabet (PHP accepts any of its ids)
    return base64.b64encode(secrets.token_bytes(32)).rstrip(b"=").translate(_PHP_ALPHABET).decode()


def _secrets(value: str | bytes | Sequence[str | bytes] | None) -> tuple[bytes, ...]:
    if value is None:
        return ()
    items = [value] if isinstance(value, (str, bytes)) else list(value)
    keys = tuple(v.encode() if isinstance(v, str) else bytes(v) for v in items)
    for key in keys:
        if len(key) < 32:
            raise ConfigError(
                "every session secret must be at least 32 bytes (e.g. secrets.token_urlsafe(32))"
            )
    if not keys:
        raise ConfigError("secret=[] gives no signing key: pass None to sign nothing")
    return keys


@attrs.frozen(kw_only=True)
class SessionOptions:
    """How an adapter names, signs, keeps and expires sessions (every adapter's ``**options``).

    - ``cookie_name``: ``lbkit_session`` (not ``session``, Flask's own); ``PHPSESSID`` to
      share sessions with PHP apps.
    - ``secure``: None follows the request's scheme (``https`` -> Secure); True/False force.
    - ``secret``: signs the cookie (HMAC-SHA256); a list rotates keys: the first signs, every
      one verifies, and a cookie signed by an older one is re-signed with the first.
    - ``idle_timeout``: seconds a session lives after its last request (the store's TTL, renewed
      on every request); ``absolute_timeout``: seconds after its creation, however active.
      ``lifetime``: the cookie's Max-Age for persistent sessions (None: browser session).
    - ``ids``: ``"lbkit"`` (43 URL-safe characters) or ``"php"`` (PHP's alphabets and
      lengths, for cookies PHP apps also read; new ids are 43 characters of ``[0-9a-zA-Z,-]``).
    - ``serializer``: JSON by default; ``PhpSerializer()`` to share with PHP.
    - ``max_retries``: how many lost races a save retries (random back-off, re-read, merge)
      before it raises :class:`~lbkit.SessionConflict`; 20, as ``SessionManager``.
    """

    cookie_name: str = "lbkit_session"
    cookie_path: str = "/"
    cookie_domain: str | None = None
    secure: bool | None = None
    http_only: bool = True
    same_site: Literal["Lax", "Strict", "None"] | None = "Lax"
    secret: tuple[bytes, ...] = attrs.field(default=None, converter=_secrets)
    serializer: Serializer = attrs.field(factory=JSONSerializer)
    idle_timeout: float | None = 1800.0
    absolute_timeout: float | None = None
    lifetime: float | None = None
    ids: Literal["lbkit", "php"] = "lbkit"
    meta_key: str | None = META_KEY
    max_retries: int = MAX_RETRIES

    def __attrs_post_init__(self) -> None:
        CookieConfig(name=self.cookie_name, path=self.cookie_path, same_site=self.same_site)
        if self.same_site == "None" and self.secure is not True:
            # browsers drop SameSite=None cookies without Secure: refuse it now, not per request
            raise ConfigError("same_site='None' needs secure=True (browsers require Secure)")
        for name in ("idle_timeout", "absolute_timeout", "lifetime"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, (int, float)) and value > 0):
                raise ConfigError(f"invalid {name} {value!r}: expected seconds > 0 or None")
        if self.ids not in ("lbkit", "php"):
            raise ConfigError(f"invalid ids {self.ids!r}: expected 'lbkit' or 'php'")
        if (
            isinstance(self.max_retries, bool)
            or not isinstance(self.max_retries, int)
            or self.max_retries < 0
        ):
            raise ConfigError(f"invalid max_retries {self.max_retries!r}: expected an int >= 0")
        if self.absolute_timeout is not None and self.meta_key is None:
            raise ConfigError("absolute_timeout needs meta_key (the creation time is kept there)")

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> SessionOptions:
        """Options from keyword arguments; unknown names raise ConfigError listing the valid."""
        valid = [f.name for f in attrs.fields(cls)]
        unknown = sorted(set(options) - set(valid))
        if unknown:
            raise ConfigError(f"unknown session options {unknown}: expected some of {valid}")
        return cls(**options)

    def new_id(self) -> str:
        """A new session id in this configuration's format."""
        return _new_php_id() if self.ids == "php" else new_session_id()

    def valid_id(self, value: str) -> bool:
        """Whether ``value`` has the length and alphabet of an id (before any lookup)."""
        return bool((_PHP_ID if self.ids == "php" else _LBKIT_ID).match(value))

    def _mac(self, key: bytes, session_id: str) -> str:
        digest = hmac.new(key, session_id.encode("ascii"), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")

    def sign(self, session_id: str) -> str:
        """The cookie value for ``session_id`` (``id.mac`` with a secret, else the id)."""
        if not self.secret:
            return session_id
        return f"{session_id}.{self._mac(self.secret[0], session_id)}"

    def unsign(self, value: str | None) -> tuple[str | None, bool]:
        """``(id, signed_by_an_older_secret)`` from a cookie value; ``(None, False)`` if bad."""
        if not value or len(value) > 400:
            return None, False
        if not self.secret:
            return (value if self.valid_id(value) else None), False
        session_id, dot, mac = value.rpartition(".")
        if not dot or not self.valid_id(session_id):
            return None, False
        given = mac.encode("ascii", "replace")
        for index, key in enumerate(self.secret):
            if hmac.compare_digest(given, self._mac(key, session_id).encode("ascii")):
                return session_id, index > 0
        return None, False

    def cookie(self, https: bool, max_age: float | None) -> CookieConfig:
        """The cookie settings for one response."""
        return CookieConfig(
            name=self.cookie_name,
            path=self.cookie_path,
            domain=self.cookie_domain,
            secure=https if self.secure is None else self.secure,
            http_only=self.http_only,
            same_site=self.same_site,
            max_age=None if max_age is None else int(max_age),
        )


# ---- store calls, fitted to the store's capabilities --------------------------------


class StoreSteps:
    """The store calls the flows make, as flow steps for ``run``/``arun``.

    Stores without versions are read with ``get`` (version None) and written without
    ``if_version``; stores without TTLs get none; ``touch`` is skipped where unsupported.
    """

    def __init__(self, store: Any) -> None:
        capabilities = store.capabilities
        self.store = store
        self.versions = "versions" in capabilities
        self.ttls = "ttl" in capabilities
        self.touches = "touch" in capabilities and self.ttls

    def get(self, key: str) -> Flow[tuple[bytes, Version | None] | None]:
        """The value and version of ``key`` (version None without versions), or None."""
        if self.versions:
            found: tuple[bytes, Version] | None = yield Call(self.store, "get_versioned", (key,))
            return found
        raw = yield Call(self.store, "get", (key,))
        return None if raw is None else (raw, None)

    def set(
        self, key: str, value: bytes, ttl: float | None, if_version: Version | None
    ) -> Flow[Version | None]:
        """Write ``value`` (compare-and-set on stores with versions)."""
        version: Version | None = yield Call(
            self.store,
            "set",
            (key, value, ttl if self.ttls else None),
            {"if_version": if_version if self.versions else None},
        )
        return version

    def delete(self, key: str) -> Flow[None]:
        """Remove ``key``."""
        yield Call(self.store, "delete", (key,))

    def touch(self, key: str, ttl: float) -> Flow[None]:
        """Renew the TTL of ``key`` (nothing on stores that cannot)."""
        if self.touches:
            yield Call(self.store, "touch", (key, ttl))


# ---- load and save -------------------------------------------------------------------


@attrs.define
class Loaded:
    """A session as read at the start of a request, and what the request asked of it."""

    id: str | None = None
    version: int | None = None
    data: dict[str, Any] = attrs.Factory(dict)
    #: each key's serialised value when loaded, to find what changed (also in place)
    baseline: dict[str, bytes] = attrs.Factory(dict)
    created: float | None = None
    #: this session's own idle lifetime (``set_expiry``, permanent sessions), else None
    lifetime: float | None = None
    resign: bool = False
    #: the cookie named a session that is gone (send a deleting cookie if nothing is saved)
    stale_cookie: bool = False


def _value_bytes(options: SessionOptions, key: str, value: Any) -> bytes:
    return options.serializer.dumps({key: value})


def _split(options: SessionOptions, stored: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    meta = stored.pop(options.meta_key, None) if options.meta_key else None
    return stored, meta if isinstance(meta, dict) else {}


def _decode(options: SessionOptions, raw: bytes) -> dict[str, Any] | None:
    try:
        data = options.serializer.loads(raw)
    except (LbkitError, ValueError, UnicodeDecodeError) as exc:
        log.warning("unreadable session data ignored (a new session starts): %s", exc)
        return None
    return data if isinstance(data, dict) else None


def load_flow(
    options: SessionOptions,
    steps: StoreSteps,
    session_id: str | None,
    now: float,
    *,
    resign: bool = False,
) -> Flow[Loaded]:
    """Read the session ``session_id`` names (from :meth:`SessionOptions.unsign`); a new
    one if it is None, unknown, unreadable or past its absolute lifetime."""
    if session_id is None:
        return Loaded()
    found = yield from steps.get(session_id)
    if found is None:
        return Loaded(stale_cookie=True)  # never adopt an id the store does not hold
    data = _decode(options, found[0])
    if data is None:
        return Loaded(stale_cookie=True)
    data, meta = _split(options, data)
    created = meta.get("c")
    created = float(created) if isinstance(created, (int, float)) else None
    lifetime = meta.get("x")
    lifetime = float(lifetime) if isinstance(lifetime, (int, float)) and lifetime > 0 else None
    if (
        options.absolute_timeout is not None
        and created is not None
        and now - created > options.absolute_timeout
    ):
        yield from steps.delete(session_id)
        return Loaded(stale_cookie=True)
    return Loaded(
        id=session_id,
        version=found[1],
        data=dict(data),
        baseline=baseline(options, data),
        created=created,
        lifetime=lifetime,
        resign=resign,
    )


def baseline(options: SessionOptions, data: dict[str, Any]) -> dict[str, bytes]:
    """Each key's serialised value, to tell later what a request changed (also in place)."""
    return {k: _value_bytes(options, k, v) for k, v in data.items()}


@attrs.frozen
class CookieAction:
    """What the response must do with the cookie: set ``value`` (Max-Age), or delete it."""

    value: str | None
    max_age: float | None = None

    @property
    def delete(self) -> bool:
        """Whether the cookie is to be removed."""
        return self.value is None

    def header(self, options: SessionOptions, https: bool) -> str:
        """The ``Set-Cookie`` header value."""
        if self.value is None:
            return options.cookie(https, None).header("", delete=True)
        return options.cookie(https, self.max_age).header(self.value)


def _payload(options: SessionOptions, data: dict[str, Any], meta: dict[str, Any]) -> bytes:
    if options.meta_key is None or not meta:
        return options.serializer.dumps(data)
    return options.serializer.dumps({**data, options.meta_key: meta})


def save_flow(
    options: SessionOptions,
    steps: StoreSteps,
    loaded: Loaded,
    data: dict[str, Any],
    *,
    modified: bool = False,
    regenerate: bool = False,
    invalidate: bool = False,
    lifetime: float | None = None,
    now: float | None = None,
) -> Flow[CookieAction | None]:
    """Write what the request changed; returns a :class:`CookieAction` or None.

    ``modified`` forces a write; ``regenerate`` moves the session to a new id (after login);
    ``invalidate`` deletes it; ``lifetime`` is this session's own idle lifetime in seconds
    (a persistent cookie), 0 for none (the options' defaults), None to keep what it had.
    """
    now = time.time() if now is None else now
    if invalidate:
        if loaded.id is not None:
            yield from steps.delete(loaded.id)
        return CookieAction(None) if (loaded.id or loaded.stale_cookie) else None
    lifetime = loaded.lifetime if lifetime is None else (lifetime or None)
    ttl = lifetime or options.idle_timeout
    max_age = lifetime or options.lifetime
    changed, deleted = changes(options, loaded.baseline, data)
    lifetime_changed = lifetime != loaded.lifetime
    if not (changed or deleted or modified or regenerate or lifetime_changed):
        if loaded.id is None:
            return CookieAction(None) if loaded.stale_cookie else None
        if ttl:
            yield from steps.touch(loaded.id, ttl)
        if loaded.resign or max_age:  # re-sign with the newest secret; slide Max-Age
            return CookieAction(options.sign(loaded.id), max_age)
        return None
    if loaded.id is None and not data:
        return CookieAction(None) if loaded.stale_cookie else None
    meta: dict[str, Any] = {"c": loaded.created or now}
    if lifetime:
        meta["x"] = lifetime
    if loaded.id is None or regenerate:
        new_id = options.new_id()
        yield from steps.set(new_id, _payload(options, data, meta), ttl, ABSENT)
        if loaded.id is not None:
            yield from steps.delete(loaded.id)
        return CookieAction(options.sign(new_id), max_age)
    result = yield from update_flow(
        options, steps, loaded.id, loaded.version, data, changed, deleted, ttl, meta
    )
    if result is not None:
        return result
    if loaded.resign or max_age:
        return CookieAction(options.sign(loaded.id), max_age)
    return None


def update_flow(
    options: SessionOptions,
    steps: StoreSteps,
    session_id: str,
    version: Version | None,
    data: dict[str, Any],
    changed: dict[str, Any],
    deleted: set[str],
    ttl: float | None,
    meta: dict[str, Any],
) -> Flow[CookieAction | None]:
    """Write ``data`` over the version read; after a lost race, apply ``changed`` and
    ``deleted`` to what is stored and retry. Returns a deleting CookieAction if the session
    was deleted meanwhile (it stays deleted), else None.

    Stores without versions are re-read first (changes of other keys merge, a deleted
    session stays deleted; a race between that read and the write remains).
    """
    if not steps.versions:
        found = yield from steps.get(session_id)
        if found is None:
            return CookieAction(None)
        merged = _merged(options, found[0], changed, deleted, meta)
        yield from steps.set(session_id, merged, ttl, None)
        return None
    payload = _payload(options, data, meta)
    for attempt in range(options.max_retries + 1):
        try:
            yield from steps.set(session_id, payload, ttl, version)
        except SessionConflict:
            if attempt == options.max_retries:
                break  # no re-read that no write would follow
            yield Pause(random.uniform(0, min(BACKOFF_CAP, BACKOFF_BASE * 2**attempt)))
            found = yield from steps.get(session_id)
            if found is None:  # deleted meanwhile (logged out elsewhere): stays deleted
                return CookieAction(None)
            payload = _merged(options, found[0], changed, deleted, meta)
            version = found[1]
            continue
        return None
    raise SessionConflict(f"session {session_id!r}: gave up after {options.max_retries} retries")


def _merged(
    options: SessionOptions,
    raw: bytes,
    changed: dict[str, Any],
    deleted: set[str],
    meta: dict[str, Any],
) -> bytes:
    stored, stored_meta = _split(options, _decode(options, raw) or {})
    stored.update(changed)
    for key in deleted:
        stored.pop(key, None)
    return _payload(options, stored, {**stored_meta, **meta})


def changes(
    options: SessionOptions, before: dict[str, bytes], data: dict[str, Any]
) -> tuple[dict[str, Any], set[str]]:
    """The keys of ``data`` whose serialised bytes differ from ``before``, and those gone."""
    changed = {k: v for k, v in data.items() if before.get(k) != _value_bytes(options, k, v)}
    return changed, set(before) - set(data)


def request_is_https(scheme: str | None) -> bool:
    """Whether a request's scheme asks for Secure cookies."""
    return (scheme or "").lower() in ("https", "wss")


class SessionDict(dict[str, Any]):
    """The session an adapter hands to the application: a real dict, plus controls.

    Changes are found by comparing each key's serialised bytes with what was loaded, so
    in-place edits (``s.setdefault("cart", []).append(1)``) are saved; ``modified = True``
    forces a write.
    """

    def __init__(self, loaded: Loaded) -> None:
        super().__init__(loaded.data)
        self.loaded = loaded
        self.modified = False
        self.regenerated = False
        self.invalidated = False
        self.lifetime: float | None = None

    @property
    def session_id(self) -> str | None:
        """The id the session was loaded with (None for a new session)."""
        return self.loaded.id

    def regenerate(self) -> None:
        """Move the session to a new id when the response is sent (after login: prevents
        session fixation)."""
        self.regenerated = True

    def invalidate(self) -> None:
        """Empty the session, delete it from the store and the client (logout)."""
        self.clear()
        self.invalidated = True

    def set_expiry(self, seconds: float) -> None:
        """Give this session its own idle lifetime and a persistent cookie (0: back to the
        defaults, a cookie that ends with the browser session)."""
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds < 0:
            raise ConfigError(f"invalid session expiry {seconds!r}: expected seconds >= 0")
        self.lifetime = float(seconds)

    def save_flow(self, options: SessionOptions, steps: StoreSteps) -> Flow[CookieAction | None]:
        """The flow that saves this session at the end of the request."""
        return save_flow(
            options,
            steps,
            self.loaded,
            dict(self),
            modified=self.modified,
            regenerate=self.regenerated,
            invalidate=self.invalidated,
            lifetime=self.lifetime,
        )
