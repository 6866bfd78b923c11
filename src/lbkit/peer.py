"""Runtime state: per-peer counters, peer groups (primary/backup) and per-request state.

These mirror nginx's ``ngx_http_upstream_rr_peer_t``, ``ngx_http_upstream_rr_peers_t`` and the
per-request ``ngx_http_upstream_rr_peer_data_t``. They are mutable and owned by one
:class:`~lbkit.Upstream`, which guards them with its lock; :class:`~lbkit.Server` holds the
immutable configuration.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from lbkit.server import Server

__all__ = ["Peer", "PeerGroup", "PeerState", "RequestState"]


@attrs.define(slots=True, eq=False)
class PeerState:
    """Mutable runtime state of one server (nginx's ``ngx_http_upstream_rr_peer_t``).

    ``checked`` and ``accessed`` are whole seconds of the upstream's clock, as nginx's
    ``ngx_time()``. ``response_time`` is an exponentially weighted moving average of the
    elapsed times reported to :meth:`~lbkit.Upstream.done` (``None`` until one is reported).
    """

    server: Server
    index: int
    weight: int
    effective_weight: int
    max_fails: int
    fail_timeout: int
    max_conns: int
    down: bool
    current_weight: int = 0
    conns: int = 0
    fails: int = 0
    accessed: int = 0
    checked: int = 0
    requests: int = 0
    response_time: float | None = None
    ramp_start: int | None = None

    @classmethod
    def from_server(cls, server: Server, index: int) -> PeerState:
        """Fresh state for ``server`` at position ``index`` of its group."""
        return cls(
            server=server,
            index=index,
            weight=server.weight,
            effective_weight=server.weight,
            max_fails=server.max_fails,
            fail_timeout=server.fail_timeout,
            max_conns=server.max_conns,
            down=server.down,
        )

    @property
    def name(self) -> str:
        """The server address exactly as configured."""
        return self.server.address

    def is_failed(self, now: int) -> bool:
        """True while max_fails failures keep this peer out (nginx's passive health check)."""
        return (
            self.max_fails != 0
            and self.fails >= self.max_fails
            and now - self.checked <= self.fail_timeout
        )

    def is_full(self) -> bool:
        """True when ``max_conns`` is set and reached."""
        return self.max_conns != 0 and self.conns >= self.max_conns

    def is_available(self, now: int) -> bool:
        """True when nginx would consider this peer (not down, not failed, not full)."""
        return not self.down and not self.is_failed(now) and not self.is_full()


@attrs.define(slots=True, eq=False)
class PeerGroup:
    """The primary or the backup peers of an upstream (nginx's ``ngx_http_upstream_rr_peers_t``)."""

    peers: list[PeerState]
    single: bool
    total_weight: int
    tries: int
    backup: PeerGroup | None = None
    #: Where each peer's weight range starts (0, w0, w0+w1, ...), for O(log n) hash lookups.
    starts: list[int] = attrs.field(factory=list)

    @classmethod
    def from_servers(cls, servers: Sequence[Server]) -> PeerGroup:
        """Build a group from servers in configuration order."""
        peers = [PeerState.from_server(s, i) for i, s in enumerate(servers)]
        starts = []
        total = 0
        for p in peers:
            starts.append(total)
            total += p.weight
        return cls(
            peers=peers,
            single=len(peers) == 1,
            total_weight=sum(p.weight for p in peers),
            tries=sum(1 for p in peers if not p.down),
            starts=starts,
        )


@attrs.define(slots=True, eq=False)
class RequestState:
    """What one request remembers between its attempts (nginx's per-request peer data).

    ``tried`` is a bitmask of peer indexes in ``group``; ``tries_left`` is nginx's
    ``pc->tries``. The hash fields belong to the hash-based methods.
    """

    group: PeerGroup
    tries_left: int
    tried: int = 0
    key: bytes = b""
    addr: bytes = b""
    hash: int = 0
    rehash: int = 0
    hash_tries: int = 0


@attrs.define(slots=True, eq=False)
class Peer:
    """The peer chosen for one attempt of one request, as returned by ``pick()``.

    Hand it back to :meth:`~lbkit.Upstream.done` when the attempt ends.
    """

    state: PeerState
    request: RequestState
    reported: bool = False
    failed: bool = False

    @property
    def name(self) -> str:
        """The server address exactly as written in the configuration."""
        return self.state.server.address

    @property
    def server(self) -> Server:
        """The server's configuration."""
        return self.state.server

    def __repr__(self) -> str:
        return f"<Peer {self.name}>"
