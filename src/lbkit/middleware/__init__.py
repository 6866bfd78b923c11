"""WSGI and ASGI middleware."""

from lbkit.middleware.asgi import ASGISessionMiddleware, AsyncLazySession
from lbkit.middleware.routing import ASGIRoutingMiddleware, WSGIRoutingMiddleware
from lbkit.middleware.wsgi import LazySession, WSGISessionMiddleware

__all__ = [
    "ASGIRoutingMiddleware",
    "ASGISessionMiddleware",
    "AsyncLazySession",
    "LazySession",
    "WSGIRoutingMiddleware",
    "WSGISessionMiddleware",
]
