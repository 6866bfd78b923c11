"""Host header validation and normalisation, as nginx's ``ngx_http_validate_host`` (sans-I/O).

nginx lowercases the host, drops a port (``example.com:8080``) or keeps a bracketed IPv6
literal (``[::1]:80`` -> ``[::1]``), strips one trailing dot, and refuses with 400 a host
that is empty, contains ``..``, ``/``, a control byte, space or DEL. Bytes >= 0x80 are kept
as they are (nginx does not decode them); lbkit returns them as latin-1 characters so the
result is a ``str`` that round-trips to the same bytes.
"""

from __future__ import annotations

__all__ = ["MAX_HOST_LENGTH", "normalize_host"]

from lbkit.errors import InvalidHostError

#: Longest Host header value accepted, in bytes (before any regex ever sees it).
MAX_HOST_LENGTH = 1024

_UPPER = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ", b"abcdefghijklmnopqrstuvwxyz")
#: Bytes nginx refuses anywhere in a Host: control bytes, space, "/" and DEL.
_BAD = bytes(range(0x21)) + b"/\x7f"


def normalize_host(raw: str | bytes) -> str:
    """nginx's ``$host`` for a Host header value, or :class:`~lbkit.InvalidHostError`.

    Surrounding spaces and tabs are dropped first, as nginx's header parser does. The
    length bound and every byte check run before any pattern matching.
    """
    if isinstance(raw, str):
        try:
            data = raw.encode("latin-1")
        except UnicodeEncodeError:
            data = raw.encode("utf-8")
    elif isinstance(raw, (bytes, bytearray, memoryview)):
        data = bytes(raw)
    else:
        raise InvalidHostError(f"invalid host {raw!r}: expected str or bytes")
    if len(data) > MAX_HOST_LENGTH:
        raise InvalidHostError(
            f"invalid host: {len(data)} bytes is longer than the {MAX_HOST_LENGTH} accepted"
        )
    data = data.strip(b" \t")
    # Every check below is a C-level bytes operation; together they are nginx's loop.
    if len(data.translate(None, _BAD)) != len(data):
        for ch in data:
            if ch == 0x2F:
                raise InvalidHostError(f"invalid host {_show(data)}: '/' is not allowed")
            if ch <= 0x20 or ch == 0x7F:
                raise InvalidHostError(
                    f"invalid host {_show(data)}: control byte, space or DEL (0x{ch:02x})"
                )
    if b".." in data:
        raise InvalidHostError(f"invalid host {_show(data)}: two dots in a row")
    if data[:1] == b"[":
        end = data.find(b"]")
        host_len = len(data) if end < 0 else end + 1
    else:
        colon = data.find(b":")
        host_len = len(data) if colon < 0 else colon
    if host_len and data.rfind(b".") == host_len - 1:
        host_len -= 1
    if host_len <= 0:
        raise InvalidHostError(f"invalid host {_show(data)}: empty host name")
    return data[:host_len].translate(_UPPER).decode("latin-1")


def _show(data: bytes) -> str:
    text = repr(data[:64])
    return text + ("..." if len(data) > 64 else "")
