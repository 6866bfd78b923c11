"""``Upstream``: a group of servers, a balancing method and passive health, thread-safe."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress
from functools import partial
from math import trunc
from typing import Protocol, cast

from lbkit.errors import ConfigError, NoLiveUpstreams, RequestError, UnknownPeerError, UsageError
from lbkit.hashing import as_bytes, client_address_bytes
from lbkit.latency import check_sample, ewma_update
from lbkit.upstream._attempts import AsyncAttempts, Attempts
from lbkit.upstream._method import AttemptOutcome, AttemptTimer, Method, Picker, default_method
from lbkit.upstream._peers import (
    AVAILABLE,
    BarePeer,
    BareTimedPeer,
    Peer,
    PeerGroup,
    PeerState,
    RequestState,
    TimedPeer,
    release_attempt,
    release_peer,
)
from lbkit.upstream._server import Server, parse_server_line
from lbkit.upstream._sticky_hint import check_sticky_hint
from lbkit.upstream._validation import check_keepalive, check_servers
from lbkit.upstream._zone import DEFAULT_ZONE_SIZE, ZonePeers, check_zone_fits, open_zone

__all__ = ["MAX_KEY_LENGTH", "RESPONSE_TIME_ALPHA", "Upstream"]

#: Longest hash key accepted by :meth:`Upstream.pick` (bytes after UTF-8 encoding).
MAX_KEY_LENGTH = 64 * 1024

#: Weight of the newest sample in the per-peer response-time average.
RESPONSE_TIME_ALPHA = 0.2


class _Membership:
    """One published membership: servers, groups, the method's picker, names. Replaced
    whole by :meth:`Upstream.update`, never changed in place (peer states are shared)."""

    __slots__ = (
        "_by_name",
        "begins",
        "first",
        "first_timed",
        "follower",
        "generation",
        "picker",
        "primary",
        "servers",
        "sync",
        "timer",
        "tries",
    )

    def __init__(
        self,
        servers: tuple[Server, ...] | None,
        primary: PeerGroup,
        picker: Picker,
        generation: int,
    ) -> None:
        #: The servers in configuration order; None when they are the primary peers'
        #: servers in order (no backup): then read them from the peers (under the lock).
        self.servers = servers
        self.primary = primary
        self.picker = picker
        #: Brings every peer's state up to date (a picker with a fast path may let some
        #: fields lag); called before anything but a pick reads or changes a peer.
        self.sync: Callable[[], None] = getattr(picker, "sync", _nothing)
        #: Whether the picker's ``begin`` does anything (a picker may say it does not).
        self.begins: bool = getattr(picker, "begins", True)
        inner = picker._inner if isinstance(picker, _BackupOnly) else picker
        #: The picker, if it times attempts (least_time; also behind _BackupOnly).
        self.timer = inner if isinstance(inner, AttemptTimer) else None
        #: Whose ``released`` is told of every connection ended by done() or give_back()
        #: (a picker that keeps peers ordered by their connections follows them): read at
        #: each end, as such a picker sets it to None while it needs no telling.
        self.follower = cast(_Follower, inner) if hasattr(inner, "released") else _NOT_FOLLOWING
        #: The picker's answer for the first attempt of a plain pick(), with no request
        #: state, or None when it needs the full path (see :meth:`Upstream.pick`). Never
        #: for a picker that times attempts: done() ends a request-free peer inline.
        self.first: Callable[[bytes, bytes, int], PeerState | None] = (
            _no_first if self.timer is not None else getattr(picker, "first", _no_first)
        )
        # A picker whose first attempts are answered by one part or another as its state
        # changes (least_conn: round robin's order while idle, its buckets once connections
        # are held) sets ``first`` to the part that answers, so that a pick makes one call.
        publish = getattr(picker, "publish_first", None)
        if publish is not None and self.timer is None:
            publish(partial(setattr, self, "first"))
        #: The answer of a picker that times attempts for the first attempt of a plain
        #: pick() (whole seconds, and the clock's reading), taken, or None for the full
        #: path (see :meth:`Upstream._pick_timed`).
        self.first_timed: Callable[[int, float], PeerState | None] = (
            getattr(picker, "first_timed", _no_first_timed)
            if self.timer is picker
            else _no_first_timed
        )
        self.generation = generation
        backup = primary.backup
        self._by_name: dict[str, PeerState] | None = None
        self.tries = primary.tries + (backup.tries if backup else 0)

    def listed_servers(self) -> tuple[Server, ...]:
        """The servers in configuration order: :attr:`servers`, or the primary peers'
        servers when it is None (read under the upstream's lock)."""
        servers = self.servers
        return tuple(p.server for p in self.primary.peers) if servers is None else servers

    @property
    def by_name(self) -> dict[str, PeerState]:
        """Every peer by address, primaries first: built on first use (picks never need
        it; threads racing here build equal dicts)."""
        by_name = self._by_name
        if by_name is None:
            backup = self.primary.backup
            by_name = {state.name: state for state in self.primary.peers}
            if backup is not None:
                by_name.update((state.name, state) for state in backup.peers)
            self._by_name = by_name
        return by_name


def _count_request(state: PeerState, elapsed: float | None) -> None:
    """One more request ended on ``state``, ``elapsed`` seconds long if known."""
    state.requests += 1
    if elapsed is not None:
        extra = state.more()
        extra.response_time = ewma_update(extra.response_time, elapsed, RESPONSE_TIME_ALPHA)


class _Follower(Protocol):
    """A picker told of the connections that end (see ``_Membership.follower``)."""

    @property
    def released(self) -> Callable[[PeerState], None] | None:
        """What to tell of a peer whose connection ended (None: nothing to tell now)."""


class _NotFollowing:
    """The follower of a picker that follows no connection."""

    released = None


_NOT_FOLLOWING = _NotFollowing()


def _nothing() -> None:
    """The ``sync`` of a picker that keeps every peer up to date."""


class _NoPeers:
    """The picker of an upstream with no peer yet (only names still to resolve): nginx's
    ``NGX_BUSY``."""

    begins = False

    def begin(self, request: RequestState) -> None:
        """Nothing to prepare."""

    def get(self, request: RequestState, now: int) -> PeerState | None:
        """No peer."""
        return None


class _BackupOnly:
    """The picker of an upstream whose primary group is empty (its names not resolved yet)
    and that has backups: nginx finds no primary peer and goes on to the backup group."""

    begins = True

    def __init__(self, inner: Picker, primary: PeerGroup) -> None:
        self._inner = inner
        self._primary = primary
        self.sync: Callable[[], None] = getattr(inner, "sync", _nothing)

    def _to_backup(self, request: RequestState) -> None:
        if request.group is self._primary:
            request.group = self._primary.backup  # type: ignore[assignment]
            request.tried = 0

    def begin(self, request: RequestState) -> None:
        """Start the request in the backup group."""
        self._to_backup(request)
        self._inner.begin(request)

    def get(self, request: RequestState, now: int) -> PeerState | None:
        """The method's choice among the backups."""
        self._to_backup(request)
        return self._inner.get(request, now)


def _bind_groups(method: Method, primary: PeerGroup) -> Picker:
    """``method``'s picker for these groups; with no primary peer (names not resolved yet)
    nginx answers from the backups, or with ``NGX_BUSY`` when there are none."""
    if primary.peers:
        return method.bind(primary)
    if primary.backup is None:
        return _NoPeers()
    return _BackupOnly(method.bind(primary), primary)


def _check_resolver(words: Sequence[str]) -> tuple[str, ...]:
    if isinstance(words, str) or not all(isinstance(w, str) and w.split() == [w] for w in words):
        raise ConfigError(
            f"invalid resolver {words!r}: expected nginx resolver words such as "
            "('127.0.0.1:53', 'valid=30s')"
        )
    return tuple(words)


def _no_first(key: bytes, addr: bytes, now: int) -> None:
    """The ``first`` of a picker without a fast path: always the full path."""


def _no_first_timed(now: int, seconds: float) -> None:
    """The ``first_timed`` of a picker without one: always the full path."""


def _groups(servers: tuple[Server, ...], reuse: dict[str, PeerState]) -> PeerGroup:
    """The primary group (with its backup group) for ``servers``, reusing the states of
    peers that stay so that they keep conns, failures and round-robin position."""

    def group(members: list[Server]) -> PeerGroup:
        peers = []
        for index, server in enumerate(members):
            state = reuse.get(server.address)
            if state is None:
                state = PeerState.from_server(server, index)
            else:
                state.reconfigure(server, index)
            peers.append(state)
        # (a copy holds exactly len(peers) slots; appending over-allocates by an eighth)
        return PeerGroup.from_peers(peers.copy())

    primary = group([s for s in servers if not s.backup])
    backups = [s for s in servers if s.backup]
    if backups:
        # nginx: with backup servers, neither group takes the single-peer shortcut.
        backup = group(backups)
        backup.single = False
        backup.is_backup = True
        primary.single = False
        primary.backup = backup
    return primary


class Upstream:
    """A group of servers with one balancing method, as nginx's ``upstream NAME { ... }``.

    Choose a peer with :meth:`pick` and report the outcome with :meth:`done`; or, to retry
    the way ``proxy_next_upstream`` does, iterate :meth:`attempts` (or, in asyncio,
    :meth:`attempts_async`). Change the servers at run time with :meth:`update` and
    :meth:`drain`.

    Thread safety: the state (round-robin weights, connection counts, failures) is shared
    by all threads using the object and changed under one lock; :meth:`update` swaps the
    whole membership under that lock, so a pick sees the servers before or after it.

    ``clock`` returns seconds; like nginx's ``ngx_time()`` only whole seconds count. It
    defaults to :func:`time.monotonic`, so wall-clock jumps do not affect ``fail_timeout``.
    ``zone`` names a shared-memory zone as nginx's ``zone NAME SIZE;`` (``zone_size``
    bytes, default 1 MiB, bounding the peers: :func:`~lbkit.upstream.zone_size_for`): the
    membership and the peers' state (round-robin weights, connection counts, failures,
    drains, slow start, response times) are then shared by every process of the host whose
    upstream of this ``name`` uses the zone (see :class:`~lbkit.upstream.Zone`).

    Servers with ``resolve`` on a name (``Server("app.internal:8080", resolve=True)``) have
    no peer of their own: :class:`~lbkit.discovery.ResolvingUpstream` makes their addresses
    peers as DNS answers, with the ``resolver`` words (nginx's ``resolver`` directive).
    """

    def __init__(
        self,
        servers: Iterable[Server],
        method: Method | None = None,
        *,
        name: str = "",
        keepalive: int | None = None,
        zone: str | None = None,
        zone_size: int | None = None,
        resolver: Sequence[str] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if method is None:
            method = default_method()
        configured = tuple(servers)
        check_servers(configured, method, name)
        check_keepalive(keepalive)
        self.name = name
        self.method = method
        self.keepalive = keepalive
        self.zone = zone
        # The servers as configured (see the ``configured`` property); None while they
        # are the first membership's peers' servers, until an update.
        self._configured: tuple[Server, ...] | None = configured
        #: The ``server NAME resolve`` servers: no peer of their own; their addresses
        #: become peers once resolved (see :class:`~lbkit.discovery.ResolvingUpstream`).
        self.resolve_servers = tuple(s for s in configured if s.resolvable)
        #: nginx's ``resolver`` words for those names (``("10.0.0.2:53", "valid=30s")``).
        self.resolver = _check_resolver(resolver)
        self._clock = clock
        # Reentrant: a method holding it may call another (a finaliser does not re-enter: see
        # give_back()).
        self._lock = threading.RLock()
        #: Whether this thread holds the lock (the RLock's own check, as threading.Condition
        #: uses it).
        self._lock_held_here: Callable[[], bool] = self._lock._is_owned  # type: ignore[attr-defined]
        server_tuple = (
            tuple(s for s in configured if not s.resolvable) if self.resolve_servers else configured
        )
        self._zone: ZonePeers | None = None
        if zone is not None:
            check_zone_fits(str(zone), zone_size or DEFAULT_ZONE_SIZE, server_tuple)
            self._zone = ZonePeers(open_zone(zone, zone_size), name)
            # The zone's membership if another process published one (it may have changed).
            server_tuple = self._zone.join(server_tuple)
        primary = _groups(server_tuple, {})
        derived = primary.backup is None and server_tuple is configured
        if derived:
            # Every server is a primary peer, in order: the peers hold the servers, and a
            # tuple of them all would be a second reference to each.
            self._configured = None
        self._members = _Membership(
            None if derived else server_tuple, primary, self._bind(primary), 0
        )
        self._ramping: list[PeerState] = []
        if self._zone is not None:
            self._zone.bind(self._members.by_name.values())
        # What pick() takes as its input (None: nothing), for its request-free path, and
        # whether a pick with no input takes that path.
        self._input = "key" if method.needs_key else "addr" if method.needs_client_addr else None
        # (least_time's plain picks take their own path: its peers are timed)
        plain = self._input is None and zone is None
        self._timed_plain = plain and method.kind == "least_time"
        self._plain = plain and not self._timed_plain

    # -- introspection -------------------------------------------------------------

    @property
    def configured(self) -> tuple[Server, ...]:
        """The servers as configured, ``server NAME resolve`` ones included (in order)."""
        configured = self._configured
        if configured is None:
            with self._lock:  # (an update() stores them before it changes any peer)
                configured = self._configured
                if configured is None:
                    return self._members.listed_servers()
        return configured

    @property
    def servers(self) -> tuple[Server, ...]:
        """The configured servers, in configuration order (with a zone: the zone's)."""
        if self._zone is not None and self._zone.changed():
            with self._lock:
                self._follow_zone()
        servers = self._members.servers
        if servers is None:
            with self._lock:  # (an update() may be changing the peers' servers)
                return self._members.listed_servers()
        return servers

    @property
    def peers(self) -> tuple[PeerState, ...]:
        """Runtime state of every peer, primaries first, then backups (config order)."""
        with self._lock:
            self._follow_zone()
            members = self._members
            members.sync()
            with self._synced(tuple(members.by_name.values())):
                return tuple(members.by_name.values())

    def peer_state(self, name: str) -> PeerState:
        """Runtime state of the peer whose address is ``name`` (UnknownPeerError if none)."""
        with self._lock:
            self._follow_zone()
            members = self._members
            members.sync()
            state = members.by_name.get(name)
            if state is not None:
                with self._synced((state,)):
                    return state
        known = ", ".join(list(members.by_name)[:20])
        raise UnknownPeerError(f"no server {name!r} in upstream {self.name!r} (servers: {known})")

    def __repr__(self) -> str:
        names = ", ".join(s.address for s in self.servers)
        return f"<Upstream {self.name or '(unnamed)'} {type(self.method).__name__} [{names}]>"

    # -- changing membership ---------------------------------------------------------

    def update(self, servers: Iterable[Server | str]) -> None:
        """Replace the servers, atomically; peers that stay keep their state.

        ``servers`` are :class:`~lbkit.Server` objects or their text
        (``"10.0.0.1:80 weight=2"``, the parameters of nginx's ``server`` directive). A peer
        whose address stays keeps its connection count, failures and round-robin position
        (its parameters, such as the weight, are the new ones); new addresses start fresh;
        removed ones take no new request once this returns, and requests running on them
        may still be reported to :meth:`done`. The new list is validated as a whole before
        anything changes: on error (:class:`~lbkit.ConfigError`) the upstream is as it was.
        Consistent hashing rebuilds its ring from the same points, so only the keys of
        added or removed servers move.
        """
        if isinstance(servers, (str, Server)):
            servers = [servers]
        new = tuple(s if isinstance(s, Server) else parse_server_line(s) for s in servers)
        if any(s.resolvable for s in new):
            raise ConfigError(
                "update() takes addresses: the servers resolved from DNS (server NAME "
                "resolve) are configured when the upstream is made"
            )
        check_servers(self.resolve_servers + new, self.method, self.name)
        with self._lock:
            fresh: set[str] = set()
            if self._zone is not None:
                self._zone.publish(new)  # for every process; ConfigError if it does not fit
                fresh = self._zone.moved(self._members.by_name.values())
            self._install(new, fresh)

    def _follow_zone(self) -> None:
        """Take the membership another process published to the zone (lock held)."""
        zone = self._zone
        if zone is not None and zone.changed():
            new = zone.members()
            self._install(new, fresh=zone.moved(self._members.by_name.values()))

    def _install(self, new: tuple[Server, ...], fresh: Iterable[str] = ()) -> None:
        """Make ``new`` the membership of this process's upstream (lock held); peers
        named in ``fresh`` start afresh even if they stay."""
        old = self._members
        old.sync()
        if self._configured is None:
            # The first membership's peers hold the configured servers until now.
            self._configured = old.listed_servers()
        reuse = dict(old.by_name)
        for name in fresh:
            reuse.pop(name, None)
        primary = _groups(new, reuse)
        members = _Membership(new, primary, self._bind(primary), old.generation + 1)
        if self._zone is not None:
            self._zone.bind(members.by_name.values())
        # (a peer whose server lost its slow_start left its ramp in reconfigure())
        self._ramping = [
            s
            for s in self._ramping
            if members.by_name.get(s.name) is s and s.ramp_start is not None
        ]
        self._members = members

    def drain(self, name: str) -> None:
        """Stop sending new requests to ``name``; requests running there finish as usual.

        The peer stays a member (its connection count shows what is still running) until
        an :meth:`update` leaves it out. Raises :class:`~lbkit.errors.UnknownPeerError`.
        """
        with self._lock:
            state = self.peer_state(name)
            with self._synced((state,)):
                state.drain()

    def _bind(self, primary: PeerGroup) -> Picker:
        """The method's picker for ``primary``, given the upstream's clock if it times
        attempts."""
        picker = _bind_groups(self.method, primary)
        inner = picker._inner if isinstance(picker, _BackupOnly) else picker
        if isinstance(inner, AttemptTimer):
            inner.set_clock(self._clock)
        return picker

    # -- choosing and reporting ----------------------------------------------------

    def _synced(self, states: tuple[PeerState, ...]) -> AbstractContextManager[object]:
        """The zone's state of ``states`` around a change (nothing without a zone)."""
        return nullcontext() if self._zone is None else self._zone.synced(states)

    def _new_request(
        self,
        key: str | bytes | None,
        client_addr: str | bytes | None,
        sticky: str | None = None,
    ) -> RequestState:
        key_bytes, addr = self._inputs(key, client_addr)
        # No lock: the membership is one reference, and begin() only writes the request.
        # An update() between here and the pick is caught by the generation in _get().
        hint = None if sticky is None else check_sticky_hint(sticky)
        return self._request(self._members, key_bytes, addr, hint)

    @staticmethod
    def _request(
        members: _Membership, key: bytes, addr: bytes, sticky: str | None = None
    ) -> RequestState:
        """A new request on ``members``, begun by its method."""
        request = RequestState(
            members.primary, members.tries, 0, key, addr, 0, 0, 0, members.generation, sticky
        )
        if members.begins:
            members.picker.begin(request)
        return request

    def _inputs(
        self, key: str | bytes | None, client_addr: str | bytes | None
    ) -> tuple[bytes, bytes]:
        """The key and client address of a pick as bytes, checked against the method."""
        method = self.method
        key_bytes = b""
        addr = b""
        if key is not None:
            key_bytes = as_bytes(key)
            if len(key_bytes) > MAX_KEY_LENGTH:
                raise RequestError(
                    f"hash key of {len(key_bytes)} bytes is too long: at most {MAX_KEY_LENGTH}"
                )
        elif method.needs_key:
            raise RequestError(
                f"the {method.kind} method needs key=: pass the evaluated key "
                "(str or bytes; an empty key falls back to round robin as in nginx)"
            )
        if client_addr is not None:
            addr = client_address_bytes(client_addr)
        elif method.needs_client_addr:
            raise RequestError("ip_hash needs client_addr=: pass the client's IPv4 or IPv6 text")
        return key_bytes, addr

    def _follow(self, request: RequestState, members: _Membership) -> None:
        """Move a request begun before an :meth:`update` onto the current membership:
        the peers it tried (by name) stay tried, in the same group (primary or backup)."""
        old = request.group
        tried = {p.name for i, p in enumerate(old.peers) if request.tried >> i & 1}
        group = members.primary
        if old.is_backup:
            if group.backup is None:
                tried = {p.name for p in group.peers}  # nothing left to try
            else:
                group = group.backup
        request.group = group
        request.generation = members.generation
        members.picker.begin(request)
        request.tried = sum(1 << p.index for p in group.peers if p.name in tried)

    def _apply_slow_start(self, now: int) -> None:
        """Set the weight of each recovering peer on its ramp from 1 to its full weight."""
        still = []
        for state in self._ramping:
            assert state.ramp_start is not None
            elapsed = now - state.ramp_start
            full = state.server.weight
            if elapsed >= state.server.slow_start:
                state.weight = full
                state.ramp_start = None
                continue
            state.weight = max(1, full * elapsed // state.server.slow_start)
            state.effective_weight = min(state.effective_weight, state.weight)
            still.append(state)
        self._ramping = still

    def _get(self, request: RequestState) -> Peer:
        with self._lock:
            return self._get_locked(request)

    def _get_locked(self, request: RequestState) -> Peer:
        """:meth:`_get` with the lock held."""
        self._follow_zone()
        members = self._members
        if request.generation != members.generation:
            self._follow(request, members)
        now = trunc(self._clock())
        zone = self._zone
        if zone is not None:
            members.sync()  # no fast path may keep weights apart from the zone's
        with nullcontext() if zone is None else zone.synced() as loaded:
            if loaded:
                self._ramping = zone.ramping()  # type: ignore[union-attr]
            if self._ramping:
                members.sync()
                self._apply_slow_start(now)
            state = members.picker.get(request, now)
            if zone is not None:
                members.sync()  # (before the zone stores them: a fast path's answer lags)
        if state is None:
            raise NoLiveUpstreams(f"no live upstreams in upstream {self.name!r}")
        timer = members.timer
        if timer is None:
            return Peer(state, request, self)
        timed = TimedPeer(state, request, self)
        timer.attempt_started(timed)
        return timed

    def pick(
        self,
        key: str | bytes | None = None,
        client_addr: str | bytes | None = None,
        *,
        sticky: str | None = None,
    ) -> Peer:
        """Choose a peer for one request and count it as started.

        ``key`` is the evaluated hash key (hash methods), ``client_addr`` the client's IP
        text (ip_hash). Report the outcome with :meth:`done`. Raises
        :class:`~lbkit.NoLiveUpstreams` when nginx would answer 502, and
        :class:`~lbkit.errors.RequestError` for a bad key or address (nothing changes).
        ``sticky`` is the server id a sticky client asks for (see :class:`~lbkit.balancers.Sticky`).
        """
        # The inputs of the common picks inline (_inputs() checks every other case).
        if key is None and client_addr is None and sticky is None and self._plain:
            key_bytes = addr = b""
        elif sticky is not None or self._zone is not None:
            return self._get(self._new_request(key, client_addr, sticky))
        elif (wants := self._input) == "key" and client_addr is None and type(key) is str:
            try:
                key_bytes = key.encode()
            except UnicodeEncodeError:
                key_bytes = as_bytes(key)  # raises KeyTypeError
            if len(key_bytes) > MAX_KEY_LENGTH:
                self._inputs(key, client_addr)  # raises RequestError
            addr = b""
        elif wants == "addr" and key is None and client_addr is not None:
            key_bytes = b""
            addr = client_address_bytes(client_addr)
        elif self._timed_plain and key is None and client_addr is None:
            return self._pick_timed()
        else:
            key_bytes, addr = self._inputs(key, client_addr)
        # (Callables held in attributes are read into locals before the call: CPython 3.11
        # does not specialise ``self.attribute()``, and looks it up in full each time.
        # trunc() is int() for a number of seconds, at a third of the cost.)
        clock = self._clock
        now = trunc(clock())
        lock = self._lock
        lock.acquire()
        try:
            # The method answers a first attempt alone while no slow start runs (the ramp
            # moves with time; _get_locked applies it).
            first = self._members.first
            state = None if self._ramping else first(key_bytes, addr, now)
            if state is None:
                # (in the same lock hold: first() may have made steps of this get(); see
                # Picker)
                return self._get_locked(self._request(self._members, key_bytes, addr))
        finally:
            lock.release()
        # Peer(state, None, self), each field set here (see BarePeer).
        peer: Peer = BarePeer()
        peer.state = state
        peer.request = None
        peer.owner = self
        peer.reported = peer.failed = peer.retry = False
        peer.header_ms = None
        return peer

    def _pick_timed(self) -> Peer:
        """:meth:`pick` with no input for a method that times attempts (least_time): its
        answer for a first attempt without request state while it has one, handed out as
        a :class:`BareTimedPeer` (which :meth:`done` ends through the timer)."""
        clock = self._clock
        seconds = clock()
        now = trunc(seconds)
        lock = self._lock
        lock.acquire()
        try:
            members = self._members
            state = None if self._ramping else members.first_timed(now, seconds)
            if state is None:
                return self._get_locked(self._request(members, b"", b""))
            # TimedPeer(state, None, self), each field set here (see BarePeer).
            peer: TimedPeer = BareTimedPeer()
            peer.state = state
            peer.request = None
            peer.owner = self
            peer.reported = peer.failed = peer.retry = False
            peer.header_ms = None
            timer = members.timer
            assert timer is not None  # (first_timed answers only for a timer)
            timer.attempt_started(peer)
            return peer
        finally:
            lock.release()

    def done(
        self,
        peer: Peer,
        failed: bool = False,
        elapsed: float | None = None,
        *,
        retry: bool = False,
        header_time: float | None = None,
    ) -> None:
        """Report that the attempt on ``peer`` ended.

        ``failed``: as ``proxy_next_upstream`` would count it (connection error,
        timeout...): a failure towards ``max_fails``, and :meth:`attempts` goes on to the
        next peer. ``retry``: not a failure, but the request should still go on to the next
        peer (``proxy_next_upstream http_404``: nginx's ``NGX_PEER_NEXT``). ``elapsed``
        (seconds) feeds the peer's response-time average.

        ``least_time`` reads times in seconds from the attempt's start, as nginx's
        ``$upstream_response_time`` and ``$upstream_header_time``: ``elapsed`` to the last
        byte, ``header_time`` to the response header (unless :meth:`header` reported it).
        Left out, they are measured on the upstream's clock (a success without a header
        time counts its last byte as its header). Other methods ignore ``header_time``.
        """
        if not isinstance(peer, Peer):
            raise UsageError(f"done() takes the Peer returned by pick(), not {peer!r}")
        if elapsed is not None:
            elapsed = check_sample(elapsed)
        if header_time is not None:
            header_time = check_sample(header_time)
        lock = self._lock
        lock.acquire()
        try:
            if peer.reported:
                raise UsageError(f"{peer!r} was already reported to done()")
            if peer.owner is not self:
                raise UsageError(f"{peer!r} does not belong to {self!r}")
            state = peer.state
            extra = state.extra  # (a peer that never failed has no probe to end)
            if (
                failed
                or type(peer) is not BarePeer  # (only a BarePeer has no request and no timer)
                or header_time is not None
                or (extra and extra.fails and extra.accessed < state.checked)
            ):
                self._end(peer, failed, elapsed, retry, header_time)
                return
            # The common end: a success (or retry) of a request-free attempt (so no zone
            # and no timer: see pick()) on a peer with no failure to forget.
            # release_attempt() then only ends the connection; _count_request() inline.
            peer.reported = True
            if retry:
                peer.retry = True
            state.conns -= 1
            if state.blocked_until != AVAILABLE:
                state.refresh()
            if elapsed is None:
                state.requests += 1  # _count_request() without the call
            else:
                _count_request(state, elapsed)
            released = self._members.follower.released
            if released is not None:
                released(state)
            if extra and extra.ramp_start is not None and state not in self._ramping:
                self._ramping.append(state)
        finally:
            lock.release()

    def _end(
        self,
        peer: Peer,
        failed: bool,
        elapsed: float | None,
        retry: bool,
        header_time: float | None,
    ) -> None:
        """:meth:`done` for any attempt (lock held, ``peer`` checked)."""
        if header_time is not None and peer.header_ms is not None:
            raise UsageError(f"the header time of {peer!r} was already reported by header()")
        state = peer.state
        members = self._members
        timer = members.timer
        zone = self._zone
        if timer is not None:
            assert isinstance(peer, TimedPeer)  # every peer of a timing method
            outcome: AttemptOutcome = "failed" if failed else "next" if retry else "ok"
            if zone is None:
                timer.attempt_ended(peer, outcome, elapsed, header_time)
            else:
                with zone.synced((state,)):
                    timer.attempt_ended(peer, outcome, elapsed, header_time)
        peer.reported = True
        # The clock matters only to a failure or to the end of a fail_timeout probe, which
        # may start a slow start: a peer that never failed has no probe to end, and one
        # with no failure to forget starts none (with a zone, the failures, their times
        # and ``checked`` are the zone's, loaded in the release: the clock is read always).
        if failed:
            failed = peer.failed = True
            members.sync()
            now = int(self._clock())
        else:
            failed = False
            if retry:
                peer.retry = True
            extra = state.extra
            now = (
                int(self._clock())
                if zone is not None or (extra and extra.fails and extra.accessed < state.checked)
                else 0
            )
        if zone is None:
            self._release(peer.request, state, failed, now)
            _count_request(state, elapsed)
        else:
            with zone.synced((state,)):
                self._release(peer.request, state, failed, now)
                _count_request(state, elapsed)
        released = members.follower.released
        if released is not None:
            released(state)
        extra = state.extra
        if extra and extra.ramp_start is not None and state not in self._ramping:
            self._ramping.append(state)

    @staticmethod
    def _release(request: RequestState | None, state: PeerState, failed: bool, now: int) -> None:
        """:func:`release_peer`, or :func:`release_attempt` for a peer picked without
        request state (always from a group of several peers)."""
        if request is None:
            release_attempt(state, failed, now)
        else:
            release_peer(request, state, failed, now)

    def header(self, peer: Peer, elapsed: float | None = None) -> None:
        """Report that the response header from ``peer`` arrived, ``elapsed`` seconds after
        the attempt started (default: measured on the upstream's clock).

        nginx's notify: with ``least_time header inflight`` the header time is averaged
        now and the attempt stops counting as in flight. Call it once the response is
        accepted (nginx does not notify a response ``proxy_next_upstream`` passes on),
        before :meth:`done`. Other methods only check the call.
        """
        if not isinstance(peer, Peer):
            raise UsageError(f"header() takes the Peer returned by pick(), not {peer!r}")
        if elapsed is not None:
            elapsed = check_sample(elapsed)
        with self._lock:
            if peer.reported:
                raise UsageError(f"{peer!r} was already reported to done()")
            if peer.owner is not self:
                raise UsageError(f"{peer!r} does not belong to {self!r}")
            if peer.header_ms is not None:
                raise UsageError(f"the header of {peer!r} was already reported")
            timer = self._members.timer
            if timer is not None:
                assert isinstance(peer, TimedPeer)  # every peer of a timing method
                with self._synced((peer.state,)):
                    timer.header_arrived(peer, elapsed)
            else:
                peer.header_ms = 0 if elapsed is None else round(elapsed * 1000)

    def give_back(self, peer: Peer) -> None:
        """Release an attempt that ended without an outcome (the client went away, the task
        was cancelled): its connection is no longer counted, nothing else changes. Does
        nothing for a peer already reported.

        Called by a finaliser that the garbage collector runs in the middle of one of this
        upstream's own changes (this thread already holds its lock, and a structure may be
        half-updated), the give-back is left to a short-lived thread, which makes it as
        soon as that change is over.
        """
        if self._lock_held_here():
            self._give_back_later(peer)
            return
        with self._lock:
            if peer.reported or peer.owner is not self:
                return
            timer = self._members.timer
            peer.reported = True
            with self._synced((peer.state,)):
                if timer is not None:
                    assert isinstance(peer, TimedPeer)  # every peer of a timing method
                    timer.attempt_ended(peer, "abandoned", None, None)
                peer.state.give_back()
            released = self._members.follower.released
            if released is not None:
                released(peer.state)

    def _give_back_later(self, peer: Peer) -> None:
        """:meth:`give_back` from another thread, once this one leaves the lock."""
        # (RuntimeError: the interpreter is shutting down, and nothing is counted anymore)
        with suppress(RuntimeError):
            threading.Thread(
                target=self.give_back, args=(peer,), name="lbkit-give-back", daemon=True
            ).start()

    def attempts(
        self,
        key: str | bytes | None = None,
        client_addr: str | bytes | None = None,
        *,
        tries: int = 0,
        timeout: float | None = None,
        sticky: str | None = None,
    ) -> Attempts:
        """The peers nginx tries for ONE request, in order (``proxy_next_upstream``).

        Report each with :meth:`done` before taking the next; the loop stops after a
        success, and goes on after ``failed=True`` or ``retry=True``. Each peer is tried
        at most once; backups follow when the primaries are exhausted. ``tries`` limits the
        attempts (``proxy_next_upstream_tries``, 0: no limit) and ``timeout`` the seconds
        from the first (``proxy_next_upstream_timeout``). When no peer is left after a
        failure, raises :class:`~lbkit.NoLiveUpstreams` (none available) or
        :class:`~lbkit.TriesExhausted` (every allowed try failed) where nginx answers 502;
        after a ``retry`` the loop just ends (nginx passes the last response on).

        Whatever the loop's end (``break``, an exception in its body, the iterator closed
        or dropped, ``with`` exit), a peer taken and not reported is given back
        (:meth:`give_back`): no connection stays counted.
        """
        return Attempts(
            self, self._new_request(key, client_addr, sticky), tries=tries, timeout=timeout
        )

    def attempts_async(
        self,
        key: str | bytes | None = None,
        client_addr: str | bytes | None = None,
        *,
        tries: int = 0,
        timeout: float | None = None,
        sticky: str | None = None,
    ) -> AsyncAttempts:
        """:meth:`attempts` for ``async for``; cancellation-safe (a cancelled task's
        unreported peer is given back). Choosing a peer never blocks the event loop."""
        return AsyncAttempts(
            self, self._new_request(key, client_addr, sticky), tries=tries, timeout=timeout
        )

    @contextmanager
    def request(
        self,
        key: str | bytes | None = None,
        client_addr: str | bytes | None = None,
        *,
        sticky: str | None = None,
    ) -> Iterator[Peer]:
        """Context manager: pick a peer, report it done on exit (failed if an exception escapes).

        ``key``, ``client_addr`` and ``sticky`` are as for :meth:`pick`."""
        peer = self.pick(key=key, client_addr=client_addr, sticky=sticky)
        started = time.perf_counter()
        try:
            yield peer
        except GeneratorExit:
            # closed without an exit (the context manager dropped, its generator collected):
            # no outcome, as a dropped attempts() loop
            if not peer.reported:
                self.give_back(peer)
            raise
        except BaseException:
            if not peer.reported:
                self.done(peer, failed=True, elapsed=time.perf_counter() - started)
            raise
        if not peer.reported:
            self.done(peer, elapsed=time.perf_counter() - started)
