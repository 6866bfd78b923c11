"""sharedance clients as session stores: ``SharedanceStore`` and ``AsyncSharedanceStore``.

One connection per operation, as the PHP client does. The protocol has no per-key TTL (the
server expires entries by age), no touch and no compare-and-set: those raise
:class:`~lbkit.UnsupportedOperation`. An empty value would read back as missing, so it is
refused. Requests and replies are encoded and read by :mod:`lbkit.sharedance.protocol`;
what each operation sends and concludes is written once, in :class:`_SharedanceCommands`.
``timeout`` bounds a whole call (connect, send, every byte of the reply), in both twins.
"""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

from lbkit.errors import ProtocolError, StoreError, StoreUnavailable
from lbkit.sessions._flow import Call, Flow, arun, run
from lbkit.sessions.base import DEFAULT_MAX_VALUE, Version, check_value, unsupported, validate_key
from lbkit.sharedance.protocol import (
    DEFAULT_PORT,
    ReplyReader,
    acknowledged,
    encode_delete,
    encode_fetch,
    encode_store,
    fetched,
)

__all__ = ["AsyncSharedanceStore", "SharedanceStore"]

_NAME = "sharedance"
_SHORT_REPLY = 16


class _SharedanceCommands:
    """What each operation sends and what its reply means, as flows over a transport."""

    def __init__(self, transport: Any, address: str, max_value: int) -> None:
        self.transport = transport
        self.address = address
        self.max_value = max_value

    def _exchange(self, request: bytes, limit: int) -> Flow[bytes]:
        try:
            reply: bytes = yield Call(self.transport, "exchange", (request, limit))
        except ProtocolError as exc:
            raise StoreError(f"{self.address} sent a bad reply: {exc}") from exc
        except (OSError, TimeoutError, asyncio.TimeoutError) as exc:
            raise StoreUnavailable(
                f"{self.address} unavailable: {exc!r}", address=self.address
            ) from exc
        return reply

    def get(self, key: str) -> Flow[bytes | None]:
        request = encode_fetch(validate_key(key).encode())
        return fetched((yield from self._exchange(request, self.max_value)))

    def set(
        self, key: str, value: bytes, ttl: float | None, if_version: Version | None
    ) -> Flow[None]:
        validate_key(key)
        data = check_value(value, self.max_value)
        if ttl is not None:
            raise unsupported(
                _NAME, "set a per-key TTL", "the server expires entries by age (its --expiration)"
            )
        if if_version is not None:
            raise unsupported(_NAME, "do versioned writes", "the protocol has no compare-and-set")
        if not data:
            raise StoreError(
                "sharedance cannot store an empty value: it would read back as missing"
            )
        reply = yield from self._exchange(encode_store(key.encode(), data), _SHORT_REPLY)
        if not acknowledged(reply):
            raise StoreError(f"{self.address} did not acknowledge the store of {key!r}")

    def delete(self, key: str) -> Flow[bool]:
        request = encode_delete(validate_key(key).encode())
        return acknowledged((yield from self._exchange(request, _SHORT_REPLY)))


class _SocketTransport:
    """One blocking connection per exchange; ``timeout`` bounds the whole exchange."""

    def __init__(self, host: str, port: int, timeout: float) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout

    def exchange(self, request: bytes, limit: int) -> bytes:
        deadline = time.monotonic() + self.timeout

        def left() -> float:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no complete reply within {self.timeout} s")
            return remaining

        with socket.create_connection((self.host, self.port), timeout=left()) as sock:
            sock.settimeout(left())
            sock.sendall(request)  # one timeout for all of sendall (Python >= 3.5)
            sock.shutdown(socket.SHUT_WR)
            reader = ReplyReader(limit)
            while True:
                sock.settimeout(left())
                chunk = sock.recv(min(65536, reader.wanted))
                if not chunk:
                    return reader.reply()
                reader.feed(chunk)


class _StreamTransport:
    """The asyncio twin of :class:`_SocketTransport`."""

    def __init__(self, host: str, port: int, timeout: float) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout

    async def exchange(self, request: bytes, limit: int) -> bytes:
        async def talk() -> bytes:
            reader, writer = await asyncio.open_connection(self.host, self.port)
            try:
                writer.write(request)
                await writer.drain()
                writer.write_eof()
                reply = ReplyReader(limit)
                while chunk := await reader.read(min(65536, reply.wanted)):
                    reply.feed(chunk)
                return reply.reply()
            finally:
                writer.close()

        return await asyncio.wait_for(talk(), self.timeout)


class _SharedanceStoreBase:
    """The constructor both clients share; ``_transport`` is the blocking or asyncio one."""

    capabilities: frozenset[str] = frozenset()
    _transport: type[_SocketTransport] | type[_StreamTransport]

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        timeout: float = 10.0,
        max_value: int = DEFAULT_MAX_VALUE,
    ) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self.max_value = max_value
        self.address = f"sharedance://{host}:{port}"
        transport = self._transport(host, port, timeout)
        self._commands = _SharedanceCommands(transport, self.address, max_value)


class SharedanceStore(_SharedanceStoreBase):
    """A client of a sharedance server (the C daemon or ``python -m lbkit.sharedance``).

    Thread-safe: every call opens its own connection.
    """

    _transport = _SocketTransport

    def get(self, key: str) -> bytes | None:
        """The value of ``key``, or None (sharedance cannot tell missing from empty)."""
        return run(self._commands.get(key))

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
        run(self._commands.set(key, value, ttl, if_version))

    def delete(self, key: str) -> bool:
        """Remove ``key``; False if it did not exist."""
        return run(self._commands.delete(key))

    def touch(self, key: str, ttl: float) -> bool:
        """Not available: the server expires entries by age."""
        raise unsupported(_NAME, "touch", "the server expires entries by age (--expiration)")

    def close(self) -> None:
        """Nothing to release: one connection per operation."""


class AsyncSharedanceStore(_SharedanceStoreBase):
    """The asyncio twin of :class:`SharedanceStore`."""

    _transport = _StreamTransport

    async def get(self, key: str) -> bytes | None:
        """See :meth:`SharedanceStore.get`."""
        return await arun(self._commands.get(key))

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
        await arun(self._commands.set(key, value, ttl, if_version))

    async def delete(self, key: str) -> bool:
        """See :meth:`SharedanceStore.delete`."""
        return await arun(self._commands.delete(key))

    async def touch(self, key: str, ttl: float) -> bool:
        """Not available: the server expires entries by age."""
        raise unsupported(_NAME, "touch", "the server expires entries by age (--expiration)")

    async def close(self) -> None:
        """Nothing to release."""
