"""Loading and saving ``Session`` objects through a store (sync and asyncio).

The load and save decisions are written once, as flows (see :mod:`._flow`), driven by
:class:`SessionManager` with blocking calls and by :class:`AsyncSessionManager` with
``await``. Saves are versioned when the store supports it: a save that loses a race waits a
random, growing back-off, re-reads the stored session and re-applies only this request's
changes, so requests changing different keys of one session all keep their updates. A
conflict is raised only when another request changed a key this one read and changed. A
session deleted meanwhile (logout, expiry) is never re-created: :class:`SessionInterrupted`.
Unreadable stored data starts a fresh session instead of failing the request.
"""

from __future__ import annotations

import logging
import random
from typing import Any

from lbkit.errors import ConfigError, SessionConflict, SessionDataError, SessionInterrupted
from lbkit.sessions._flow import Call, Flow, Pause, arun, run
from lbkit.sessions._session import (
    CookieConfig,
    CookieSigner,
    JSONSerializer,
    Serializer,
    Session,
    new_session_id,
    parse_session_cookie,
)
from lbkit.sessions.base import ABSENT, AsyncSessionStore, SessionStore, check_ttl

__all__ = ["AsyncSessionManager", "SessionManager"]

log = logging.getLogger("lbkit.sessions")

#: First retry waits up to this many seconds; each further retry doubles it (full jitter).
BACKOFF_BASE = 0.002
#: No retry waits longer than this.
BACKOFF_CAP = 0.05
#: Lost races a save retries by default (the session manager and the framework adapters):
#: 8 requests writing one session under heavy load lose up to 5 in a row (measured), and
#: the back-offs of 20 retries add up to at most 0.8 s.
MAX_RETRIES = 20


class _SaveRules:
    """Everything a load or save decides, as flows over a store of either kind."""

    def __init__(
        self,
        capabilities: frozenset[str],
        ttl: float | None,
        cookie: CookieConfig | None,
        serializer: Serializer | None,
        secret: str | bytes | None,
        max_retries: int,
    ) -> None:
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise ConfigError(f"invalid max_retries={max_retries!r}: expected an int >= 0")
        self.ttl = check_ttl(ttl)
        self.cookie = cookie or CookieConfig()
        self.serializer = serializer or JSONSerializer()
        self.signer = CookieSigner(secret) if secret is not None else None
        self.versions = "versions" in capabilities
        self.store_ttl = self.ttl if "ttl" in capabilities else None
        self.can_touch = "touch" in capabilities
        self.max_retries = max_retries

    def decode(self, raw: bytes | None) -> dict[str, Any]:
        if raw is None:
            return {}
        try:
            return self.serializer.loads(raw)
        except (SessionDataError, ValueError, UnicodeDecodeError, RecursionError) as exc:
            log.warning("unreadable session data ignored: %s", exc)
            return {}

    def cookie_for(self, session_id: str) -> str:
        value = self.signer.sign(session_id) if self.signer else session_id
        return self.cookie.header(value)

    def load(self, store: Any, cookie_value: str | None) -> Flow[Session]:
        sid = parse_session_cookie(cookie_value, self.signer)
        if sid is None:
            return Session(None)
        if self.versions:
            found = yield Call(store, "get_versioned", (sid,))
            if found is None:
                return Session(None)
            return Session(sid, self.decode(found[0]), found[1])
        raw = yield Call(store, "get", (sid,))
        return Session(None) if raw is None else Session(sid, self.decode(raw))

    def save(self, store: Any, session: Session) -> Flow[str | None]:
        if session.invalidated:
            if session.id:
                yield Call(store, "delete", (session.id,))
            session.id = None
            return self.cookie.header("", delete=True)
        if not session.modified:
            if session.id and self.can_touch and self.store_ttl:
                yield Call(store, "touch", (session.id, self.store_ttl))
            return None
        if session.id is None or session.regenerated:
            return (yield from self._create(store, session))
        if self.versions:
            yield from self._update_versioned(store, session)
        else:
            yield from self._update_plain(store, session)
        return None

    def _create(self, store: Any, session: Session) -> Flow[str]:
        old = session.id
        sid = new_session_id()
        data = session.to_dict()
        version = yield Call(
            store,
            "set",
            (sid, self.serializer.dumps(data), self.store_ttl),
            {"if_version": ABSENT if self.versions else None},
        )
        if old is not None:
            yield Call(store, "delete", (old,))
        session.mark_saved(sid, version, data)
        return self.cookie_for(sid)

    def _update_plain(self, store: Any, session: Session) -> Flow[None]:
        # No compare-and-set: re-read so that other keys' changes merge and a deleted
        # session stays deleted (a race between this read and the write remains).
        sid = session.id
        assert sid is not None
        raw = yield Call(store, "get", (sid,))
        if raw is None:
            raise SessionInterrupted(f"session {sid!r} was deleted while this request ran")
        data = session.rebase(self.decode(raw))
        yield Call(store, "set", (sid, self.serializer.dumps(data), self.store_ttl))
        session.mark_saved(sid, None, data)

    def _update_versioned(self, store: Any, session: Session) -> Flow[None]:
        sid = session.id
        assert sid is not None
        data = session.to_dict()
        expected = session.version
        for attempt in range(self.max_retries + 1):
            try:
                version = yield Call(
                    store,
                    "set",
                    (sid, self.serializer.dumps(data), self.store_ttl),
                    {"if_version": expected},
                )
            except SessionConflict:
                if attempt == self.max_retries:
                    break
            else:
                session.mark_saved(sid, version, data)
                return
            yield Pause(random.uniform(0, min(BACKOFF_CAP, BACKOFF_BASE * 2**attempt)))
            found = yield Call(store, "get_versioned", (sid,))
            if found is None:
                raise SessionInterrupted(f"session {sid!r} was deleted while this request ran")
            expected = found[1]
            data = session.rebase(self.decode(found[0]))
        raise SessionConflict(f"session {sid!r}: gave up after {self.max_retries} retries")


