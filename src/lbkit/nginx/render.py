"""Model objects back to nginx text: an :class:`~lbkit.Upstream` as an ``upstream`` block."""

from __future__ import annotations

from lbkit.balancers import Hash, IpHash, LeastConn, LeastTime, Random, RoundRobin
from lbkit.errors import ConfigError
from lbkit.upstream import Method, Server, Upstream

__all__ = ["render_method", "render_server", "render_upstream"]


def render_method(method: Method) -> str:
    """The directive for ``method`` (``"least_conn;"``), or ``""`` for round robin."""
    if isinstance(method, RoundRobin):
        return ""
    if isinstance(method, LeastConn):
        return "least_conn;"
    if isinstance(method, LeastTime):
        return f"least_time {method.mode}{' inflight' if method.inflight else ''};"
    if isinstance(method, IpHash):
        return "ip_hash;"
    if isinstance(method, Hash):
        return f"hash {method.key}{' consistent' if method.consistent else ''};"
    if isinstance(method, Random):
        if method.two:
            return "random two least_conn;" if method.least_conn else "random two;"
        return "random;"
    raise ConfigError(f"no nginx directive for balancing method {method!r}")


def render_server(server: Server) -> str:
    """``server`` as an nginx ``server`` directive (without indentation)."""
    parts = ["server", server.address]
    if server.weight != 1:
        parts.append(f"weight={server.weight}")
    if server.max_fails != 1:
        parts.append(f"max_fails={server.max_fails}")
    if server.fail_timeout != 10:
        parts.append(f"fail_timeout={server.fail_timeout}s")
    if server.max_conns:
        parts.append(f"max_conns={server.max_conns}")
    if server.slow_start:
        parts.append(f"slow_start={server.slow_start}s")
    if server.backup:
        parts.append("backup")
    if server.down:
        parts.append("down")
    return " ".join(parts) + ";"


def render_upstream(upstream: Upstream) -> str:
    """``upstream`` as an nginx ``upstream NAME { ... }`` block (its current servers)."""
    lines = [f"upstream {upstream.name or 'backend'} {{"]
    if upstream.zone is not None:
        lines.append(f"    zone {upstream.zone};")
    directive = render_method(upstream.method)
    if directive:
        lines.append(f"    {directive}")
    lines.extend(f"    {render_server(s)}" for s in upstream.servers)
    if upstream.keepalive is not None:
        lines.append(f"    keepalive {upstream.keepalive};")
    lines.append("}")
    return "\n".join(lines) + "\n"
