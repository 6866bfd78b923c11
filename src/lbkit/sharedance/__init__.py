"""The sharedance protocol: a sans-I/O codec and a compatible server.

The client stores are :class:`lbkit.sessions.SharedanceStore` and
:class:`lbkit.sessions.AsyncSharedanceStore` (also reachable from here).
"""

from typing import Any

from lbkit.sharedance.protocol import (
    DEFAULT_PORT,
    ProtocolError,
    Request,
    RequestParser,
    encode_delete,
    encode_fetch,
    encode_store,
    is_valid_key,
)
from lbkit.sharedance.server import SharedanceServer

__all__ = [
    "DEFAULT_PORT",
    "AsyncSharedanceStore",
    "ProtocolError",
    "Request",
    "RequestParser",
    "SharedanceServer",
    "SharedanceStore",
    "encode_delete",
    "encode_fetch",
    "encode_store",
    "is_valid_key",
]


def __getattr__(name: str) -> Any:
    if name in ("SharedanceStore", "AsyncSharedanceStore"):
        from lbkit.sessions import _sharedance as sharedance

        return getattr(sharedance, name)
    raise AttributeError(f"module 'lbkit.sharedance' has no attribute {name!r}")
