"""The port rule nginx applies wherever it reads ``host:port`` (one place for all of lbkit).

nginx reads every port (``listen``, an upstream ``server``, ``proxy_pass``) with
``ngx_parse_url``: ``ngx_atoi`` on the digits, then 1..65535. ``ngx_atoi`` takes any number
of ASCII digits and refuses only a value that overflows, so leading zeros are fine
(``listen 000080`` is port 80, as ``nginx -t`` on 1.22 confirms).
"""

from __future__ import annotations

__all__ = ["port_number"]


def port_number(text: str) -> int | None:
    """The port ``text`` names (ASCII digits, 1..65535), or None if it names none.

    Leading zeros are allowed, as nginx's ``ngx_atoi`` allows them; a long run of digits
    is refused before ``int()`` sees it (Python refuses over 4300 digits with ValueError).
    """
    if not (text.isascii() and text.isdigit()):
        return None
    digits = text.lstrip("0")
    if len(digits) > 5:
        return None
    number = int(digits or "0")
    return number if 1 <= number <= 65535 else None
