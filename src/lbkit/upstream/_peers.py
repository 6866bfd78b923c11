"""Runtime state and passive health: per-peer counters, peer groups, per-request state.

These mirror nginx's ``ngx_http_upstream_rr_peer_t``, ``ngx_http_upstream_rr_peers_t`` and the
per-request ``ngx_http_upstream_rr_peer_data_t``. They are mutable and owned by one
:class:`~lbkit.Upstream`, which guards them with its lock; :class:`~lbkit.Server` holds the
immutable configuration.

Passive health is decided here and only here: whether a peer may be chosen
(:meth:`PeerState.is_available`), what choosing it changes (:func:`take_peer`), what the end
of an attempt changes (:func:`release_peer`) and how many hash probes a method makes before
it falls back to round robin (:data:`MAX_HASH_TRIES`).
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Sequence

import attrs

from lbkit.upstream._peer_extra import PeerExtra
from lbkit.upstream._peer_times import PeerTimes
from lbkit.upstream._server import Server

__all__ = [
    "AVAILABLE",
    "MAX_HASH_TRIES",
    "BarePeer",
    "BareTimedPeer",
    "Peer",
    "PeerGroup",
    "PeerState",
    "RequestState",
    "TimedPeer",
    "can_take",
    "hash_tries_exhausted",
    "release_attempt",
    "release_peer",
    "take_first",
    "take_peer",
    "take_single_peer",
]

#: ``PeerState.blocked_until`` of a peer available with no time limit.
AVAILABLE = -math.inf

#: Probes a hash-based method (hash, hash consistent, ip_hash, random) makes for one
#: request before it falls back to round robin: nginx's ``if (++hp->tries > 20)``.
MAX_HASH_TRIES = 20


@attrs.define(slots=True, eq=False, weakref_slot=False)
class PeerState:
    """Mutable runtime state of one server (nginx's ``ngx_http_upstream_rr_peer_t``).

    ``checked`` and ``accessed`` are whole seconds of the upstream's clock, as nginx's
    ``ngx_time()``. ``response_time`` is an exponentially weighted moving average of the
    elapsed times reported to :meth:`~lbkit.Upstream.done` (``None`` until one is reported).
    ``draining`` is set by :meth:`~lbkit.Upstream.drain`: the peer takes no new requests.

    ``times`` holds nginx's millisecond averages for methods that read them
    (``least_time``); ``None`` until such a method is bound.

    ``blocked_until`` caches the passive-health decision (:meth:`refresh`): the peer is
    available at ``now`` exactly when ``blocked_until < now``. Every change of ``down``,
    ``conns``, ``fails`` or ``checked`` goes through the functions of this module, which
    refresh it; treat the fields as read-only.

    ``fails``, ``accessed``, ``response_time``, ``ramp_start``, ``draining`` and ``times``
    live in :attr:`extra` (a :class:`~lbkit.upstream.PeerExtra`), created the first time
    one of them is set: most peers never fail, drain or ramp up, and a peer table of many
    peers is smaller without room for them in each.
    """

    server: Server
    index: int
    weight: int
    effective_weight: int
    down: bool
    current_weight: int = 0
    conns: int = 0
    checked: int = 0
    requests: int = 0
    blocked_until: float = AVAILABLE
    #: The rarely set fields (see the class docstring); ``None`` while all are unset.
    extra: PeerExtra | None = None

    @classmethod
    def from_server(cls, server: Server, index: int) -> PeerState:
        """Fresh state for ``server`` at position ``index`` of its group."""
        state = cls(
            server=server,
            index=index,
            weight=server.weight,
            effective_weight=server.weight,
            down=server.down,
        )
        state.refresh()
        return state

    def more(self) -> PeerExtra:
        """:attr:`extra`, created if the peer has none yet (under the upstream's lock)."""
        extra = self.extra
        if extra is None:
            extra = self.extra = PeerExtra()
        return extra

    @property
    def fails(self) -> int:
        """Failures counted towards ``max_fails`` (nginx's ``fails``)."""
        extra = self.extra
        return 0 if extra is None else extra.fails

    @fails.setter
    def fails(self, value: int) -> None:
        if value or self.extra is not None:
            self.more().fails = value

    @property
    def accessed(self) -> int:
        """When the peer last failed (nginx's ``accessed``; 0: never)."""
        extra = self.extra
        return 0 if extra is None else extra.accessed

    @accessed.setter
    def accessed(self, value: int) -> None:
        if value or self.extra is not None:
            self.more().accessed = value

    @property
    def response_time(self) -> float | None:
        """Moving average of the reported elapsed times, in seconds (``None``: none yet)."""
        extra = self.extra
        return None if extra is None else extra.response_time

    @response_time.setter
    def response_time(self, value: float | None) -> None:
        if value is not None or self.extra is not None:
            self.more().response_time = value

    @property
    def ramp_start(self) -> int | None:
        """When the peer's slow start began (``None``: not ramping up)."""
        extra = self.extra
        return None if extra is None else extra.ramp_start

    @ramp_start.setter
    def ramp_start(self, value: int | None) -> None:
        if value is not None or self.extra is not None:
            self.more().ramp_start = value

    @property
    def draining(self) -> bool:
        """Set by :meth:`~lbkit.Upstream.drain`: the peer takes no new requests."""
        extra = self.extra
        return extra is not None and extra.draining

    @draining.setter
    def draining(self, value: bool) -> None:
        if value or self.extra is not None:
            self.more().draining = value

    @property
    def times(self) -> PeerTimes | None:
        """least_time's millisecond averages (``None`` until such a method is bound)."""
        extra = self.extra
        return None if extra is None else extra.times

    @times.setter
    def times(self, value: PeerTimes | None) -> None:
        if value is not None or self.extra is not None:
            self.more().times = value

    def refresh(self) -> None:
        """Decide passive health once, after any change: until when (inclusive) the peer
        is out. nginx's rule: down; or ``max_conns`` reached; or ``max_fails`` failures and
        ``now - checked <= fail_timeout``, i.e. until ``checked + fail_timeout``.
        """
        server = self.server
        if self.down or (server.max_conns and self.conns >= server.max_conns):
            self.blocked_until = math.inf
        elif (
            server.max_fails
            and (extra := self.extra) is not None
            and extra.fails >= server.max_fails
        ):
            self.blocked_until = self.checked + server.fail_timeout
        else:
            self.blocked_until = AVAILABLE  # the shared float: no new object per peer

    def reconfigure(self, server: Server, index: int) -> None:
        """Take ``server``'s new parameters, keeping connections, failures and the
        round-robin position (``current_weight``); a lowered weight caps the effective one.
        """
        if self.effective_weight == self.weight or self.effective_weight > server.weight:
            self.effective_weight = server.weight
        self.server = server
        self.index = index
        self.weight = server.weight
        self.down = server.down or self.draining
        if not server.slow_start:
            self.ramp_start = None
        self.refresh()

    def drain(self) -> None:
        """Take no new requests from now on (running ones are unaffected)."""
        self.draining = True
        self.down = True
        self.refresh()

    def give_back(self) -> None:
        """Forget one running request without an outcome (no failure, no success)."""
        self.conns -= 1
        self.refresh()

    @property
    def name(self) -> str:
        """The server address exactly as configured."""
        return self.server.address

    # The limits are the server's (immutable) configuration, read through it rather than
    # copied into every peer's state.

    @property
    def max_fails(self) -> int:
        """The server's ``max_fails``: failures within ``fail_timeout`` that take it out."""
        return self.server.max_fails

    @property
    def fail_timeout(self) -> int:
        """The server's ``fail_timeout`` in whole seconds."""
        return self.server.fail_timeout

    @property
    def max_conns(self) -> int:
        """The server's ``max_conns`` (0: no limit)."""
        return self.server.max_conns

    def is_failed(self, now: int) -> bool:
        """True while max_fails failures keep this peer out (nginx's passive health check)."""
        server = self.server
        return (
            server.max_fails != 0
            and self.fails >= server.max_fails
            and now - self.checked <= server.fail_timeout
        )

    def is_full(self) -> bool:
        """True when ``max_conns`` is set and reached."""
        max_conns = self.server.max_conns
        return max_conns != 0 and self.conns >= max_conns

    def is_available(self, now: int) -> bool:
        """True when nginx would consider this peer: not down, not failed, not full."""
        return self.blocked_until < now


@attrs.define(slots=True, eq=False)
class PeerGroup:
    """The primary or the backup peers of an upstream (nginx's ``ngx_http_upstream_rr_peers_t``)."""

    peers: list[PeerState]
    single: bool
    total_weight: int
    tries: int
    backup: PeerGroup | None = None
    #: True for the backup group of an upstream.
    is_backup: bool = False
    #: Where each peer's weight range starts (0, w0, w0+w1, ...), for O(log n) hash lookups;
    #: built by the first :meth:`peer_at` (only the hash-based methods need it).
    starts: list[int] = attrs.field(factory=list)

    @classmethod
    def from_servers(cls, servers: Sequence[Server]) -> PeerGroup:
        """Build a group of fresh peers from servers in configuration order."""
        return cls.from_peers([PeerState.from_server(s, i) for i, s in enumerate(servers)])

    @classmethod
    def from_peers(cls, peers: list[PeerState]) -> PeerGroup:
        """Build a group over existing peer states (their ``index`` must be their position)."""
        return cls(
            peers=peers,
            single=len(peers) == 1,
            total_weight=sum(p.weight for p in peers),
            tries=sum(1 for p in peers if not p.down),
        )

    def peer_at(self, w: int) -> PeerState:
        """The peer whose weight range holds ``w`` (0 <= w < total weight), in config order.

        nginx walks the ranges one by one; a bisect over their starts finds the same peer.
        (Only round robin and least_conn change weights at run time, by slow_start, and
        they never call this.)
        """
        starts = self.starts
        if not starts:
            # Built once, on the first lookup (threads racing here build equal lists).
            starts = list(itertools.accumulate((p.weight for p in self.peers[:-1]), initial=0))
            self.starts = starts
        return self.peers[bisect.bisect_right(starts, w) - 1]

    def peers_by_weight(self, count: int) -> list[PeerState]:
        """``[peer_at(w) for w in range(min(count, total_weight))]`` in one pass: each peer
        as many times as its weight, in config order, cut at ``count`` entries.

        For a method whose hashes are all below ``count``, ``table[h % len(table)]`` is
        ``peer_at(h % total_weight)`` in O(1) (past ``count`` the modulo changes nothing).
        """
        repeats = map(itertools.repeat, self.peers, [p.weight for p in self.peers])
        return list(itertools.islice(itertools.chain.from_iterable(repeats), count))


@attrs.define(slots=True, eq=False)
class RequestState:
    """What one request remembers between its attempts (nginx's per-request peer data).

    ``tried`` is a bitmask of peer indexes in ``group``; ``tries_left`` is nginx's
    ``pc->tries``. The hash fields belong to the hash-based methods. ``generation`` is the
    upstream membership the request started in (see :meth:`~lbkit.Upstream.update`).
    """

    group: PeerGroup
    tries_left: int
    tried: int = 0
    key: bytes = b""
    addr: bytes = b""
    hash: int = 0
    rehash: int = 0
    hash_tries: int = 0
    generation: int = 0
    #: The sticky hint (server id from a cookie, route or learned session), if any.
    sticky: str | None = None


def can_take(request: RequestState, peer: PeerState, now: int) -> bool:
    """Whether ``request`` may be sent to ``peer``: not tried by it yet, and available."""
    return not (request.tried >> peer.index & 1) and peer.is_available(now)


def hash_tries_exhausted(request: RequestState) -> bool:
    """Count one more probe of a hash method; True once there were more than
    :data:`MAX_HASH_TRIES` (the method then falls back to round robin)."""
    request.hash_tries += 1
    return request.hash_tries > MAX_HASH_TRIES


def take_peer(request: RequestState, peer: PeerState, now: int) -> PeerState:
    """What choosing ``peer`` for ``request`` changes: one more connection, the fail_timeout
    probe clock (``checked``) restarted when it ran out, and the peer marked tried.
    """
    request.tried |= 1 << peer.index
    return take_first(peer, now)


def take_first(peer: PeerState, now: int) -> PeerState:
    """:func:`take_peer` for the first attempt of a request that keeps no per-request state
    (a plain :meth:`~lbkit.Upstream.pick` answered by a method's fast path): nothing is
    marked tried, since that request never asks for a second peer."""
    server = peer.server
    peer.conns += 1
    if now - peer.checked > server.fail_timeout:
        peer.checked = now
    if server.max_conns or peer.blocked_until != AVAILABLE:
        # Otherwise the peer stays available: no max_conns, not failed, and not down
        # (it was just chosen), so refresh() would give -inf again.
        peer.refresh()
    return peer


def take_single_peer(peer: PeerState) -> PeerState | None:
    """nginx's shortcut for a group of one peer: no passive health check, only ``down``
    and ``max_conns``; no tried mark, no ``checked`` update. ``None`` if it cannot take it."""
    if peer.down or peer.is_full():
        return None
    peer.conns += 1
    peer.refresh()
    return peer


def release_peer(request: RequestState, peer: PeerState, failed: bool, now: int) -> None:
    """nginx's ``ngx_http_upstream_free_round_robin_peer``: account for a finished attempt.

    A failure counts towards ``max_fails`` and lowers the effective weight by
    ``weight // max_fails``; a success after the fail_timeout probe marks the peer live.
    """
    if request.group.single:
        peer.conns -= 1
        request.tries_left = 0
        peer.refresh()
        return
    release_attempt(peer, failed, now)
    if request.tries_left:
        request.tries_left -= 1


def release_attempt(peer: PeerState, failed: bool, now: int) -> None:
    """:func:`release_peer` for a peer taken from a group of several (nginx's
    ``ngx_http_upstream_free_round_robin_peer`` after its ``single`` shortcut), without
    the request's count of tries left."""
    if failed:
        failure = peer.more()
        failure.fails += 1
        failure.accessed = now
        peer.checked = now
        max_fails = peer.server.max_fails
        if max_fails:
            peer.effective_weight -= peer.weight // max_fails
        peer.effective_weight = max(peer.effective_weight, 0)
    elif (extra := peer.extra) is not None and extra.accessed < peer.checked:
        # A success after the fail_timeout probe marks the peer live again (a peer that
        # never failed has no fails to clear: nginx's accessed is 0, and so are fails).
        server = peer.server
        if server.slow_start and server.max_fails and extra.fails >= server.max_fails:
            extra.ramp_start = now
        extra.fails = 0
    peer.conns -= 1
    if failed or peer.blocked_until != AVAILABLE:
        # An available peer stays available when a connection ends without a failure.
        peer.refresh()


@attrs.define(slots=True, eq=False, weakref_slot=False)
class Peer:
    """The peer chosen for one attempt of one request, as returned by ``pick()``.

    Hand it back to :meth:`~lbkit.Upstream.done` when the attempt ends.
    """

    state: PeerState
    #: The request's state between attempts; ``None`` for a plain :meth:`~lbkit.Upstream.pick`
    #: answered by the method's fast path (a first attempt from a group of several peers).
    request: RequestState | None
    #: The upstream that handed this peer out (``done()`` refuses a peer of another one).
    owner: object = None
    reported: bool = False
    failed: bool = False
    #: Reported with ``retry=True``: not a failure, but the request goes on to the next peer.
    retry: bool = False
    #: Milliseconds to the response header, once known (:meth:`~lbkit.Upstream.header`).
    header_ms: int | None = None

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


class BarePeer(Peer):
    """A :class:`Peer` made without running ``__init__``: whoever makes one sets every
    field (as :meth:`~lbkit.Upstream.pick` does for a request-free peer).

    CPython runs a Python ``__init__`` in an interpreter frame of its own, the largest
    single cost of a plain pick; ``BarePeer()`` runs none.
    """

    __slots__ = ()
    __init__ = object.__init__


@attrs.define(slots=True, eq=False, weakref_slot=False, repr=False)
class TimedPeer(Peer):
    """A :class:`Peer` of a method that times attempts (``least_time``): when it started
    and whether it counts in flight. Other methods hand out plain peers, one pick cheaper."""

    #: When the attempt started, on the upstream's clock.
    started: float = 0.0
    #: Whether the attempt still counts in its peer's in-flight account (``inflight``).
    in_flight: bool = False


class BareTimedPeer(TimedPeer):
    """A :class:`TimedPeer` made without running ``__init__`` (see :class:`BarePeer`): the
    request-free peer of a method that times attempts, whose end :meth:`~lbkit.Upstream.done`
    still reports to the method."""

    __slots__ = ()
    __init__ = object.__init__
