"""Address text: ``host:port``, ``[IPv6]:port``, a bare host; literal addresses (no I/O).

One place for the syntax every address reader shares (proxy_pass targets, ``resolve``
server lines, nameservers); each caller keeps its own policy for a missing port and its
own error. The port rule itself (:func:`port_number`) lives in :mod:`lbkit._port`, below
the upstream model, which reads ``server`` addresses with it too.
"""

from __future__ import annotations

import ipaddress

from lbkit._port import port_number

__all__ = ["is_address", "port_number", "split_host_port"]


def is_address(host: str) -> bool:
    """Whether ``host`` is an IPv4 or IPv6 address, not a name (so nothing to resolve)."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def split_host_port(address: str) -> tuple[str, str | None]:
    """``"name:80"`` -> ``("name", "80")``; ``"[::1]:80"`` -> ``("::1", "80")``.

    The port text is None when the address has no ``:port`` part (also a bare IPv6
    address, or ``[::1]`` followed by anything but ``:``) and ``""`` for a bare ``:``; it is
    not checked here (see :func:`port_number`).
    """
    if address.startswith("["):
        host, _, rest = address[1:].partition("]")
        return host, rest[1:] if rest.startswith(":") else None
    if address.count(":") == 1:
        host, port = address.split(":")
        return host, port
    return address, None
