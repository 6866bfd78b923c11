"""A sharedance-compatible server (asyncio): files in a directory, expired by age.

Behaves like the original daemon: one request per connection; a store writes a temporary
file and renames it over the key's file (0600, as the original); entries older than
``expiration`` seconds (by modification time) are removed by a periodic cleanup and never
served; a request larger than ``max_read_size`` or malformed is dropped without a reply.

Unlike the original it answers ``OK`` to a store only once the file is fsynced and renamed
(stores arriving together share one flush: a group commit), bounds each request by one
deadline (``timeout`` for the whole request, however slowly it trickles in), accepts at most
``max_connections`` clients at once (others wait in the listen backlog, so the process
never runs out of file descriptors) and holds at most ``max_read_size`` bytes per
connection. It does not
chroot: bind it to a private address.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import resource
import socket
import time
from pathlib import Path

from lbkit.errors import ConfigError
from lbkit.sessions._atomic_file import TEMP_PREFIX, write_files
from lbkit.sharedance.protocol import DEFAULT_PORT, OK, ProtocolError, Request, RequestParser

__all__ = ["SharedanceServer", "default_max_connections"]


def default_max_connections() -> int:
    """Half the process's open-file limit, at most 1024 (stores need file descriptors too)."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 1024
    return max(1, min(1024, soft // 2))


class _GroupCommit:
    """Collects store requests and writes them in batches (one flush per batch)."""

    def __init__(self, directory: Path, max_batch: int) -> None:
        self.directory = directory
        self.max_batch = max_batch
        self._pending: list[tuple[str, bytes, asyncio.Future[bool]]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for _name, _data, future in self._pending:
            if not future.done():
                future.set_result(False)
        self._pending.clear()

    async def store(self, name: str, data: bytes) -> bool:
        """Whether the value is durably stored (False: it was not, say nothing)."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._pending.append((name, data, future))
        self._wake.set()
        return await asyncio.shield(future)  # a client gone early does not stop the write

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                batch = self._pending[: self.max_batch]
                del self._pending[: self.max_batch]
                files = [(name, data) for name, data, _future in batch]
                try:
                    errors = await asyncio.to_thread(write_files, self.directory, files)
                except BaseException:
                    for _name, _data, future in batch:
                        if not future.done():
                            future.set_result(False)
                    raise
                for (_name, _data, future), error in zip(batch, errors, strict=True):
                    if not future.done():
                        future.set_result(error is None)


class SharedanceServer:
    """Serve the sharedance protocol from ``directory`` on ``ip:port``."""

    def __init__(
        self,
        directory: str | os.PathLike[str],
        ip: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        *,
        expiration: float = 600.0,
        timeout: float = 10.0,
        max_read_size: int = 16 * 1024 * 1024,
        read_size: int = 65536,
        backlog: int = 128,
        max_connections: int | None = None,
        max_batch: int = 256,
    ) -> None:
        for name, value in (
            ("expiration", expiration),
            ("timeout", timeout),
            ("max_read_size", max_read_size),
            ("read_size", read_size),
            ("backlog", backlog),
            ("max_batch", max_batch),
        ):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ConfigError(f"invalid {name}={value!r}: expected a number > 0")
        self.max_connections = (
            default_max_connections() if max_connections is None else max_connections
        )
        if isinstance(self.max_connections, bool) or not isinstance(self.max_connections, int):
            raise ConfigError(f"invalid max_connections={max_connections!r}: expected an int")
        if self.max_connections < 1:
            raise ConfigError(f"invalid max_connections={max_connections!r}: expected >= 1")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.ip = ip
        self.port = port
        self.expiration = expiration
        self.timeout = timeout
        self.max_read_size = max_read_size
        self.read_size = read_size
        self.backlog = backlog
        self.max_batch = max_batch
        self.active = 0
        self._listener: socket.socket | None = None
        self._acceptor: asyncio.Task[None] | None = None
        self._clients: set[asyncio.Task[None]] = set()
        self._cleaner: asyncio.Task[None] | None = None
        self._commits: _GroupCommit | None = None

    def _path(self, key: bytes) -> Path:
        # The parser accepted only bytes 32..126 without "." or "/": a plain file name.
        return self.directory / key.decode("ascii")

    def _fetch(self, key: bytes) -> bytes | None:
        path = self._path(key)
        try:
            with open(path, "rb") as f:
                if time.time() - os.fstat(f.fileno()).st_mtime > self.expiration:
                    return None
                return f.read() or None
        except OSError:
            return None

    def _delete(self, key: bytes) -> bytes | None:
        try:
            self._path(key).unlink()
        except OSError:
            return None
        return OK

    async def _read_request(self, reader: asyncio.StreamReader) -> Request | None:
        parser = RequestParser(self.max_read_size)
        while True:
            chunk = await reader.read(self.read_size)
            if not chunk:
                return None
            request = parser.feed(chunk)
            if request is not None:
                return request

    async def _answer(self, request: Request) -> bytes | None:
        if request.command == "store":
            assert self._commits is not None
            stored = await self._commits.store(request.key.decode("ascii"), request.data)
            return OK if stored else None
        if request.command == "fetch":
            return self._fetch(request.key)
        return self._delete(request.key)

    async def _accept_forever(self) -> None:
        # Accept only while a slot is free: clients beyond the limit wait in the kernel's
        # backlog instead of costing a file descriptor each (asyncio's own accept loop
        # takes up to `backlog` connections at once and logs every EMFILE).
        assert self._listener is not None
        loop = asyncio.get_running_loop()
        slots = asyncio.Semaphore(self.max_connections)
        while True:
            await slots.acquire()
            try:
                conn, _addr = await loop.sock_accept(self._listener)
            except OSError as exc:
                slots.release()
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    await asyncio.sleep(0.05)  # out of descriptors: let connections finish
                    continue
                if self._listener.fileno() < 0:
                    return
                continue
            task = asyncio.create_task(self._client(conn, slots))
            self._clients.add(task)
            task.add_done_callback(self._clients.discard)

    async def _client(self, conn: socket.socket, slots: asyncio.Semaphore) -> None:
        self.active += 1
        writer: asyncio.StreamWriter | None = None
        try:
            reader, writer = await asyncio.open_connection(sock=conn)
            # one deadline for the whole request, however slowly its bytes trickle in
            request = await asyncio.wait_for(self._read_request(reader), self.timeout)
            if request is None:
                return
            reply = await self._answer(request)
            if reply:
                writer.write(reply)
                await asyncio.wait_for(writer.drain(), self.timeout)
        except (ProtocolError, asyncio.TimeoutError, ConnectionError, OSError):
            return
        finally:
            self.active -= 1
            slots.release()
            if writer is None:
                conn.close()
            else:
                writer.close()
                with contextlib.suppress(Exception):
                    await writer.wait_closed()

    def cleanup(self) -> int:
        """Remove entries (and stray temporary files) older than ``expiration``; how many."""
        removed = 0
        now = time.time()
        for path in self.directory.iterdir():
            with contextlib.suppress(OSError):
                age = now - path.stat().st_mtime
                if age > self.expiration or (path.name.startswith(TEMP_PREFIX) and age > 3600):
                    path.unlink()
                    removed += 1
        return removed

    async def _clean_forever(self) -> None:
        interval = max(1.0, min(self.expiration / 2, 60.0))
        while True:
            await asyncio.sleep(interval)
            await asyncio.to_thread(self.cleanup)

    async def start(self) -> None:
        """Start listening (returns once the socket is bound)."""
        self._commits = _GroupCommit(self.directory, self.max_batch)
        self._commits.start()
        self._listener = socket.create_server((self.ip, self.port), backlog=self.backlog)
        self._listener.setblocking(False)
        self.port = int(self._listener.getsockname()[1])
        self._acceptor = asyncio.create_task(self._accept_forever())
        self._cleaner = asyncio.create_task(self._clean_forever())

    async def serve_forever(self) -> None:
        """Start and serve until cancelled."""
        if self._acceptor is None:
            await self.start()
        assert self._acceptor is not None
        try:
            await self._acceptor
        finally:
            await self.stop()

    async def stop(self) -> None:
        """Stop listening, serving, cleaning and committing."""
        for task in (self._acceptor, self._cleaner, *self._clients):
            if task is not None:
                task.cancel()
        if self._clients:
            await asyncio.gather(*self._clients, return_exceptions=True)
        if self._listener is not None:
            self._listener.close()
        if self._commits is not None:
            await self._commits.stop()
