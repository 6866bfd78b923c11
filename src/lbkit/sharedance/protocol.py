"""The sharedance wire protocol as a sans-I/O codec (no sockets here).

One command per TCP connection; lengths are unsigned 32-bit big-endian:

- store: ``S`` keylen datalen key data -> ``OK\\n``, then the server closes
- fetch: ``F`` keylen key -> the stored bytes, then the server closes
- delete: ``D`` keylen key -> ``OK\\n``, then the server closes

A failure is a close without a reply (an empty fetch reads as "missing"). Keys are
non-empty and made of bytes 32..126 other than ``.`` and ``/``. The server side reads
requests with :class:`RequestParser`; the client side reads replies with
:class:`ReplyReader` and interprets them with :func:`fetched` and :func:`acknowledged`.
"""

from __future__ import annotations

import struct

import attrs

from lbkit.errors import ProtocolError

__all__ = [
    "DEFAULT_PORT",
    "OK",
    "ProtocolError",
    "ReplyReader",
    "Request",
    "RequestParser",
    "acknowledged",
    "encode_delete",
    "encode_fetch",
    "encode_store",
    "fetched",
    "is_valid_key",
]

DEFAULT_PORT = 1042
OK = b"OK\n"
_U32 = struct.Struct(">I")
_U32X2 = struct.Struct(">II")
_MAX_U32 = 0xFFFFFFFF


def is_valid_key(key: bytes) -> bool:
    """Whether sharedance accepts ``key``: non-empty, bytes 32..126, no ``.`` or ``/``."""
    return bool(key) and all(32 <= b <= 126 and b not in (0x2E, 0x2F) for b in key)


def _check_key(key: bytes) -> bytes:
    if not isinstance(key, bytes) or not is_valid_key(key):
        raise ProtocolError(
            f"invalid sharedance key {key!r}: expected bytes 32..126 other than '.' and '/'"
        )
    return key


def encode_store(key: bytes, data: bytes) -> bytes:
    """The bytes of a store request."""
    _check_key(key)
    if len(data) > _MAX_U32:
        raise ProtocolError(f"value of {len(data)} bytes does not fit a 32-bit length")
    return b"S" + _U32X2.pack(len(key), len(data)) + key + data


def encode_fetch(key: bytes) -> bytes:
    """The bytes of a fetch request."""
    return b"F" + _U32.pack(len(_check_key(key))) + key


def encode_delete(key: bytes) -> bytes:
    """The bytes of a delete request."""
    return b"D" + _U32.pack(len(_check_key(key))) + key


@attrs.frozen(slots=True)
class Request:
    """A complete request: ``command`` is ``"store"``, ``"fetch"`` or ``"delete"``."""

    command: str
    key: bytes
    data: bytes = b""


class RequestParser:
    """Server side: feed bytes as they arrive; ``feed`` returns the request once complete.

    Raises :class:`ProtocolError` for an unknown command, a bad key, a request larger than
    ``max_size`` or bytes beyond the announced length.
    """

    def __init__(self, max_size: int = 16 * 1024 * 1024) -> None:
        self.max_size = max_size
        self._buf = bytearray()
        self._need: int | None = None
        self._done = False

    def feed(self, data: bytes) -> Request | None:
        """Add bytes; the request when it is complete, else None."""
        if self._done:
            if data:
                raise ProtocolError("bytes after a complete request")
            return None
        self._buf += data
        if len(self._buf) > self.max_size:
            raise ProtocolError(f"request larger than {self.max_size} bytes")
        if self._need is None:
            if not self._buf:
                return None
            cmd = bytes(self._buf[0:1])
            if cmd == b"S":
                if len(self._buf) < 9:
                    return None
                keylen, datalen = _U32X2.unpack_from(self._buf, 1)
                self._need = 9 + keylen + datalen
            elif cmd in (b"F", b"D"):
                if len(self._buf) < 5:
                    return None
                (keylen,) = _U32.unpack_from(self._buf, 1)
                self._need = 5 + keylen
            else:
                raise ProtocolError(f"unknown command byte {bytes(cmd)!r}")
            if self._need > self.max_size:
                raise ProtocolError(f"request of {self._need} bytes exceeds {self.max_size}")
        if len(self._buf) < self._need:
            return None
        if len(self._buf) > self._need:
            raise ProtocolError("bytes beyond the announced length")
        self._done = True
        cmd = bytes(self._buf[0:1])
        if cmd == b"S":
            keylen, _ = _U32X2.unpack_from(self._buf, 1)
            key = bytes(self._buf[9 : 9 + keylen])
            data = bytes(self._buf[9 + keylen :])
            return Request("store", _check_key(key), data)
        key = bytes(self._buf[5:])
        return Request("fetch" if cmd == b"F" else "delete", _check_key(key))


class ReplyReader:
    """Client side: feed the bytes of a reply until the server closes; at most ``limit``.

    Raises :class:`ProtocolError` as soon as the reply exceeds ``limit`` bytes, so a
    misbehaving server cannot make the client buffer without bound.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._chunks: list[bytes] = []
        self._size = 0

    @property
    def wanted(self) -> int:
        """How many more bytes may still arrive (ask for one more to detect an overflow)."""
        return self.limit - self._size + 1

    def feed(self, chunk: bytes) -> None:
        """Add bytes received."""
        self._size += len(chunk)
        if self._size > self.limit:
            raise ProtocolError(f"reply longer than {self.limit} bytes")
        self._chunks.append(chunk)

    def reply(self) -> bytes:
        """Everything received (call once the server closed the connection)."""
        return b"".join(self._chunks)


def fetched(reply: bytes) -> bytes | None:
    """A fetch reply as a value: None when empty (missing, expired or failed)."""
    return reply or None


def acknowledged(reply: bytes) -> bool:
    """Whether a store or delete reply is the server's ``OK``."""
    return reply == OK
