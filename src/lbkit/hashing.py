"""Key-to-integer functions shared by the balancers."""

from __future__ import annotations

import zlib

__all__ = ["as_bytes", "crc32", "memcached_crc15"]


def as_bytes(key: str | bytes) -> bytes:
    """Return ``key`` as bytes: ``str`` is encoded as UTF-8, ``bytes`` is returned as is."""
    if isinstance(key, bytes):
        return key
    if isinstance(key, str):
        return key.encode("utf-8")
    raise TypeError(f"key must be str or bytes, not {type(key).__name__}")


def crc32(data: bytes, start: int = 0) -> int:
    """CRC-32 (IEEE, as nginx's ``ngx_crc32_*``); ``start`` continues a prior value."""
    return zlib.crc32(data, start)


def memcached_crc15(data: bytes) -> int:
    """``(crc32(data) >> 16) & 0x7fff``: the Cache::Memcached step nginx's ``hash`` uses."""
    return (zlib.crc32(data) >> 16) & 0x7FFF
