"""sharedance clients as session stores: ``SharedanceStore`` and ``AsyncSharedanceStore``.

One connection per operation, as the PHP client does. The protocol has no per-key TTL (the
server expires entries by age), no touch and no compare-and-set: those raise
:class:`~lbkit.UnsupportedOperation`. An empty value would read back as missing, so it is
refused.
"""

from __future__ import annotations

import asyncio
import socket

from lbkit.errors import StoreError, StoreUnavailable
from lbkit.sessions.base import DEFAULT_MAX_VALUE, Version, check_value, unsupported, validate_key
from lbkit.sharedance.protocol import OK, encode_delete, encode_fetch, encode_store

__all__ = ["AsyncSharedanceStore", "SharedanceStore"]

_NAME = "sharedance"


def _refuse_options(ttl: float | None, if_version: Version | None, value: bytes) -> None:
    if ttl is not None:
        raise unsupported(
            _NAME, "set a per-key TTL", "the server expires entries by age (its --expiration)"
        )
    if if_version is not None:
        raise unsupported(_NAME, "do versioned writes", "the protocol has no compare-and-set")
    if not value:
        raise StoreError("sharedance cannot store an empty value: it would read back as missing")


class SharedanceStore:
    """A client of a sharedance server (the C daemon or ``python -m lbkit.sharedance``)."""

    capabilities: frozenset[str] = frozenset()

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 1042,
        timeout: float = 10.0,
        max_value: int = DEFAULT_MAX_VALUE,
    ) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self.max_value = max_value

    @property
    def address(self) -> str:
        """``sharedance://host:port``."""
        return f"sharedance://{self.host}:{self.port}"

    def _exchange(self, request: bytes, limit: int) -> bytes:
        try:
            with socket.create_connection((self.host, self.port), timeout=self.timeout) as s:
                s.sendall(request)
                s.shutdown(socket.SHUT_WR)
                chunks = []
                total = 0
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    total += len(chunk)
                    if total > limit:
                        raise StoreError(f"{self.address} sent more than {limit} bytes")
                    chunks.append(chunk)
                return b"".join(chunks)
        except (OSError, TimeoutError) as exc:
            raise StoreUnavailable(
                f"{self.address} unavailable: {exc}", address=self.address
            ) from exc

    def get(self, key: str) -> bytes | None:
        """The value of ``key``, or None (sharedance cannot tell missing from empty)."""
        data = self._exchange(encode_fetch(validate_key(key).encode()), self.max_value)
        return data or None

    def get_versioned(self, key: str) -> tuple[bytes, Version] | None:
        """Not available: sharedance has no versions."""
        raise unsupported(_NAME, "do versioned reads", "the protocol has no versions")

    def set(
        self,
        key: str,
        value: bytes,
        ttl: float | None = None,
        *,
        if_version: Version | None = None,
    ) -> None:
        """Store ``value`` (no TTL, no versions: see the module notes)."""
        validate_key(key)
        data = check_value(value, self.max_value)
        _refuse_options(ttl, if_version, data)
        reply = self._exchange(encode_store(key.encode(), data), 16)
        if reply != OK:
            raise StoreError(f"{self.address} did not acknowledge the store of {key!r}")

    def delete(self, key: str) -> bool:
        """Remove ``key``; False if it did not exist."""
        return self._exchange(encode_delete(validate_key(key).encode()), 16) == OK

    def touch(self, key: str, ttl: float) -> bool:
        """Not available: the server expires entries by age."""
        raise unsupported(_NAME, "touch", "the server expires entries by age (--expiration)")

    def close(self) -> None:
        """Nothing to release: one connection per operation."""


class AsyncSharedanceStore:
    """The asyncio twin of :class:`SharedanceStore`."""

    capabilities: frozenset[str] = frozenset()

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 1042,
        timeout: float = 10.0,
        max_value: int = DEFAULT_MAX_VALUE,
    ) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self.max_value = max_value

    @property
    def address(self) -> str:
        """``sharedance://host:port``."""
        return f"sharedance://{self.host}:{self.port}"

    async def _exchange(self, request: bytes, limit: int) -> bytes:
        async def run() -> bytes:
            reader, writer = await asyncio.open_connection(self.host, self.port)
            try:
                writer.write(request)
                await writer.drain()
                writer.write_eof()
                data = await reader.read(limit + 1)
                buf = bytearray(data)
                while data:
                    if len(buf) > limit:
                        raise StoreError(f"{self.address} sent more than {limit} bytes")
                    data = await reader.read(limit + 1 - len(buf))
                    buf += data
                return bytes(buf)
            finally:
                writer.close()

        try:
            return await asyncio.wait_for(run(), self.timeout)
        except (OSError, asyncio.TimeoutError) as exc:
            raise StoreUnavailable(
                f"{self.address} unavailable: {exc!r}", address=self.address
            ) from exc

    async def get(self, key: str) -> bytes | None:
        """See :meth:`SharedanceStore.get`."""
        data = await self._exchange(encode_fetch(validate_key(key).encode()), self.max_value)
        return data or None

    async def get_versioned(self, key: str) -> tuple[bytes, Version] | None:
        """Not available: sharedance has no versions."""
        raise unsupported(_NAME, "do versioned reads", "the protocol has no versions")

    async def set(
        self,
        key: str,
        value: bytes,
        ttl: float | None = None,
        *,
        if_version: Version | None = None,
    ) -> None:
        """See :meth:`SharedanceStore.set`."""
        validate_key(key)
        data = check_value(value, self.max_value)
        _refuse_options(ttl, if_version, data)
        if await self._exchange(encode_store(key.encode(), data), 16) != OK:
            raise StoreError(f"{self.address} did not acknowledge the store of {key!r}")

    async def delete(self, key: str) -> bool:
        """See :meth:`SharedanceStore.delete`."""
        return await self._exchange(encode_delete(validate_key(key).encode()), 16) == OK

    async def touch(self, key: str, ttl: float) -> bool:
        """Not available: the server expires entries by age."""
        raise unsupported(_NAME, "touch", "the server expires entries by age (--expiration)")

    async def close(self) -> None:
        """Nothing to release."""
