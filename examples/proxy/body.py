"""The client's request body: kept for a retry when small, streamed when large.

nginx reads the whole body before it connects (``proxy_request_buffering on``), spilling
to a temporary file; this proxy keeps at most ``client_body_buffer_size`` bytes in memory.
A body that fits is sent again on a retry; a larger one is streamed from the client to the
first peer that takes it and, as with ``proxy_request_buffering off``, never sent twice.
Memory per request is bounded by the buffer size whatever the body's length.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any

__all__ = ["ClientDisconnected", "RequestBody"]

Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]


class ClientDisconnected(Exception):
    """The client went away before its request body was read."""


class RequestBody:
    """The body of one ASGI request; :meth:`prefetch` first, then :meth:`stream` per try."""

    def __init__(self, receive: Receive, limit: int, *, keep: bool = True) -> None:
        self._receive = receive
        self._limit = limit
        self._keep = keep
        self._chunks: list[bytes] = []
        self._size = 0
        self.complete = False
        self._consumed = False

    async def _next(self) -> bytes:
        message = await self._receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnected("client closed the connection while sending its body")
        if not message.get("more_body", False):
            self.complete = True
        return bytes(message.get("body", b""))

    async def prefetch(self) -> None:
        """Read up to the limit: a body that fits is then :attr:`replayable`."""
        while not self.complete and self._size <= self._limit:
            chunk = await self._next()
            if chunk:
                self._chunks.append(chunk)
                self._size += len(chunk)

    @property
    def replayable(self) -> bool:
        """Whether the body can be sent again (kept whole in memory)."""
        return self._keep and self.complete and self._size <= self._limit

    @property
    def empty(self) -> bool:
        """A complete body of no bytes (nothing to send)."""
        return self.complete and self._size == 0

    @property
    def length(self) -> int | None:
        """The body's length when it is known."""
        return self._size if self.complete else None

    async def stream(self) -> AsyncIterator[bytes]:
        """The body's bytes for one try (a streamed body only once)."""
        if self.replayable:
            for chunk in self._chunks:
                yield chunk
            return
        if self._consumed:
            raise RuntimeError("a streamed request body cannot be sent twice")
        self._consumed = True
        chunks, self._chunks = self._chunks, []
        for chunk in chunks:
            yield chunk
        while not self.complete:
            chunk = await self._next()
            if chunk:
                yield chunk
