"""The sharedance protocol: sans-I/O codec, sync/async clients and a compatible server."""

from lbkit.sharedance.client import AsyncSharedanceStore, SharedanceStore
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
