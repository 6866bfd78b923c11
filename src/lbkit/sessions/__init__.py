"""Shared sessions: one store interface (sync and asyncio) over several backends.

Backends whose client library is optional (Redis, memcached, SQL) are imported on first use of
their class, so ``import lbkit.sessions`` needs only the core dependencies.
"""

from __future__ import annotations

from typing import Any

from lbkit.errors import (
    InvalidKeyError,
    InvalidStoreArgument,
    SessionConflict,
    SessionDataError,
    SessionInterrupted,
    StoreError,
    StoreUnavailable,
    UnsupportedOperation,
    ValueTooLarge,
)
from lbkit.sessions._files import AsyncFileStore, FileStore
from lbkit.sessions._manager import AsyncSessionManager, SessionManager
from lbkit.sessions._memory import AsyncMemoryStore, MemoryStore
from lbkit.sessions._php import PhpSerializer
from lbkit.sessions._php_locks import AsyncPhpLockingStore, PhpLockingStore
from lbkit.sessions._session import (
    CookieConfig,
    CookieSigner,
    JSONSerializer,
    Serializer,
    Session,
    new_session_id,
)
from lbkit.sessions._sharded import AsyncShardedStore, ShardedStore
from lbkit.sessions._sharedance import AsyncSharedanceStore, SharedanceStore
from lbkit.sessions._sqlite import AsyncSqliteStore, SqliteStore
from lbkit.sessions.base import ABSENT, AsyncSessionStore, SessionStore, Version, validate_key

__all__ = [
    "ABSENT",
    "AsyncFileStore",
    "AsyncMemcachedStore",
    "AsyncMemoryStore",
    "AsyncPhpLockingStore",
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
    "InvalidStoreArgument",
    "JSONSerializer",
    "MemcachedStore",
    "MemoryStore",
    "PhpLockingStore",
    "PhpSerializer",
    "RedisStore",
    "Serializer",
    "Session",
    "SessionConflict",
    "SessionDataError",
    "SessionInterrupted",
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
    "RedisStore": "lbkit.sessions._redis",
    "AsyncRedisStore": "lbkit.sessions._redis",
    "MemcachedStore": "lbkit.sessions._memcached",
    "AsyncMemcachedStore": "lbkit.sessions._memcached",
    "SqlStore": "lbkit.sessions._sql",
    "AsyncSqlStore": "lbkit.sessions._sql",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'lbkit.sessions' has no attribute {name!r}")
