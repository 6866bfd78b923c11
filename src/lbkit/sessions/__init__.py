"""Shared sessions: one store interface (sync and asyncio) over several backends.

Backends whose client library is optional (Redis, memcached, SQL) are imported on first use of
their class, so ``import lbkit.sessions`` needs only the core dependencies.
"""

from __future__ import annotations

from typing import Any

from lbkit.errors import (
    InvalidKeyError,
    SessionConflict,
    StoreError,
    StoreUnavailable,
    UnsupportedOperation,
    ValueTooLarge,
)
from lbkit.sessions.base import ABSENT, AsyncSessionStore, SessionStore, Version, validate_key
from lbkit.sessions.files import AsyncFileStore, FileStore
from lbkit.sessions.manager import AsyncSessionManager, SessionManager
from lbkit.sessions.memory import AsyncMemoryStore, MemoryStore
from lbkit.sessions.session import (
    CookieConfig,
    CookieSigner,
    JSONSerializer,
    Serializer,
    Session,
    new_session_id,
)
from lbkit.sessions.sharded import AsyncShardedStore, ShardedStore
from lbkit.sessions.sharedance import AsyncSharedanceStore, SharedanceStore
from lbkit.sessions.sqlite import AsyncSqliteStore, SqliteStore

__all__ = [
    "ABSENT",
    "AsyncFileStore",
    "AsyncMemcachedStore",
    "AsyncMemoryStore",
    "AsyncRedisStore",
    "AsyncSessionManager",
    "AsyncSessionStore",
    "AsyncShardedStore",
    "AsyncSharedanceStore",
    "AsyncSqlStore",
    "AsyncSqliteStore",
    "CookieConfig",
    "CookieSigner",
    "FileStore",
    "InvalidKeyError",
    "JSONSerializer",
    "MemcachedStore",
    "MemoryStore",
    "RedisStore",
    "Serializer",
    "Session",
    "SessionConflict",
    "SessionManager",
    "SessionStore",
    "ShardedStore",
    "SharedanceStore",
    "SqlStore",
    "SqliteStore",
    "StoreError",
    "StoreUnavailable",
    "UnsupportedOperation",
    "ValueTooLarge",
    "Version",
    "new_session_id",
    "validate_key",
]

_LAZY = {
    "RedisStore": "lbkit.sessions.redis",
    "AsyncRedisStore": "lbkit.sessions.redis",
    "MemcachedStore": "lbkit.sessions.memcached",
    "AsyncMemcachedStore": "lbkit.sessions.memcached",
    "SqlStore": "lbkit.sessions._sql",
    "AsyncSqlStore": "lbkit.sessions._sql",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'lbkit.sessions' has no attribute {name!r}")
