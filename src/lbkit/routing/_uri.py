"""Request URIs as nginx reads them: ``ngx_http_parse_complex_uri`` (sans-I/O).

``normalize_uri("/a//b/./c/../%64?x=1#f")`` is ``("/a/b/d", "x=1")``: ``%XX`` decoded
(a decoded ``/`` or ``.`` takes part in what follows, a decoded ``%``, ``#`` or ``?`` does
not), slashes merged (``merge_slashes on``), ``.`` and ``..`` segments resolved, the query
split off at the first ``?`` and a ``#`` fragment dropped. A bad ``%`` escape, ``%00`` or a
``..`` above the root is nginx's 400: :class:`~lbkit.RequestError`. ``escape_uri`` is
``ngx_escape_uri(..., NGX_ESCAPE_URI)``, used when ``proxy_pass`` rewrites the URI.
"""

from __future__ import annotations

from lbkit.errors import RequestError

__all__ = ["escape_uri", "normalize_uri"]

_HEX = "0123456789abcdef"


def _bad(target: str, why: str) -> RequestError:
    return RequestError(f"invalid request URI {target[:80]!r}: {why} (nginx answers 400)")


def _up(out: list[str], target: str) -> None:
    """Resolve the ``/..`` that ends ``out`` (nginx: ``u -= 4``, back to a ``/``, keep it)."""
    u = len(out) - 4
    while u >= 0 and out[u] != "/":
        u -= 1
    if u < 0:
        raise _bad(target, '".." above the root')
    del out[u + 1 :]


def _args(target: str, start: int) -> str:
    return target[start:].split("#", 1)[0]


def normalize_uri(target: str) -> tuple[str, str]:
    """``(path, args)`` of a request target as nginx's ``$uri`` and ``$args``."""
    if not isinstance(target, str) or not target.startswith("/"):
        raise _bad(str(target), 'a path must start with "/"')
    out: list[str] = []
    state = "usual"
    quoted_state = "usual"
    decoded = 0
    i, n = 0, len(target)
    ch = target[0]
    i = 1
    args = ""
    while True:
        if state == "usual":
            if ch == "/":
                state = "slash"
                out.append(ch)
            elif ch == "%":
                quoted_state, state = state, "quoted"
            elif ch == "?":
                args = _args(target, i)
                break
            elif ch == "#":
                break
            else:
                out.append(ch)
        elif state == "slash":
            if ch == "/":
                pass  # merge_slashes
            elif ch == ".":
                state = "dot"
                out.append(ch)
            elif ch == "%":
                quoted_state, state = state, "quoted"
            elif ch == "?":
                args = _args(target, i)
                break
            elif ch == "#":
                break
            else:
                state = "usual"
                out.append(ch)
        elif state == "dot":
            if ch == "/":
                state = "slash"
                out.pop()
            elif ch == ".":
                state = "dot_dot"
                out.append(ch)
            elif ch == "%":
                quoted_state, state = state, "quoted"
            elif ch in "?#":
                out.pop()
                if ch == "?":
                    args = _args(target, i)
                break
            else:
                state = "usual"
                out.append(ch)
        elif state == "dot_dot":
            if ch in "/?#":
                _up(out, target)
                if ch == "?":
                    args = _args(target, i)
                if ch != "/":
                    break
                state = "slash"
            elif ch == "%":
                quoted_state, state = state, "quoted"
            else:
                state = "usual"
                out.append(ch)
        elif state == "quoted":
            low = ch.lower()
            if low not in _HEX or not ch.isascii():
                raise _bad(target, f"bad %-escape before {ch!r}")
            decoded = _HEX.index(low)
            state = "quoted_second"
        else:  # quoted_second
            low = ch.lower()
            if low not in _HEX or not ch.isascii():
                raise _bad(target, f"bad %-escape before {ch!r}")
            value = chr(decoded * 16 + _HEX.index(low))
            if value == "\x00":
                raise _bad(target, "%00")
            if value in "%#?":
                state = "usual"
                out.append(value)
            else:
                state = quoted_state
                ch = value  # the decoded character goes through the state machine
                continue
        if i >= n:
            ch = ""
            break
        ch = target[i]
        i += 1
    if ch == "" and state in ("quoted", "quoted_second"):
        raise _bad(target, "a %-escape cut short")
    if ch == "":
        if state == "dot":
            out.pop()
        elif state == "dot_dot":
            _up(out, target)
    return "".join(out), args


_UNRESERVED_IN_URI = frozenset(
    chr(c) for c in range(0x21, 0x7F) if chr(c) not in ' "#%?'
) | frozenset('"')


def escape_uri(path: str) -> str:
    """``ngx_escape_uri`` in ``NGX_ESCAPE_URI`` mode: space, ``#``, ``%``, ``?``, control
    bytes and bytes >= 0x7F become ``%XX`` (the path holds latin-1 characters)."""
    out = []
    for ch in path:
        if ch in _UNRESERVED_IN_URI:
            out.append(ch)
        else:
            out.extend(f"%{b:02X}" for b in ch.encode("latin-1", "replace"))
    return "".join(out)
