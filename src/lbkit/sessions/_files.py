"""``FileStore``: one file per session in a directory, safe for several processes and hosts.

Writes go to a temporary file that is fsynced and renamed over the session's file, so a
reader (or a crash) sees the old or the new value, never a mix. Versioned writes and deletes
hold a POSIX record lock (``fcntl.lockf``, which NFS supports) on one of 64 lock files
chosen by key. Each file starts with a small header: format tag, version, expiry (wall-clock
seconds, since several hosts may share the directory). Expired files are ignored on read and
removed by :meth:`FileStore.purge_expired`.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

from lbkit.errors import ConfigError, StoreUnavailable
from lbkit.sessions._atomic_file import TEMP_PREFIX, write_file
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

__all__ = ["AsyncFileStore", "FileStore"]

_MAGIC = b"LBKS1"
# magic, version, expires (0 = never), crc32 of the value
_HEADER = struct.Struct(">5sQdI")
_STRIPES = 64
_PREFIX = "s-"


_THREAD_LOCKS: dict[str, threading.Lock] = {}
_THREAD_LOCKS_GUARD = threading.Lock()


def _thread_lock(path: str) -> threading.Lock:
    with _THREAD_LOCKS_GUARD:
        lock = _THREAD_LOCKS.get(path)
        if lock is None:
            lock = _THREAD_LOCKS[path] = threading.Lock()
        return lock


class FileStore:
    """Sessions as files in ``directory`` (created if missing)."""

    capabilities = frozenset({"ttl", "touch", "versions"})

    def __init__(
        self,
        directory: str | os.PathLike[str],
        max_value: int = DEFAULT_MAX_VALUE,
        *,
        fsync: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.directory = Path(directory)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            (self.directory / ".locks").mkdir(exist_ok=True)
        except OSError as exc:
            raise StoreUnavailable(
                f"cannot use {self.directory} for sessions: {exc}", address=str(self.directory)
            ) from exc
        if not os.access(self.directory, os.W_OK):
            raise ConfigError(f"session directory {self.directory} is not writable")
        self.max_value = max_value
        self.fsync = fsync
        self._clock = clock

    def _path(self, key: str) -> Path:
        # The key is validated (A-Z a-z 0-9 _ - : ,), so it cannot name another directory.
        return self.directory / (_PREFIX + validate_key(key))

    @contextlib.contextmanager
    def _locked(self, key: str) -> Iterator[None]:
        stripe = zlib.crc32(key.encode()) % _STRIPES
        path = self.directory / ".locks" / f"{stripe:02d}"
        # POSIX record locks exclude other processes only: threads need their own lock.
        with _thread_lock(str(path)):
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX)
                yield
            finally:
                with contextlib.suppress(OSError):
                    fcntl.lockf(fd, fcntl.LOCK_UN)
                os.close(fd)

    def _read(self, key: str) -> tuple[bytes, Version, float] | None:
        path = self._path(key)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StoreUnavailable(f"cannot read {path}: {exc}", address=str(path)) from exc
        if len(raw) < _HEADER.size:
            return None
        magic, version, expires, crc = _HEADER.unpack_from(raw)
        value = raw[_HEADER.size :]
        if magic != _MAGIC or zlib.crc32(value) != crc:
            return None  # not ours, or damaged: never hand out a partial value
        if expires and self._clock() >= expires:
            return None
        return value, version, expires

    def _write(self, key: str, value: bytes, version: Version, expires: float) -> None:
        path = self._path(key)
        header = _HEADER.pack(_MAGIC, version, expires, zlib.crc32(value))
        try:
            write_file(path, header + value, fsync=self.fsync)
        except OSError as exc:  # nothing renamed: the previous value is still there
            raise StoreUnavailable(f"cannot write {path}: {exc}", address=str(path)) from exc

    def get(self, key: str) -> bytes | None:
        """The value of ``key``, or None."""
        entry = self._read(validate_key(key))
        return None if entry is None else entry[0]

    def get_versioned(self, key: str) -> tuple[bytes, Version] | None:
        """The value and version of ``key``, or None."""
        entry = self._read(validate_key(key))
        return None if entry is None else (entry[0], entry[1])

    def set(
        self,
        key: str,
        value: bytes,
        ttl: float | None = None,
        *,
        if_version: Version | None = None,
    ) -> Version:
        """Write ``value`` atomically (versioned when ``if_version`` is given)."""
        data, ttl = check_set(key, value, ttl, if_version, self.max_value)
        with self._locked(key):
            current = self._read(key)
            have = ABSENT if current is None else current[1]
            check_expected(key, have, if_version)
            version = new_version(have)
            expires = 0.0 if ttl is None else self._clock() + ttl
            self._write(key, data, version, expires)
            return version

    def delete(self, key: str) -> bool:
        """Remove ``key``."""
        validate_key(key)
        with self._locked(key):
            existed = self._read(key) is not None
            with contextlib.suppress(FileNotFoundError):
                self._path(key).unlink()
            return existed

    def touch(self, key: str, ttl: float) -> bool:
        """Give ``key`` a new TTL from now (rewrites the file atomically)."""
        validate_key(key)
        limit = check_ttl(ttl)
        with self._locked(key):
            current = self._read(key)
            if current is None:
                return False
            expires = 0.0 if limit is None else self._clock() + limit
            self._write(key, current[0], current[1], expires)
            return True

    def purge_expired(self) -> int:
        """Delete expired session files and stale temporary files; returns how many."""
        removed = 0
        now = self._clock()
        for path in self.directory.iterdir():
            name = path.name
            if name.startswith(TEMP_PREFIX):
                with contextlib.suppress(OSError):
                    if now - path.stat().st_mtime > 3600:
                        path.unlink()
                        removed += 1
                continue
            if not name.startswith(_PREFIX):
                continue
            key = name[len(_PREFIX) :]
            with self._locked(key):
                try:
                    head = path.open("rb").read(_HEADER.size)
                except OSError:
                    continue
                if len(head) == _HEADER.size:
                    _, _, expires, _ = _HEADER.unpack(head)
                    if expires and now >= expires:
                        with contextlib.suppress(FileNotFoundError):
                            path.unlink()
                            removed += 1
        return removed

    def close(self) -> None:
        """Nothing to release."""


class AsyncFileStore(ThreadedAsyncStore[FileStore]):
    """The asyncio twin of :class:`FileStore` (calls run in worker threads)."""

    def __init__(
        self,
        directory: str | os.PathLike[str],
        max_value: int = DEFAULT_MAX_VALUE,
        *,
        fsync: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(FileStore(directory, max_value, fsync=fsync, clock=clock))
