"""Flask: ``app.session_interface = SessionInterface(store, **options)``.

Flask's own ``session`` (and so ``flash()``, Flask-Login, Authlib's OAuth state) is then
an lbkit session kept in ``store``. ``session.permanent = True`` gives the session
``app.permanent_session_lifetime``; ``session.regenerate()`` moves it to a new id (call it
on login); ``session.invalidate()`` deletes it (logout). Store errors are raised inside the
request, so Flask's error handlers and reporters see them.
"""

from __future__ import annotations

import time
from typing import Any

from flask import Flask, Request, Response
from flask.sessions import SessionInterface as _FlaskSessionInterface
from flask.sessions import SessionMixin

from lbkit.integrations._core import SessionDict, SessionOptions, StoreSteps, load_flow
from lbkit.sessions._flow import run

__all__ = ["Session", "SessionInterface"]


class Session(SessionDict, SessionMixin):
    """Flask's ``session``: a dict (see :class:`~lbkit.integrations.SessionDict`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.modified = False
        self.accessed = False

    def __getitem__(self, key: str) -> Any:
        self.accessed = True
        return super().__getitem__(key)

    def get(self, key: str, default: Any = None) -> Any:
        """``dict.get`` (marks the session accessed: responses vary on the cookie)."""
        self.accessed = True
        return super().get(key, default)


class SessionInterface(_FlaskSessionInterface):
    """Keeps Flask's sessions in an lbkit store (any sync store: Redis, memcached...).

    ``options`` are :class:`~lbkit.integrations.SessionOptions` (cookie name
    ``lbkit_session``, Secure following the request's scheme, secrets, lifetimes...).
    """

    session_class = Session

    def __init__(self, store: Any, **options: Any) -> None:
        self.store = store
        self.options = SessionOptions.from_options(options)
        self.steps = StoreSteps(store)

    def open_session(self, app: Flask, request: Request) -> Session:
        """Load the session named by the request's cookie (a new one if none is valid)."""
        session_id, resign = self.options.unsign(request.cookies.get(self.options.cookie_name))
        loaded = run(load_flow(self.options, self.steps, session_id, time.time(), resign=resign))
        return Session(loaded)

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        """Write what the request changed and set or delete the cookie."""
        if not isinstance(session, Session):
            return  # Flask's null session: opening failed and the error is being handled
        permanent = dict.get(session, "_permanent", False)  # not session.get: no access
        if permanent and session.lifetime is None:
            session.lifetime = app.permanent_session_lifetime.total_seconds()
        elif not permanent and session.lifetime is None and session.loaded.lifetime:
            session.lifetime = 0
        action = run(session.save_flow(self.options, self.steps))
        if session.accessed or action is not None:
            response.vary.add("Cookie")
        if action is not None:
            from flask import request

            response.headers.add("Set-Cookie", action.header(self.options, request.is_secure))
