"""A sharedance-compatible server (asyncio): files in a directory, expired by age.

Behaves like the original daemon: one request per connection; a store writes a temporary
file and renames it over the key's file; entries older than ``expiration`` seconds (by
modification time) are removed by a periodic cleanup and never served; an idle connection
is dropped after ``timeout`` seconds; a request larger than ``max_read_size`` or malformed
is dropped without a reply. Unlike the original it does not chroot: bind it to a private
address.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import time
from pathlib import Path

from lbkit.sharedance.protocol import OK, ProtocolError, Request, RequestParser

__all__ = ["SharedanceServer"]


class SharedanceServer:
    """Serve the sharedance protocol from ``directory`` on ``ip:port``."""

    def __init__(
        self,
        directory: str | os.PathLike[str],
        ip: str = "127.0.0.1",
        port: int = 1042,
        *,
        expiration: float = 600.0,
        timeout: float = 10.0,
        max_read_size: int = 16 * 1024 * 1024,
        read_size: int = 65536,
        backlog: int = 128,
    ) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.ip = ip
        self.port = port
        self.expiration = expiration
        self.timeout = timeout
        self.max_read_size = max_read_size
        self.read_size = read_size
        self.backlog = backlog
        self._server: asyncio.base_events.Server | None = None
        self._cleaner: asyncio.Task[None] | None = None

    def _path(self, key: bytes) -> Path:
        # The parser accepted only bytes 32..126 without "." or "/": a plain file name.
        return self.directory / key.decode("ascii")

    def _expired(self, path: Path) -> bool:
        try:
            return time.time() - path.stat().st_mtime > self.expiration
        except OSError:
            return True

    def _handle(self, request: Request) -> bytes | None:
        path = self._path(request.key)
        if request.command == "store":
            tmp = self.directory / f".tmp-{secrets.token_hex(8)}"
            try:
                with open(tmp, "wb") as f:
                    f.write(request.data)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, path)
            except OSError:
                with contextlib.suppress(OSError):
                    tmp.unlink()
                return None
            return OK
        if request.command == "fetch":
            if self._expired(path):
                return None
            try:
                return path.read_bytes() or None
            except OSError:
                return None
        try:
            path.unlink()
        except OSError:
            return None
        return OK

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        parser = RequestParser(self.max_read_size)
        try:
            request = None
            while request is None:
                chunk = await asyncio.wait_for(reader.read(self.read_size), self.timeout)
                if not chunk:
                    return
                request = parser.feed(chunk)
            reply = await asyncio.to_thread(self._handle, request)
            if reply:
                writer.write(reply)
                await asyncio.wait_for(writer.drain(), self.timeout)
        except (ProtocolError, asyncio.TimeoutError, ConnectionError, OSError):
            return
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    def cleanup(self) -> int:
        """Remove entries older than ``expiration``; returns how many."""
        removed = 0
        now = time.time()
        for path in self.directory.iterdir():
            with contextlib.suppress(OSError):
                if now - path.stat().st_mtime > self.expiration:
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
        self._server = await asyncio.start_server(
            self._client, self.ip, self.port, backlog=self.backlog
        )
        sock = self._server.sockets[0]
        self.port = int(sock.getsockname()[1])
        self._cleaner = asyncio.create_task(self._clean_forever())

    async def serve_forever(self) -> None:
        """Start and serve until cancelled."""
        if self._server is None:
            await self.start()
        assert self._server is not None
        async with self._server:
            await self._server.serve_forever()

    async def stop(self) -> None:
        """Stop listening and cleaning."""
        if self._cleaner is not None:
            self._cleaner.cancel()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
