"""WSGI and ASGI middleware."""

from lbkit.middleware.asgi import ASGISessionMiddleware, AsyncLazySession
from lbkit.middleware.wsgi import LazySession, WSGISessionMiddleware

__all__ = ["ASGISessionMiddleware", "AsyncLazySession", "LazySession", "WSGISessionMiddleware"]
