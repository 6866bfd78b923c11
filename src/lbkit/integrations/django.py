"""Django: ``SESSION_ENGINE = "lbkit.integrations.django"``.

The store comes from ``settings.LBKIT_SESSION_STORE``: a URL (``redis://127.0.0.1:6379/0``,
see :func:`~lbkit.integrations.store_from_url`) or a store object; optional
``settings.LBKIT_SESSION_OPTIONS`` may set ``serializer`` (JSON by default, e.g.
``PhpSerializer()``) and ``max_retries``. Django keeps its own cookie, expiry
(``set_expiry``, ``SESSION_COOKIE_AGE``) and key rotation: ``login()`` calls
``cycle_key()``, which moves the session to a new id, so messages, CSRF
(``CSRF_USE_SESSIONS``) and auth work as with Django's own backends. In-place edits are
saved (the serialised bytes are compared); two servers changing different keys of one
session both keep their change; a session deleted meanwhile raises Django's
``SessionInterrupted``.
"""

from __future__ import annotations

import re
from typing import Any

from django.conf import settings
from django.contrib.sessions.backends.base import CreateError, SessionBase, UpdateError

from lbkit.errors import ConfigError, SessionConflict, StoreError
from lbkit.integrations._core import (
    SessionOptions,
    StoreSteps,
    baseline,
    changes,
    load_flow,
    update_flow,
)
from lbkit.integrations._stores import store_from_url
from lbkit.sessions import ABSENT
from lbkit.sessions._flow import run

__all__ = ["SessionStore"]

# Django's keys are 32 of [a-z0-9]; accept what a store key may be, at least Django's 8.
_KEY = re.compile(r"[A-Za-z0-9_,-]{8,200}\Z")
_ALLOWED_OPTIONS = {"serializer", "max_retries"}


def _store() -> Any:
    configured = getattr(settings, "LBKIT_SESSION_STORE", None)
    if configured is None:
        raise ConfigError(
            "SESSION_ENGINE 'lbkit.integrations.django' needs settings.LBKIT_SESSION_STORE: "
            "a URL such as 'redis://127.0.0.1:6379/0' or a store object"
        )
    if isinstance(configured, str):
        return store_from_url(configured, shared=True)
    return configured


def _options() -> SessionOptions:
    given = dict(getattr(settings, "LBKIT_SESSION_OPTIONS", {}) or {})
    unknown = sorted(set(given) - _ALLOWED_OPTIONS)
    if unknown:
        raise ConfigError(
            f"unknown LBKIT_SESSION_OPTIONS {unknown}: expected some of {sorted(_ALLOWED_OPTIONS)}"
            " (Django's own settings name the cookie and the expiry)"
        )
    # Django keeps its own expiry in the data and its own cookie: no lbkit metadata
    return SessionOptions(meta_key=None, idle_timeout=None, **given)


class SessionStore(SessionBase):  # type: ignore[misc]
    """Django's session backend over an lbkit store."""

    def __init__(self, session_key: str | None = None) -> None:
        self._store = _store()
        self._steps = StoreSteps(self._store)
        self._options = _options()
        self._version: int | None = None
        self._baseline: dict[str, bytes] | None = None
        self._modified = False
        super().__init__(session_key)

    # In-place edits are saved: modified also when a key's serialised bytes changed.
    @property
    def modified(self) -> bool:
        """Whether the session must be saved."""
        if self._modified:
            return True
        cache = getattr(self, "_session_cache", None)
        if cache is None or self._baseline is None:
            return False
        changed, deleted = changes(self._options, self._baseline, cache)
        return bool(changed or deleted)

    @modified.setter
    def modified(self, value: bool) -> None:
        self._modified = value

    def _validate_session_key(self, key: str | None) -> bool:
        return bool(key) and bool(_KEY.match(key or ""))

    def load(self) -> dict[str, Any]:
        """The stored data (an empty new session if the key is unknown: never adopted)."""
        try:
            loaded = run(load_flow(self._options, self._steps, self.session_key, 0.0))
        except StoreError:
            # raised in this request; Django's error page reads the session again (CSRF):
            # it then finds it empty instead of failing a second time
            self._session_cache: dict[str, Any] = {}
            raise
        if loaded.id is None:
            self._session_key = None
            self._version = None
            self._baseline = {}
            return {}
        self._version = loaded.version
        self._baseline = baseline(self._options, loaded.data)
        return dict(loaded.data)

    def exists(self, session_key: str | None) -> bool:
        """Whether the store holds ``session_key``."""
        if not session_key or not _KEY.match(session_key):
            return False
        return self._store.get(session_key) is not None

    def create(self) -> None:
        """Save the data under a new key (Django's ``cycle_key`` and new sessions)."""
        for _ in range(100):
            self._session_key = self._get_new_session_key()
            try:
                self.save(must_create=True)
            except CreateError:
                continue
            self.modified = True
            return
        raise SessionConflict("could not create a session key after 100 tries")

    def save(self, must_create: bool = False) -> None:
        """Write the session (compare-and-set with the version read; merge after a race)."""
        if self.session_key is None:
            self.create()
            return
        data = self._get_session(no_load=must_create)
        ttl = float(self.get_expiry_age())
        if ttl <= 0:
            self.delete()
            return
        payload = self._options.serializer.dumps(data)
        if must_create:
            try:
                self._version = self._store.set(self.session_key, payload, ttl, if_version=ABSENT)
            except SessionConflict:
                raise CreateError from None
            self._baseline = baseline(self._options, data)
            return
        before = self._baseline or {}
        changed, deleted = changes(self._options, before, data)
        flow = update_flow(
            self._options, self._steps, self.session_key, self._version, data, changed, deleted,
            ttl, {},
        )  # fmt: skip
        if run(flow) is not None:
            raise UpdateError  # deleted meanwhile (logged out elsewhere)
        self._baseline = baseline(self._options, data)

    def delete(self, session_key: str | None = None) -> None:
        """Remove a session from the store."""
        key = session_key if session_key is not None else self.session_key
        if key is None or not _KEY.match(key):
            return
        self._store.delete(key)

    @classmethod
    def clear_expired(cls) -> None:
        """Nothing to do: the stores expire sessions themselves (TTL)."""
