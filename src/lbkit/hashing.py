"""Every key-to-integer function lbkit uses, and the key bytes nginx hashes.

- ``crc32`` / ``crc32_key`` / ``memcached_crc15``: nginx's ``hash`` and ``hash consistent``.
- ``md5_key``: libketama's continuum position of a key.
- ``mmh3_32`` / ``mmh3_32_le`` / ``mmh3_64``: murmur3, for the ``fast`` ketama flavour,
  Maglev, rendezvous and jump hash.
- ``client_address_bytes`` / ``ip_hash_step``: what ``ip_hash`` hashes for a client.
"""

from __future__ import annotations

import hashlib
import ipaddress
import operator
import socket
import struct
import zlib
from collections.abc import Callable
from functools import partial

import mmh3

from lbkit.errors import InvalidAddressError, KeyTypeError

__all__ = [
    "IP_HASH_MODULUS",
    "MAX_ADDRESS_TEXT",
    "as_bytes",
    "client_address_bytes",
    "crc32",
    "crc32_key",
    "ip_hash_step",
    "md5_digest",
    "md5_key",
    "memcached_crc15",
    "mmh3_32",
    "mmh3_32_le",
    "mmh3_64",
    "mmh3_hash64",
]

#: Longest client address text accepted (an IPv6 address with a scope id fits easily).
MAX_ADDRESS_TEXT = 128

_LE_U32 = struct.Struct("<I")


def as_bytes(key: str | bytes) -> bytes:
    """Return ``key`` as bytes: ``str`` is encoded as UTF-8, ``bytes`` is returned as is.

    Raises :class:`~lbkit.errors.KeyTypeError` for anything else (and for ``str`` holding
    lone surrogates, which have no UTF-8 form).
    """
    if isinstance(key, bytes):
        return key
    if isinstance(key, str):
        try:
            return key.encode("utf-8")
        except UnicodeEncodeError:
            raise KeyTypeError(
                f"key {key[:64]!r} has no UTF-8 form (lone surrogate): pass valid text or bytes"
            ) from None
    raise KeyTypeError(f"key must be str or bytes, not {type(key).__name__}")


#: CRC-32 (IEEE, as nginx's ``ngx_crc32_*``): ``crc32(data, start=0)``, where ``start``
#: continues a prior value. The C function itself (nginx's ring chains one call per point).
crc32: Callable[..., int] = zlib.crc32


def crc32_key(key: str | bytes) -> int:
    """CRC-32 of a key's bytes: its position on nginx's consistent-hash ring."""
    return zlib.crc32(as_bytes(key))


def memcached_crc15(data: bytes) -> int:
    """``(crc32(data) >> 16) & 0x7fff``: the Cache::Memcached step nginx's ``hash`` uses."""
    return (zlib.crc32(data) >> 16) & 0x7FFF


try:
    # CPython's own md5 (HACL*): for short keys about twice as fast as OpenSSL's, whose
    # per-call setup dominates. Same digest; hashlib's is the fallback where it is absent.
    from _md5 import md5 as _md5  # type: ignore[import-not-found,unused-ignore]
except ImportError:  # pragma: no cover - CPython built without its own md5
    _md5 = partial(hashlib.md5, usedforsecurity=False)

_first_u32: Callable[[bytes], tuple[int, ...]] = _LE_U32.unpack_from


def md5_digest(data: bytes) -> bytes:
    """The 16-byte md5 digest of ``data`` (libketama's point and key hash)."""
    return bytes(_md5(data).digest())


def md5_key(key: str | bytes) -> int:
    """libketama's key position: the first 4 bytes of md5, little-endian."""
    if key.__class__ is str:
        try:
            key = key.encode()
        except UnicodeEncodeError:
            as_bytes(key)  # raises KeyTypeError
    elif key.__class__ is not bytes:
        key = as_bytes(key)
    return _first_u32(_md5(key).digest())[0]


#: murmur3 32-bit, signed: ``mmh3_32(key, seed=0)`` (the ``fast`` ketama flavour's point and
#: key hash, Maglev's key hash). The C function itself, so a ring lookup pays no extra call.
mmh3_32: Callable[..., int] = mmh3.hash


def _mmh3_32_packed(data: bytes) -> bytes:
    return _LE_I32.pack(mmh3.hash(data))