class _Manager:
    """What both managers are made of: a store and the rules (same arguments for both)."""

    def __init__(
        self,
        store: Any,
        *,
        ttl: float | None = 1800.0,
        cookie: CookieConfig | None = None,
        serializer: Serializer | None = None,
        secret: str | bytes | None = None,
        max_retries: int = MAX_RETRIES,
    ) -> None:
        self.store = store
        self.rules = _SaveRules(store.capabilities, ttl, cookie, serializer, secret, max_retries)
        self.cookie = self.rules.cookie


class SessionManager(_Manager):
    """Loads sessions from a synchronous store and saves them back (thread-safe).

    Arguments: ``store``, then keywords ``ttl`` (seconds, None to keep sessions until
    deleted), ``cookie``, ``serializer``, ``secret`` (signs cookies) and ``max_retries``.
    """

    store: SessionStore

    def load(self, cookie_value: str | None) -> Session:
        """The session named by a cookie value (a new, empty one if none is valid)."""
        return run(self.rules.load(self.store, cookie_value))

    def save(self, session: Session) -> str | None:
        """Persist changes; returns a ``Set-Cookie`` value when the client must get one.

        Raises :class:`~lbkit.SessionConflict` when another request changed a key this
        one read and changed, :class:`~lbkit.SessionInterrupted` when the session was
        deleted meanwhile.
        """
        return run(self.rules.save(self.store, session))


class AsyncSessionManager(_Manager):
    """The asyncio twin of :class:`SessionManager` (same arguments, same decisions)."""

    store: AsyncSessionStore

    async def load(self, cookie_value: str | None) -> Session:
        """See :meth:`SessionManager.load`."""
        return await arun(self.rules.load(self.store, cookie_value))

    async def save(self, session: Session) -> str | None:
        """See :meth:`SessionManager.save`."""
        return await arun(self.rules.save(self.store, session))
