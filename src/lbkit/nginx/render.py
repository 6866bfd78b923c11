"""Model objects back to nginx text: an :class:`~lbkit.Upstream` as an ``upstream`` block."""

from __future__ import annotations

from lbkit.balancers import (
    Hash,
    IpHash,
    LeastConn,
    LeastTime,
    Random,
    RoundRobin,
    Sticky,
    StickyMethod,
)
from lbkit.errors import ConfigError
from lbkit.upstream import Method, Server, Upstream

__all__ = [
    "render_method",
    "render_server",
    "render_sticky",
    "render_upstream",
    "server_params",
]


def render_method(method: Method) -> str:
    """The directive for ``method`` (``"least_conn;"``), or ``""`` for round robin.

    A :class:`~lbkit.balancers.StickyMethod` gives its wrapped method's directive; its
    ``sticky`` directive comes from :func:`render_sticky`, and must follow it (nginx's
    sticky wraps the method set before it)."""
    if isinstance(method, StickyMethod):
        return render_method(method.inner)
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


def render_sticky(sticky: Sticky) -> str:
    """``sticky`` as nginx's ``sticky cookie|route|learn ...;`` directive."""
    if sticky.mode == "route":
        return f"sticky route {' '.join(sticky.variables)};"
    if sticky.mode == "learn":
        parts = ["sticky learn"]
        parts.extend(f"create={v}" for v in sticky.create)
        parts.extend(f"lookup={v}" for v in sticky.variables)
        parts.append(f"zone={sticky.zone}:{sticky.zone_size}")
        if sticky.timeout != 600:
            parts.append(f"timeout={sticky.timeout}s")
        parts.extend(flag for flag in ("header", "sync") if getattr(sticky, flag))
        return " ".join(parts) + ";"
    parts = ["sticky cookie", sticky.cookie]
    if sticky.expires is not None:
        parts.append("expires=max" if sticky.expires == -1 else f"expires={sticky.expires}s")
    for attribute in ("domain", "samesite", "path"):
        value = getattr(sticky, attribute)
        if value:
            parts.append(f"{attribute}={value}")
    parts.extend(flag for flag in ("httponly", "secure") if getattr(sticky, flag))
    return " ".join(parts) + ";"


def server_params(server: Server) -> str:
    """The parameters of ``server``'s ``server`` directive (``"weight=2 backup"``)."""
    parts = []
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
    if server.service is not None:
        parts.append(f"service={server.service}")
    if server.resolve:
        parts.append("resolve")
    return " ".join(parts)


def render_server(server: Server, *, route: str | None = None, drain: bool = False) -> str:
    """``server`` as an nginx ``server`` directive (without indentation); ``route`` and
    ``drain`` add sticky's ``route=`` and ``drain``."""
    parts = ["server", server.address]
    params = server_params(server)
    if params:
        parts.append(params)
    if route is not None:
        parts.append(f"route={route}")
    if drain:
        parts.append("drain")
    return " ".join(parts) + ";"


def render_upstream(upstream: Upstream) -> str:
    """``upstream`` as an nginx ``upstream NAME { ... }`` block: its current servers (with
    sticky's ``route=`` and ``drain``), or, when it resolves names (``server NAME
    resolve``), its servers as configured and its ``resolver``."""
    lines = [f"upstream {upstream.name or 'backend'} {{"]
    if upstream.zone is not None:
        lines.append(f"    zone {upstream.zone};")
    directive = render_method(upstream.method)
    if directive:
        lines.append(f"    {directive}")
    routes = {}
    if isinstance(upstream.method, StickyMethod):
        lines.append(f"    {render_sticky(upstream.method.sticky)}")
        routes = dict(upstream.method.sticky.routes)
    if upstream.resolve_servers:
        servers = upstream.configured
        draining: set[str] = set()
        words = [w for w in upstream.resolver if not w.startswith("timeout=")]
        if words:
            lines.append(f"    resolver {' '.join(words)};")
        lines.extend(
            f"    resolver_timeout {w[8:]};" for w in upstream.resolver if w.startswith("timeout=")
        )
    else:
        servers = upstream.servers
        draining = {p.name for p in upstream.peers if p.draining}
    lines.extend(
        f"    {render_server(s, route=routes.get(s.address), drain=s.address in draining)}"
        for s in servers
    )
    if upstream.keepalive is not None:
        lines.append(f"    keepalive {upstream.keepalive};")
    lines.append("}")
    return "\n".join(lines) + "\n"