_LE_I32 = struct.Struct("<i")
_mmh3_digest: Callable[[bytes], bytes] | None = getattr(mmh3, "mmh3_32_digest", None)
#: ``mmh3_32(data)`` as 4 little-endian bytes (ring points written straight into a buffer):
#: mmh3's own C function where it has one (mmh3 >= 5) and gives these bytes.
mmh3_32_le: Callable[[bytes], bytes] = (
    _mmh3_digest
    if _mmh3_digest is not None and _mmh3_digest(b"lbkit") == _mmh3_32_packed(b"lbkit")
    else _mmh3_32_packed
)


#: murmur3 x64 128-bit as two 64-bit halves: ``mmh3_hash64(key, seed, signed=False)[0]`` is
#: the key hash of rendezvous and jump hash (the C function itself, for the per-node loop).
mmh3_hash64: Callable[..., tuple[int, int]] = mmh3.hash64


def mmh3_64(key: str | bytes, seed: int = 0) -> int:
    """The first 64 unsigned bits of murmur3's 128-bit x64 hash (rendezvous, jump hash)."""
    return int(mmh3.hash64(key, seed, signed=False)[0])


_AF_INET = socket.AF_INET
_inet_pton = socket.inet_pton


def client_address_bytes(client_addr: str | bytes) -> bytes:
    """The bytes nginx's ``ip_hash`` hashes: 3 octets of IPv4, all 16 bytes of IPv6.

    Raises :class:`~lbkit.InvalidAddressError` for anything that is not an IP address.
    """
    if client_addr.__class__ is str:  # the common case first: plain text
        text: str = client_addr
    elif isinstance(client_addr, bytes):
        try:
            text = client_addr.decode("ascii")
        except UnicodeDecodeError:
            raise InvalidAddressError(
                f"invalid client address {client_addr[:64]!r}: expected IPv4 or IPv6 text"
            ) from None
    elif isinstance(client_addr, str):
        text = client_addr
    else:
        raise InvalidAddressError(
            f"invalid client address {client_addr!r}: expected IPv4 or IPv6 text (str or bytes)"
        )
    if len(text) > MAX_ADDRESS_TEXT:
        raise InvalidAddressError(
            f"invalid client address {text[:64]!r}...: longer than {MAX_ADDRESS_TEXT} characters"
        )
    # fast path: the C parser for plain dotted-quad and IPv6 text
    try:
        return _inet_pton(_AF_INET, text)[:3]
    except (OSError, ValueError):  # ValueError: embedded NUL or lone surrogate
        pass
    if ":" in text and "%" not in text:
        try:
            return socket.inet_pton(socket.AF_INET6, text)
        except (OSError, ValueError):
            pass
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise InvalidAddressError(
            f"invalid client address {text!r}: expected IPv4 (192.0.2.1) or IPv6 (2001:db8::1) text"
        ) from None
    if address.version == 4:
        return address.packed[:3]
    return address.packed


#: nginx's ip_hash works modulo this prime: every hash it makes is below it.
IP_HASH_MODULUS = 6271
#: ``113**n % 6271`` for IPv6's 16 bytes, and each byte's multiplier ``113**(15-i) % 6271``.
_IP_HASH_SHIFT_16 = 113**16 % IP_HASH_MODULUS
_IP_HASH_WEIGHTS_16 = tuple(113**i % IP_HASH_MODULUS for i in range(15, -1, -1))


def ip_hash_step(hash_value: int, addr: bytes) -> int:
    """One round of nginx's ip_hash: ``hash = (hash * 113 + byte) % 6271`` over ``addr``.

    Taken modulo 6271 once at the end, the loop is one sum, ``hash * 113**n +
    sum(byte_i * 113**(n-1-i))``: computed so for IPv4's 3 bytes and IPv6's 16.
    """
    n = len(addr)
    if n == 3:
        # 113**3 % 6271 == 567, 113**2 == 12769 (literals: no name lookups per pick)
        return (hash_value * 567 + addr[0] * 12769 + addr[1] * 113 + addr[2]) % 6271
    if n == 16:
        addr_sum: int = sum(map(operator.mul, addr, _IP_HASH_WEIGHTS_16))
        return (hash_value * _IP_HASH_SHIFT_16 + addr_sum) % IP_HASH_MODULUS
    for byte in addr:
        hash_value = (hash_value * 113 + byte) % IP_HASH_MODULUS
    return hash_value
