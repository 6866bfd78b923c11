"""Adapters that make a web framework's own session an lbkit session.

- :mod:`lbkit.integrations.flask`: ``app.session_interface = SessionInterface(store)``
- :mod:`lbkit.integrations.starlette`: ``SessionMiddleware(app, store=store)``
- :mod:`lbkit.integrations.django`: ``SESSION_ENGINE = "lbkit.integrations.django"``

Each module imports its framework only when it is imported itself.
"""

from __future__ import annotations

from lbkit.integrations._core import SessionDict, SessionOptions
from lbkit.integrations._stores import store_from_url

__all__ = ["SessionDict", "SessionOptions", "store_from_url"]
