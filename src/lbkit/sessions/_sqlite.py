"""``SqliteStore``: sessions in an SQLite database (WAL mode), shared by local processes."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator

from lbkit.errors import StoreUnavailable
from lbkit.sessions._threaded import ThreadedAsyncStore
from lbkit.sessions.base import (
    ABSENT,
    DEFAULT_MAX_VALUE,
    Version,
    check_expected,
    check_set,
    check_ttl,
    new_version,
    validate_key,
)

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
                db.execute("PRAGMA synchronous=FULL")
            except sqlite3.Error as exc:
                raise StoreUnavailable(
                    f"cannot open SQLite store {self.path}: {exc}", address=self.path
                ) from exc
            self._local.db = db
        return db

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; any SQLite failure (locked, disk full...) is a StoreError
        and rolls back, so nothing is half-written or acknowledged."""
        db = self._db()
        try:
            db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise self._failed("is locked or unusable", exc) from exc
        try:
            yield db
            db.execute("COMMIT")
        except BaseException as exc:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise self._failed("could not write", exc) from exc
            raise

    def _failed(self, what: str, exc: sqlite3.Error) -> StoreUnavailable:
        return StoreUnavailable(f"SQLite store {self.path} {what}: {exc}", address=self.path)

    def _row(self, db: sqlite3.Connection, key: str) -> tuple[bytes, int] | None:
        try:
            row = db.execute(
                "SELECT value, version FROM lbkit_sessions WHERE key = ? "
                "AND (expires IS NULL OR expires > ?)",
                (key, self._clock()),
            ).fetchone()
        except sqlite3.Error as exc:
            raise self._failed("could not read", exc) from exc
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
        data, ttl = check_set(key, value, ttl, if_version, self.max_value)
        expires = None if ttl is None else self._clock() + ttl
        with self._tx() as db:
            row = self._row(db, key)
            have = ABSENT if row is None else row[1]
            check_expected(key, have, if_version)
            version = new_version(have)
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
    """The asyncio twin of :class:`SqliteStore` (calls run in worker threads)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        max_value: int = DEFAULT_MAX_VALUE,
        *,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(SqliteStore(path, max_value, timeout=timeout, clock=clock))
