"""``SqliteStore``: sessions in an SQLite database (WAL mode), shared by local processes."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable

from lbkit.errors import SessionConflict, StoreUnavailable
from lbkit.sessions.base import (
    ABSENT,
    DEFAULT_MAX_VALUE,
    Version,
    check_ttl,
    check_value,
    validate_key,
)
from lbkit.sessions.threaded import ThreadedAsyncStore

__all__ = ["AsyncSqliteStore", "SqliteStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS lbkit_sessions (
    key TEXT PRIMARY KEY,
    value BLOB NOT NULL,
    version INTEGER NOT NULL,
    expires REAL
)
"""


class SqliteStore:
    """Sessions in one SQLite file; one connection per thread, WAL journal.

    Writers take SQLite's database lock (``BEGIN IMMEDIATE``) and wait up to ``timeout``
    seconds for it, then :class:`~lbkit.StoreUnavailable`.
    """

    capabilities = frozenset({"ttl", "touch", "versions"})

    def __init__(
        self,
        path: str | os.PathLike[str],
        max_value: int = DEFAULT_MAX_VALUE,
        *,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = os.fspath(path)
        self.max_value = max_value
        self.timeout = timeout
        self._clock = clock
        self._local = threading.local()
        with self._tx() as db:
            db.execute(_SCHEMA)

    def _db(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            try:
                db = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None)
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=NORMAL")
            except sqlite3.Error as exc:
                raise StoreUnavailable(
                    f"cannot open SQLite store {self.path}: {exc}", address=self.path
                ) from exc
            self._local.db = db
        return db

    class _Tx:
        def __init__(self, store: SqliteStore) -> None:
            self.store = store

        def __enter__(self) -> sqlite3.Connection:
            self.db = self.store._db()
            try:
                self.db.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                raise StoreUnavailable(
                    f"SQLite store {self.store.path} is locked: {exc}", address=self.store.path
                ) from exc
            return self.db

        def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
            self.db.execute("ROLLBACK" if exc_type else "COMMIT")

    def _tx(self) -> SqliteStore._Tx:
        return SqliteStore._Tx(self)

    def _row(self, db: sqlite3.Connection, key: str) -> tuple[bytes, int] | None:
        row = db.execute(
            "SELECT value, version FROM lbkit_sessions WHERE key = ? "
            "AND (expires IS NULL OR expires > ?)",
            (key, self._clock()),
        ).fetchone()
        return None if row is None else (bytes(row[0]), int(row[1]))

    def get(self, key: str) -> bytes | None:
        """The value of ``key``, or None."""
        row = self._row(self._db(), validate_key(key))
        return None if row is None else row[0]

    def get_versioned(self, key: str) -> tuple[bytes, Version] | None:
        """The value and version of ``key``, or None."""
        return self._row(self._db(), validate_key(key))

    def set(
        self,
        key: str,
        value: bytes,
        ttl: float | None = None,
        *,
        if_version: Version | None = None,
    ) -> Version:
        """Store ``value`` in one transaction (versioned when ``if_version`` is given)."""
        validate_key(key)
        data = check_value(value, self.max_value)
        ttl = check_ttl(ttl)
        expires = None if ttl is None else self._clock() + ttl
        with self._tx() as db:
            row = self._row(db, key)
            have = ABSENT if row is None else row[1]
            if if_version is not None and have != if_version:
                raise SessionConflict(
                    f"session {key!r} changed: version {have}, expected {if_version}"
                )
            stored = db.execute("SELECT version FROM lbkit_sessions WHERE key = ?", (key,))
            old = stored.fetchone()
            version = (int(old[0]) if old else 0) + 1
            db.execute(
                "INSERT INTO lbkit_sessions (key, value, version, expires) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value, "
                "version = excluded.version, expires = excluded.expires",
                (key, data, version, expires),
            )
            return version

    def delete(self, key: str) -> bool:
        """Remove ``key``."""
        validate_key(key)
        with self._tx() as db:
            live = self._row(db, key) is not None
            db.execute("DELETE FROM lbkit_sessions WHERE key = ?", (key,))
            return live

    def touch(self, key: str, ttl: float) -> bool:
        """Give ``key`` a new TTL from now."""
        validate_key(key)
        limit = check_ttl(ttl)
        expires = None if limit is None else self._clock() + limit
        with self._tx() as db:
            if self._row(db, key) is None:
                return False
            db.execute("UPDATE lbkit_sessions SET expires = ? WHERE key = ?", (expires, key))
            return True

    def purge_expired(self) -> int:
        """Delete expired rows; returns how many."""
        with self._tx() as db:
            cur = db.execute(
                "DELETE FROM lbkit_sessions WHERE expires IS NOT NULL AND expires <= ?",
                (self._clock(),),
            )
            return int(cur.rowcount)

    def close(self) -> None:
        """Close this thread's connection."""
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None


class AsyncSqliteStore(ThreadedAsyncStore[SqliteStore]):
    """The asyncio twin of :class:`SqliteStore` (same arguments)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(SqliteStore(*args, **kwargs))  # type: ignore[arg-type]
