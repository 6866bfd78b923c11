"""Time values (``10``, ``30s``, ``1m 30s``, ``500ms``) as nginx's ``ngx_parse_time`` reads them.

The model parses server parameters (``fail_timeout=30s``) with it; :mod:`lbkit.nginx`
re-exports it for directives.
"""

from __future__ import annotations

__all__ = ["parse_duration"]

_MAX = 2**63 - 1
# unit -> (order, seconds); order enforces nginx's "largest unit first, each once" rule
_UNITS = {
    "y": (1, 365 * 24 * 3600),
    "M": (2, 30 * 24 * 3600),
    "w": (3, 7 * 24 * 3600),
    "d": (4, 24 * 3600),
    "h": (5, 3600),
    "m": (6, 60),
    "s": (7, 1),
}


def parse_duration(text: str, *, seconds: bool = True) -> int | None:
    """Parse an nginx time value; returns seconds (or milliseconds when ``seconds=False``).

    Returns ``None`` for text nginx rejects. A bare number is seconds (``seconds=True``) or
    milliseconds (``seconds=False``); with ``seconds=True`` the ``ms`` unit is an error.
    """
    total = 0
    value = 0
    valid = False
    step = 0 if seconds else 2
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if "0" <= ch <= "9":
            value = value * 10 + (ord(ch) - 48)
            if value > _MAX:
                return None
            valid = True
            i += 1
            continue
        i += 1
        if ch == "m" and i < n and text[i] == "s":
            if seconds or step >= 8:
                return None
            i += 1
            step, scale = 8, 1
        elif ch in _UNITS:
            order, scale = _UNITS[ch]
            if step >= order:
                return None
            step = order
            if not seconds:
                scale *= 1000
        elif ch == " ":
            if step >= 7:
                return None
            step = 9
            scale = 1 if seconds else 1000
        else:
            return None
        total += value * scale
        if total > _MAX:
            return None
        value = 0
        while i < n and text[i] == " ":
            i += 1
    if not valid:
        return None
    total += value if seconds else value * 1000
    return total if total <= _MAX else None
