"""Loading and saving ``Session`` objects through a store (sync and asyncio).

Saves are versioned when the store supports it: a save that loses a race re-reads the
stored session, re-applies only this request's changes and tries again (up to
``max_retries``), so two servers updating different keys of one session both keep their
updates. Unreadable stored data starts a fresh session instead of failing the request.
"""

from __future__ import annotations

import logging
from typing import Any

from lbkit.errors import SessionConflict
from lbkit.sessions.base import ABSENT, AsyncSessionStore, SessionStore
from lbkit.sessions.session import (
    CookieConfig,
    CookieSigner,
    JSONSerializer,
    Serializer,
    Session,
    new_session_id,
    parse_session_cookie,
)

__all__ = ["AsyncSessionManager", "SessionManager"]

log = logging.getLogger("lbkit.sessions")


class _Common:
    def __init__(
        self,
        ttl: float | None,
        cookie: CookieConfig | None,
        serializer: Serializer | None,
        secret: str | bytes | None,
        capabilities: frozenset[str],
        max_retries: int,
    ) -> None:
        self.ttl = ttl
        self.cookie = cookie or CookieConfig()
        self.serializer = serializer or JSONSerializer()
        self.signer = CookieSigner(secret) if secret is not None else None
        self.versions = "versions" in capabilities
        self.store_ttl = ttl if "ttl" in capabilities else None
        self.can_touch = "touch" in capabilities
        self.max_retries = max_retries

    def session_id(self, cookie_value: str | None) -> str | None:
        return parse_session_cookie(cookie_value, self.signer)

    def decode(self, raw: bytes | None) -> dict[str, Any]:
        if raw is None:
            return {}
        try:
            return self.serializer.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            log.warning("unreadable session data ignored: %s", exc)
            return {}

    def cookie_for(self, session_id: str) -> str:
        value = self.signer.sign(session_id) if self.signer else session_id
        return self.cookie.header(value)


class SessionManager(_Common):
    """Loads sessions from a synchronous store and saves them back."""

    def __init__(
        self,
        store: SessionStore,
        *,
        ttl: float | None = 1800.0,
        cookie: CookieConfig | None = None,
        serializer: Serializer | None = None,
        secret: str | bytes | None = None,
        max_retries: int = 5,
    ) -> None:
        super().__init__(ttl, cookie, serializer, secret, store.capabilities, max_retries)
        self.store = store

    def load(self, cookie_value: str | None) -> Session:
        """The session named by a cookie value (a new, empty one if none is valid)."""
        sid = self.session_id(cookie_value)
        if sid is None:
            return Session(None)
        if self.versions:
            found = self.store.get_versioned(sid)
            if found is None:
                return Session(None)
            return Session(sid, self.decode(found[0]), found[1])
        raw = self.store.get(sid)
        return Session(None) if raw is None else Session(sid, self.decode(raw))

    def save(self, session: Session) -> str | None:
        """Persist changes; returns a ``Set-Cookie`` value when the client must get one."""
        if session.invalidated:
            if session.id:
                self.store.delete(session.id)
            session.id = None
            return self.cookie.header("", delete=True)
        if not session.modified:
            if session.id and self.can_touch and self.store_ttl:
                self.store.touch(session.id, self.store_ttl)
            return None
        if session.id is None or session.regenerated:
            old = session.id
            sid = new_session_id()
            version = self.store.set(
                sid,
                self.serializer.dumps(session.to_dict()),
                self.store_ttl,
                if_version=ABSENT if self.versions else None,
            )
            if old is not None:
                self.store.delete(old)
            session.mark_saved(sid, version)
            return self.cookie_for(sid)
        data = session.to_dict()
        expected = session.version if self.versions else None
        for _ in range(self.max_retries):
            try:
                version = self.store.set(
                    session.id, self.serializer.dumps(data), self.store_ttl, if_version=expected
                )
            except SessionConflict:
                found = self.store.get_versioned(session.id)
                expected = ABSENT if found is None else found[1]
                data = session.rebase(self.decode(found[0] if found else None))
                continue
            session.mark_saved(session.id, version)
            return None
        raise SessionConflict(f"session {session.id!r}: gave up after {self.max_retries} races")


class AsyncSessionManager(_Common):
    """The asyncio twin of :class:`SessionManager`."""

    def __init__(
        self,
        store: AsyncSessionStore,
        *,
        ttl: float | None = 1800.0,
        cookie: CookieConfig | None = None,
        serializer: Serializer | None = None,
        secret: str | bytes | None = None,
        max_retries: int = 5,
    ) -> None:
        super().__init__(ttl, cookie, serializer, secret, store.capabilities, max_retries)
        self.store = store

    async def load(self, cookie_value: str | None) -> Session:
        """See :meth:`SessionManager.load`."""
        sid = self.session_id(cookie_value)
        if sid is None:
            return Session(None)
        if self.versions:
            found = await self.store.get_versioned(sid)
            if found is None:
                return Session(None)
            return Session(sid, self.decode(found[0]), found[1])
        raw = await self.store.get(sid)
        return Session(None) if raw is None else Session(sid, self.decode(raw))

    async def save(self, session: Session) -> str | None:
        """See :meth:`SessionManager.save`."""
        if session.invalidated:
            if session.id:
                await self.store.delete(session.id)
            session.id = None
            return self.cookie.header("", delete=True)
        if not session.modified:
            if session.id and self.can_touch and self.store_ttl:
                await self.store.touch(session.id, self.store_ttl)
            return None
        if session.id is None or session.regenerated:
            old = session.id
            sid = new_session_id()
            version = await self.store.set(
                sid,
                self.serializer.dumps(session.to_dict()),
                self.store_ttl,
                if_version=ABSENT if self.versions else None,
            )
            if old is not None:
                await self.store.delete(old)
            session.mark_saved(sid, version)
            return self.cookie_for(sid)
        data = session.to_dict()
        expected = session.version if self.versions else None
        for _ in range(self.max_retries):
            try:
                version = await self.store.set(
                    session.id, self.serializer.dumps(data), self.store_ttl, if_version=expected
                )
            except SessionConflict:
                found = await self.store.get_versioned(session.id)
                expected = ABSENT if found is None else found[1]
                data = session.rebase(self.decode(found[0] if found else None))
                continue
            session.mark_saved(session.id, version)
            return None
        raise SessionConflict(f"session {session.id!r}: gave up after {self.max_retries} races")
