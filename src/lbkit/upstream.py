"""``Upstream``: a group of servers, a balancing method and passive health, thread-safe."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager

from lbkit.balancers.base import Method, Picker
from lbkit.balancers.ip_hash import client_address_bytes
from lbkit.balancers.round_robin import RoundRobin, free_peer
from lbkit.errors import ConfigError, NoLiveUpstreams, TriesExhausted, UsageError
from lbkit.hashing import as_bytes
from lbkit.peer import Peer, PeerGroup, PeerState, RequestState
from lbkit.server import Server

__all__ = ["MAX_KEY_LENGTH", "Upstream"]

#: Longest hash key accepted by :meth:`Upstream.pick` (bytes after UTF-8 encoding).
MAX_KEY_LENGTH = 64 * 1024

#: Weight of the newest sample in the per-peer response-time average.
_EWMA_ALPHA = 0.2


class Upstream:
    """A group of servers with one balancing method, as nginx's ``upstream NAME { ... }``.

    Choose a peer with :meth:`pick` and report the outcome with :meth:`done`; or, to retry
    the way ``proxy_next_upstream error`` does, iterate :meth:`attempts`. The state (round
    robin weights, connection counts, failures) is shared by all threads using the object.

    ``clock`` returns seconds; like nginx's ``ngx_time()`` only whole seconds count. It
    defaults to :func:`time.monotonic`, so wall-clock jumps do not affect ``fail_timeout``.
    """

    def __init__(
        self,
        servers: Iterable[Server],
        method: Method | None = None,
        *,
        name: str = "",
        keepalive: int | None = None,
        directives: Mapping[str, tuple[str, ...]] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        servers = list(servers)
        method = RoundRobin() if method is None else method
        _validate(servers, method, name)
        if keepalive is not None and (
            isinstance(keepalive, bool) or not isinstance(keepalive, int) or keepalive < 1
        ):
            raise ConfigError(f"invalid keepalive {keepalive!r}: expected an integer >= 1")
        self.name = name
        self.method = method
        self.keepalive = keepalive
        #: Other directives of the block, recorded as given (``zone``, ``keepalive_timeout``...).
        self.directives: dict[str, tuple[str, ...]] = dict(directives or {})
        self.servers: tuple[Server, ...] = tuple(servers)
        self._clock = clock
        self._lock = threading.Lock()
        primary = PeerGroup.from_servers([s for s in servers if not s.backup])
        backups = [s for s in servers if s.backup]
        if backups:
            # nginx: with backup servers, neither group takes the single-peer shortcut.
            backup = PeerGroup.from_servers(backups)
            backup.single = False
            primary.single = False
            primary.backup = backup
        self._primary = primary
        self._picker: Picker = method.bind(primary)
        self._by_name = {state.name: state for state in self.peers}
        self._ramping: list[PeerState] = []

    # -- introspection -------------------------------------------------------------

    @property
    def peers(self) -> tuple[PeerState, ...]:
        """Runtime state of every peer, primaries first, then backups (config order)."""
        backup = self._primary.backup
        return tuple(self._primary.peers) + (tuple(backup.peers) if backup else ())

    def peer_state(self, name: str) -> PeerState:
        """Runtime state of the peer whose address is ``name``."""
        state = self._by_name.get(name)
        if state is not None:
            return state
        known = ", ".join(s.name for s in self.peers)
        raise KeyError(f"no server {name!r} in upstream {self.name!r} (servers: {known})")

    def to_nginx(self) -> str:
        """Render this upstream as an nginx ``upstream`` block."""
        lines = [f"upstream {self.name or 'backend'} {{"]
        directive = self.method.to_nginx()
        if directive:
            lines.append(f"    {directive}")
        lines.extend(f"    {s.to_nginx()}" for s in self.servers)
        if self.keepalive is not None:
            lines.append(f"    keepalive {self.keepalive};")
        lines.append("}")
        return "\n".join(lines) + "\n"

    def __repr__(self) -> str:
        names = ", ".join(s.address for s in self.servers)
        return f"<Upstream {self.name or '(unnamed)'} {type(self.method).__name__} [{names}]>"

    # -- choosing and reporting ----------------------------------------------------

    def _now(self) -> int:
        return int(self._clock())

    def _new_request(
        self, key: str | bytes | None, client_addr: str | bytes | None
    ) -> RequestState:
        method = self.method
        key_bytes = b""
        addr = b""
        if key is not None:
            key_bytes = as_bytes(key)
            if len(key_bytes) > MAX_KEY_LENGTH:
                raise ConfigError(
                    f"hash key of {len(key_bytes)} bytes is too long: at most {MAX_KEY_LENGTH}"
                )
        elif method.needs_key:
            raise ConfigError(
                f"{method.to_nginx().rstrip(';')} needs key=: pass the evaluated key "
                "(str or bytes; an empty key falls back to round robin as in nginx)"
            )
        if client_addr is not None:
            addr = client_address_bytes(client_addr)
        elif method.needs_client_addr:
            raise ConfigError("ip_hash needs client_addr=: pass the client's IPv4 or IPv6 text")
        primary = self._primary
        tries = primary.tries + (primary.backup.tries if primary.backup else 0)
        request = RequestState(group=primary, tries_left=tries, key=key_bytes, addr=addr)
        self._picker.begin(request)
        return request

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
            now = self._now()
            if self._ramping:
                self._apply_slow_start(now)
            state = self._picker.get(request, now)
        if state is None:
            raise NoLiveUpstreams(f"no live upstreams in upstream {self.name!r}")
        return Peer(state, request)

    def pick(self, key: str | bytes | None = None, client_addr: str | bytes | None = None) -> Peer:
        """Choose a peer for one request and count it as started.

        ``key`` is the evaluated hash key (hash methods), ``client_addr`` the client's IP
        text (ip_hash). Report the outcome with :meth:`done`. Raises
        :class:`~lbkit.NoLiveUpstreams` when nginx would answer 502.
        """
        return self._get(self._new_request(key, client_addr))

    def done(self, peer: Peer, failed: bool = False, elapsed: float | None = None) -> None:
        """Report that the attempt on ``peer`` ended; ``failed`` as ``proxy_next_upstream``
        would count it (connection error, timeout...). ``elapsed`` (seconds) feeds the
        peer's response-time average.
        """
        if not isinstance(peer, Peer):
            raise UsageError(f"done() takes the Peer returned by pick(), not {peer!r}")
        if elapsed is not None and not (elapsed >= 0):
            raise ConfigError(f"invalid elapsed={elapsed!r}: expected seconds >= 0")
        with self._lock:
            if peer.reported:
                raise UsageError(f"{peer!r} was already reported to done()")
            state = peer.state
            if self._by_name.get(state.name) is not state:
                raise UsageError(f"{peer!r} does not belong to {self!r}")
            peer.reported = True
            peer.failed = bool(failed)
            free_peer(peer.request, state, peer.failed, self._now())
            if state.ramp_start is not None and state not in self._ramping:
                self._ramping.append(state)
            state.requests += 1
            if elapsed is not None:
                prior = state.response_time
                state.response_time = (
                    elapsed if prior is None else prior + _EWMA_ALPHA * (elapsed - prior)
                )

    def attempts(
        self, key: str | bytes | None = None, client_addr: str | bytes | None = None
    ) -> Iterator[Peer]:
        """The peers nginx tries for ONE request, in order (``proxy_next_upstream error``).

        Report each with :meth:`done` before taking the next; stop after a success. Each
        peer is tried at most once; backups follow when the primaries are exhausted. Raises
        :class:`~lbkit.NoLiveUpstreams` (no peer left) or :class:`~lbkit.TriesExhausted`
        (every allowed try failed) where nginx answers 502.
        """
        request = self._new_request(key, client_addr)
        return self._attempts(request)

    def _attempts(self, request: RequestState) -> Iterator[Peer]:
        while True:
            peer = self._get(request)
            yield peer
            if not peer.reported:
                # Count the unreported attempt as failed so no connection is leaked.
                self.done(peer, failed=True)
                raise UsageError(
                    f"{peer!r} was not reported: call done(peer, failed=...) before the next "
                    "attempt"
                )
            if not peer.failed:
                return
            if request.tries_left == 0:
                raise TriesExhausted(
                    f"no live upstreams in upstream {self.name!r}: every try failed "
                    f"(last: {peer.name})"
                )

    @contextmanager
    def request(
        self, key: str | bytes | None = None, client_addr: str | bytes | None = None
    ) -> Iterator[Peer]:
        """Context manager: pick a peer, report it done on exit (failed if an exception escapes)."""
        peer = self.pick(key=key, client_addr=client_addr)
        started = time.perf_counter()
        try:
            yield peer
        except BaseException:
            if not peer.reported:
                self.done(peer, failed=True, elapsed=time.perf_counter() - started)
            raise
        if not peer.reported:
            self.done(peer, elapsed=time.perf_counter() - started)


def _validate(servers: Sequence[Server], method: Method, name: str) -> None:
    if not isinstance(name, str):
        raise ConfigError(f"upstream name must be str, not {type(name).__name__}")
    if not servers:
        raise ConfigError(f"no servers in upstream {name!r}: give at least one server")
    seen: set[str] = set()
    for server in servers:
        if not isinstance(server, Server):
            raise ConfigError(f"expected lbkit.Server objects, got {server!r}")
        if server.address in seen:
            raise ConfigError(
                f"duplicate server {server.address!r} in upstream {name!r}: each address may "
                "appear once"
            )
        seen.add(server.address)
        if server.slow_start and not method.supports_backup:
            raise ConfigError(
                f'balancing method "{method.to_nginx().rstrip(";")}" does not support parameter '
                f'"slow_start" (server {server.address}): only round robin and least_conn do'
            )
        if server.backup and not method.supports_backup:
            raise ConfigError(
                f'balancing method "{method.to_nginx().rstrip(";")}" does not support parameter '
                f'"backup" (server {server.address}): only round robin and least_conn do'
            )
    if all(s.backup for s in servers):
        raise ConfigError(
            f"no servers in upstream {name!r}: every server is a backup; at least one must not be"
        )
