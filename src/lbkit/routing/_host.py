"""Host header validation and normalisation, as nginx's ``ngx_http_validate_host`` (sans-I/O).

nginx skips the spaces (SP only, not HTAB) around a header value, lowercases the host,
drops a port (``example.com:8080``) or keeps a bracketed IPv6 literal (``[::1]:80`` ->
``[::1]``), strips one trailing dot, and refuses with 400 a host that is empty, contains
``..``, ``/``, a control byte, space or DEL. Bytes >= 0x80 are kept as they are (nginx
does not decode them); lbkit returns them as latin-1 characters so the result is a ``str``
that round-trips to the same bytes.
"""

from __future__ import annotations

__all__ = [
    "CLEAN_HOST",
    "CLEAN_LABEL_CHARS",
    "FAST_HOST_LENGTH",
    "LINE_OVERHEAD",
    "LOWERCASE_CLEAN_HOST",
    "MAX_HEADER_LINE",
    "MAX_HOST_LENGTH",
    "ascii_lower",
    "is_clean_host",
    "is_clean_label",
    "normalize_host",
]

import re

from lbkit.errors import InvalidHostError

#: nginx's bound on one header line, CRLF included (``large_client_header_buffers 4 8k``).
MAX_HEADER_LINE = 8192
#: The header line around the value: ``Host: `` before it, CRLF after it.
LINE_OVERHEAD = len(b"Host: \r\n")
#: Longest Host header value accepted by default, in bytes (before any regex sees it).
MAX_HOST_LENGTH = MAX_HEADER_LINE - LINE_OVERHEAD

_UPPER = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ", b"abcdefghijklmnopqrstuvwxyz")
#: Bytes nginx refuses anywhere in a Host: control bytes, space, "/" and DEL.
_BAD = bytes(range(0x21)) + b"/\x7f"
#: A host that nginx keeps as it is, but for ASCII case: dot-separated labels of letters,
#: digits, "-" and "_" (no space, port, bracket, empty label or trailing dot to handle).
CLEAN_HOST = re.compile(r"[A-Za-z0-9_-]++(?:\.[A-Za-z0-9_-]++)*+").fullmatch
#: The same, already lowercase: nginx's ``$host`` is the header value itself.
LOWERCASE_CLEAN_HOST = re.compile(r"[a-z0-9_-]++(?:\.[a-z0-9_-]++)*+").fullmatch
#: What a label of a lowercase clean host is made of: ``label.strip(CLEAN_LABEL_CHARS)`` is
#: empty exactly when every character is one of them (a cheaper test than a regex).
CLEAN_LABEL_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789-_"
#: Longest host the fast path looks at (a DNS name has at most 253 characters); a longer
#: one takes the long way, whose checks are single passes in C.
FAST_HOST_LENGTH = 255


def normalize_host(raw: str | bytes, *, max_line: int = MAX_HEADER_LINE) -> str:
    """nginx's ``$host`` for a Host header value, or :class:`~lbkit.InvalidHostError`.

    Surrounding spaces (not tabs) are dropped first, as nginx's header parser does. A
    ``str`` is taken as latin-1 (WSGI's convention), else as UTF-8 (lone surrogates as the
    bytes ``surrogateescape`` gives). The value is refused when its header line
    (``Host: `` + value + CRLF) is longer than ``max_line`` bytes, as nginx answers 400 for
    a header line that does not fit ``large_client_header_buffers``. The length bound and
    every byte check run before any pattern matching.
    """
    if (
        type(raw) is str
        and len(raw) <= FAST_HOST_LENGTH
        and len(raw) + LINE_OVERHEAD <= max_line
        and CLEAN_HOST(raw)
    ):
        return raw.lower()  # the common case; ASCII only, so str.lower is nginx's ngx_strlow
    if isinstance(raw, str):
        try:
            data = raw.encode("latin-1")
        except UnicodeEncodeError:
            try:
                data = raw.encode("utf-8", "surrogateescape")
            except UnicodeEncodeError:
                raise InvalidHostError(
                    f"invalid host {raw[:64]!r}: a str with lone surrogates is not bytes nginx "
                    "could receive"
                ) from None
    elif isinstance(raw, (bytes, bytearray, memoryview)):
        data = bytes(raw)
    else:
        raise InvalidHostError(f"invalid host {raw!r:.80}: expected str or bytes")
    if len(data) + LINE_OVERHEAD > max_line:
        raise InvalidHostError(
            f"invalid host: a Host line of {len(data) + LINE_OVERHEAD} bytes is longer than "
            f"the {max_line} accepted (large_client_header_buffers)"
        )
    data = data.strip(b" ")
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


def is_clean_host(host: str) -> bool:
    """Whether ``normalize_host(host)`` is ``host`` itself by the fast path's rule."""
    return LOWERCASE_CLEAN_HOST(host) is not None


def is_clean_label(label: str) -> bool:
    """Whether ``label`` is one label of a lowercase clean host: ``[a-z0-9_-]+``.

    A host made of clean labels joined by single dots is one :func:`is_clean_host` accepts.
    """
    return label != "" and not label.strip(CLEAN_LABEL_CHARS)


_UPPER_TEXT = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def ascii_lower(text: str) -> str:
    """Lowercase ASCII letters only, as nginx's ``ngx_strlow`` (``Ã`` stays ``Ã``)."""
    return text.translate(_UPPER_TEXT)


def _show(data: bytes) -> str:
    text = repr(data[:64])
    return text + ("..." if len(data) > 64 else "")
