"""Validation of the sticky hint a request carries: a server id (see
:class:`~lbkit.balancers.Sticky`)."""

from __future__ import annotations

from lbkit.errors import RequestError

__all__ = ["MAX_STICKY_HINT", "check_sticky_hint"]

#: Longest sticky hint looked at: a server id is at most 32 bytes (a route or an MD5 hex).
MAX_STICKY_HINT = 4096


def check_sticky_hint(hint: object) -> str | None:
    """``hint`` if it is a str of at most :data:`MAX_STICKY_HINT` characters; an empty hint
    is no hint (``None``), as nginx treats an empty cookie or variable."""
    if not isinstance(hint, str):
        raise RequestError(f"sticky= takes the server id as str, not {type(hint).__name__}")
    if len(hint) > MAX_STICKY_HINT:
        raise RequestError(
            f"sticky hint of {len(hint)} characters is too long: at most {MAX_STICKY_HINT}"
        )
    return hint or None
