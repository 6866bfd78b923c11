"""nginx's ``sticky cookie | route | learn`` (``ngx_http_upstream_sticky_module.c``).

A sticky client carries a *server id* (sid): the server's ``route=`` if it has one, else
the lowercase hex MD5 of its address. :class:`StickyMethod` wraps a balancing method: a
request whose hint names a usable peer goes there, otherwise the wrapped method chooses.
The rules, read in nginx 1.31's source and replayed against recorded vectors
(``tests/golden/``):

- the hint names the first peer (configuration order) with that sid; it is not used if the
  peer was already tried by this request, is ``down`` (a *drained* peer still is usable),
  failed (``max_fails``) or full (``max_conns``);
- with round robin, a sticky peer whose ``current_weight <= -(total_weight - weight)`` is
  taken with no weight update; otherwise the whole smooth-round-robin pass runs and the
  sticky peer is then taken and gives back the total (``ngx_http_upstream_get_peer``);
- with other methods the sticky peer is taken as is; ``least_time`` looks the hint up
  itself, in each group it tries (backups too), and counts the sticky peer in flight.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Literal

import attrs

from lbkit.errors import ConfigError
from lbkit.upstream import (
    MAX_HASH_TRIES,
    Method,
    MethodKind,
    Peer,
    PeerGroup,
    PeerState,
    Picker,
    RequestState,
    ZoneSessions,
    take_peer,
)

__all__ = [
    "SAMESITE_VALUES",
    "LearnedSessions",
    "Sticky",
    "StickyMethod",
    "cookie_samesite",
    "cookie_time",
    "expand_variables",
    "server_id",
]

#: Longest ``route=`` nginx accepts (``route is longer than 32``).
MAX_ROUTE = 32
#: ``expires=max``: nginx's fixed date and max-age.
EXPIRES_MAX = "Thu, 31-Dec-37 23:55:55 GMT"
MAX_AGE_MAX = 315360000
#: Sessions a :class:`LearnedSessions` table holds at most (oldest dropped first).
MAX_LEARNED = 100_000

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def server_id(address: str, route: str | None = None) -> str:
    """nginx's sid of a server: its ``route=`` if set, else the MD5 hex of its address."""
    if route:
        return route
    return hashlib.md5(address.encode(), usedforsecurity=False).hexdigest()


def cookie_time(epoch: float) -> str:
    """nginx's ``ngx_http_cookie_time``: ``Mon, 30-Nov-26 06:55:36 GMT`` (two-digit year)."""
    t = time.gmtime(int(epoch))
    return (
        f"{_DAYS[t.tm_wday]}, {t.tm_mday:02d}-{_MONTHS[t.tm_mon - 1]}-{t.tm_year % 100:02d} "
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT"
    )


_VARIABLE = re.compile(r"\$(?:\{([A-Za-z0-9_]+)\}|([A-Za-z0-9_]+))")
#: ``samesite=`` values nginx accepts (any case; written as given).
SAMESITE_VALUES = ("strict", "lax", "none")


def expand_variables(text: str, variables: Mapping[str, str] | None) -> str:
    """``text`` with each ``$name`` or ``${name}`` replaced by its value in ``variables``
    (keyed ``$name`` or ``name``; a missing variable is empty, as nginx's is)."""
    if "$" not in text:
        return text
    values = variables or {}

    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        return values.get(f"${name}", values.get(name, ""))

    return _VARIABLE.sub(value, text)


def cookie_samesite(samesite: str | None, variables: Mapping[str, str] | None) -> str:
    """The ``samesite`` attribute nginx writes (``ngx_http_upstream_sticky_cookie_insert``):
    a literal as configured (nginx checked it at load time, its case kept); with variables,
    their value if it is strict, lax or none in any case, nothing if it is empty, else
    ``strict``."""
    if not samesite:
        return ""
    if "$" not in samesite:
        return samesite
    value = expand_variables(samesite, variables)
    if value and value.lower() not in SAMESITE_VALUES:
        return "strict"
    return value


def _check_routes(routes: Mapping[str, str]) -> Mapping[str, str]:
    for address, route in routes.items():
        if not route:
            raise ConfigError(f"route is empty for server {address!r}")
        if len(route.encode()) > MAX_ROUTE:
            raise ConfigError(
                f"route {route[:80]!r} of server {address!r} is longer than {MAX_ROUTE} bytes"
            )
    return dict(routes)


@attrs.frozen(slots=True)
class Sticky:
    """The configuration of nginx's ``sticky`` directive.

    ``mode`` is ``"cookie"`` (``cookie`` is the cookie's name), ``"route"`` (``variables``
    are the route variables, first non-empty wins) or ``"learn"`` (``create`` and
    ``variables``, the lookup variables, name where the session id is found; ``zone`` and
    ``timeout`` in seconds). ``expires`` is seconds, ``-1`` for ``expires=max``, ``None``
    for a session cookie. ``routes`` maps server addresses to their ``route=``.
    """

    mode: Literal["cookie", "route", "learn"]
    cookie: str = ""
    expires: int | None = None
    domain: str | None = None
    httponly: bool = False
    samesite: str | None = None
    secure: bool = False
    path: str | None = None
    variables: tuple[str, ...] = ()
    create: tuple[str, ...] = ()
    zone: str | None = None
    zone_size: int | None = None
    timeout: int = 600
    header: bool = False
    sync: bool = False
    routes: Mapping[str, str] = attrs.field(factory=dict, converter=_check_routes)

    def sid(self, address: str) -> str:
        """The server id of the server at ``address``."""
        return server_id(address, self.routes.get(address))

    def set_cookie(
        self,
        peer: Peer | PeerState | str,
        now: float | None = None,
        variables: Mapping[str, str] | None = None,
    ) -> str | None:
        """The ``Set-Cookie`` value nginx adds for a response from ``peer`` (cookie mode;
        ``None`` otherwise). ``now`` is the wall-clock time (default :func:`time.time`);
        ``variables`` the values of the nginx variables ``domain=`` and ``samesite=`` use."""
        if self.mode != "cookie":
            return None
        address = peer if isinstance(peer, str) else peer.name
        parts = [f"{self.cookie}={self.sid(address)}"]
        if self.expires == -1:
            parts.append(f"expires={EXPIRES_MAX}; max-age={MAX_AGE_MAX}")
        elif self.expires is not None:
            when = time.time() if now is None else now
            parts.append(f"expires={cookie_time(when + self.expires)}; max-age={self.expires}")
        domain = expand_variables(self.domain or "", variables)
        if domain:
            parts.append(f"domain={domain}")
        if self.httponly:
            parts.append("httponly")
        if self.secure:
            parts.append("secure")
        samesite = cookie_samesite(self.samesite, variables)
        if samesite:
            parts.append(f"samesite={samesite}")
        if self.path:
            parts.append(f"path={self.path}")
        return "; ".join(parts)

    def first_value(self, names: tuple[str, ...], values: Mapping[str, str]) -> str | None:
        """The first of ``names`` (``$var`` or ``var``) found non-empty in ``values``."""
        for name in names:
            value = values.get(name) or values.get(name.lstrip("$"))
            if value:
                return value
        return None


class LearnedSessions:
    """``sticky learn``'s table: session id -> server id, expiring ``timeout`` seconds after
    last use, at most ``capacity`` entries (least recently used dropped). Thread-safe.

    Keys are MD5 digests of session ids, as nginx stores them. A zone
    (:class:`~lbkit.upstream.Zone`) gives every process of the host the same table.
    """

    def __init__(
        self,
        timeout: int = 600,
        capacity: int = MAX_LEARNED,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if capacity < 1:
            raise ConfigError(f"learned sessions capacity {capacity} must be >= 1")
        self.timeout = timeout
        self.capacity = capacity
        self._clock = clock
        self._lock = threading.Lock()
        self._table: OrderedDict[bytes, tuple[str, float]] = OrderedDict()

    @staticmethod
    def _key(session: str) -> bytes:
        return hashlib.md5(session.encode(), usedforsecurity=False).digest()

    def lookup(self, session: str) -> str | None:
        """The server id learned for ``session``, refreshing it; ``None`` if unknown/expired."""
        key = self._key(session)
        now = self._clock()
        with self._lock:
            found = self._table.get(key)
            if found is None:
                return None
            if found[1] <= now:
                del self._table[key]
                return None
            self._table[key] = (found[0], now + self.timeout)
            self._table.move_to_end(key)
            return found[0]

    def learn(self, session: str, sid: str, *, only_known: bool = False) -> None:
        """Remember (or refresh, or move) ``session`` as served by the server ``sid``;
        with ``only_known``, only a session already in the table (nginx's lookup side)."""
        key = self._key(session)
        with self._lock:
            if only_known and key not in self._table:
                return
            self._table[key] = (sid, self._clock() + self.timeout)
            self._table.move_to_end(key)
            while len(self._table) > self.capacity:
                self._table.popitem(last=False)

    def __len__(self) -> int:
        return len(self._table)


def _usable(tried: int, peer: PeerState, now: int) -> bool:
    """nginx's ``ngx_http_upstream_get_rr_peer_by_sid`` checks: not tried (``tried`` is the
    request's mask), not down (the drain bit aside), not failed, not full."""
    return not (
        tried >> peer.index & 1
        or (peer.down and not peer.draining)
        or peer.is_failed(now)
        or peer.is_full()
    )


def _hinted_peer(
    by_sid: Mapping[int, Mapping[str, PeerState]], request: RequestState, now: int
) -> PeerState | None:
    """The peer of ``request``'s group its sticky hint names, if usable (nginx's
    ``ngx_http_upstream_get_rr_peer_by_sid``: only the first peer with that sid counts)."""
    hint = request.sticky
    if hint is None:
        return None
    peer = by_sid.get(id(request.group), {}).get(hint)
    return peer if peer is not None and _usable(request.tried, peer, now) else None


def _round_robin_with_hint(request: RequestState, sticky: PeerState, now: int) -> PeerState:
    """``ngx_http_upstream_get_peer`` with a sticky peer (see the module docstring)."""
    group = request.group
    if sticky.current_weight <= -(group.total_weight - sticky.weight):
        return take_peer(request, sticky, now)
    total = 0
    tried = request.tried
    for peer in group.peers:
        if tried >> peer.index & 1 or peer.blocked_until >= now:
            continue
        peer.current_weight += peer.effective_weight
        total += peer.effective_weight
        if peer.effective_weight < peer.weight:
            peer.effective_weight += 1
    sticky.current_weight -= total
    return take_peer(request, sticky, now)


def _take_single_with_hint(sticky: PeerState) -> PeerState:
    """Round robin's one-peer path with a usable sticky peer: one more connection, no
    tried mark, no ``checked`` update (and, unlike the plain path, a drained peer)."""
    sticky.conns += 1
    sticky.refresh()
    return sticky


def _full_path(key: bytes, addr: bytes, now: int) -> None:
    """The ``first`` of a wrapped picker without a request-free answer."""


def hands_to_round_robin(kind: str, request: RequestState) -> bool:
    """Whether nginx's ``kind`` method passes this request to round robin before it looks
    at the sticky hint: always for round robin; hash with an empty key, hash, ip_hash and
    random with fewer than 2 peers or after :data:`~lbkit.upstream.MAX_HASH_TRIES` probes;
    least_conn and least_time for a single peer. Round robin then uses the hint its way
    (with the smooth-round-robin update); the others take the sticky peer as it is."""
    group = request.group
    if kind == "round_robin":
        return True
    if kind in ("hash", "ip_hash", "random"):
        return (
            request.hash_tries > MAX_HASH_TRIES
            or len(group.peers) < 2
            or (kind == "hash" and not request.key)
        )
    return group.single


@attrs.frozen(slots=True)
class _StickyPicker:
    inner: Picker
    sticky: Sticky
    kind: str
    #: sid -> first peer with it, per group (keyed by the group's id()).
    by_sid: Mapping[int, Mapping[str, PeerState]]
    #: A pick without a hint is the wrapped method's: its request-free answer for a first
    #: attempt (``None``: take the full path), and whether its ``begin`` does anything.
    first: Callable[[bytes, bytes, int], PeerState | None]
    begins: bool

    def begin(self, request: RequestState) -> None:
        self.inner.begin(request)

    def sync(self) -> None:
        """Bring the wrapped picker's lagging peer state up to date (its fast path)."""
        sync = getattr(self.inner, "sync", None)
        if sync is not None:
            sync()

    def released(self, state: PeerState) -> None:
        """Tell the wrapped picker that a connection of ``state`` ended."""
        released = getattr(self.inner, "released", None)
        if released is not None:
            released(state)

    def get(self, request: RequestState, now: int) -> PeerState | None:
        hint = request.sticky
        if hint is None:
            return self.inner.get(request, now)
        self.sync()
        while True:
            group = request.group
            peer = self.by_sid.get(id(group), {}).get(hint)
            if peer is not None and not _usable(request.tried, peer, now):
                peer = None
            if peer is not None:
                if not hands_to_round_robin(self.kind, request):
                    return take_peer(request, peer, now)
                if group.single:
                    return _take_single_with_hint(peer)
                return _round_robin_with_hint(request, peer, now)
            if not self._hint_waits_in_backup(request, hint, now):
                return self.inner.get(request, now)
            # Nothing here can be taken: nginx moves to the backup group, where it looks
            # the hint up again.
            request.group = group.backup  # type: ignore[assignment]
            request.tried = 0

    def _hint_waits_in_backup(self, request: RequestState, hint: str, now: int) -> bool:
        """The request's group has no peer to take and its backup group a usable sticky one."""
        backup = request.group.backup
        if backup is None:
            return False
        peer = self.by_sid.get(id(backup), {}).get(hint)
        if peer is None or not _usable(0, peer, now):
            return False
        tried = request.tried
        return not any(
            not tried >> p.index & 1 and p.blocked_until < now for p in request.group.peers
        )


@attrs.define(slots=True)
class StickyMethod:
    """A balancing method with nginx's ``sticky``: pass the client's server id as
    ``Upstream.pick(sticky=...)`` (get it with :meth:`hint`), and answer with
    :meth:`response`'s ``Set-Cookie`` (cookie mode) or let it learn the session (learn).

    ``sessions`` is the learn table (in-process unless a zone provides a shared one).
    """

    inner: Method
    sticky: Sticky
    sessions: LearnedSessions | ZoneSessions = attrs.field(eq=False)

    @sessions.default
    def _sessions(self) -> LearnedSessions:
        return LearnedSessions(self.sticky.timeout)

    @property
    def kind(self) -> MethodKind:
        """The wrapped method's kind."""
        return self.inner.kind

    #: As the wrapped method.
    supports_backup: bool = attrs.field(init=False, eq=False)
    #: As the wrapped method.
    needs_key: bool = attrs.field(init=False, eq=False)
    #: As the wrapped method.
    needs_client_addr: bool = attrs.field(init=False, eq=False)

    @supports_backup.default
    def _supports_backup(self) -> bool:
        return self.inner.supports_backup

    @needs_key.default
    def _needs_key(self) -> bool:
        return self.inner.needs_key

    @needs_client_addr.default
    def _needs_client_addr(self) -> bool:
        return self.inner.needs_client_addr

    def bind(self, primary: PeerGroup) -> Picker:
        """The wrapped method's picker with the sticky lookup in front (or, for a picker
        that looks hints up itself, such as least_time's, given to it)."""
        by_sid: dict[int, dict[str, PeerState]] = {}
        group: PeerGroup | None = primary
        while group is not None:
            table: dict[str, PeerState] = {}
            for peer in group.peers:
                table.setdefault(self.sticky.sid(peer.name), peer)
            by_sid[id(group)] = table
            group = group.backup
        inner = self.inner.bind(primary)
        use_hints = getattr(inner, "use_hints", None)
        if use_hints is not None:  # least_time looks the hint up itself (in-flight account)
            use_hints(lambda request, now: _hinted_peer(by_sid, request, now))
            return inner
        return _StickyPicker(
            inner,
            self.sticky,
            self.inner.kind,
            by_sid,
            getattr(inner, "first", _full_path),
            getattr(inner, "begins", True),
        )

    def hint(
        self, cookies: Mapping[str, str] | None = None, variables: Mapping[str, str] | None = None
    ) -> str | None:
        """The server id a request asks for: its cookie (cookie mode), the first non-empty
        route variable (route), or the server learned for its first non-empty lookup
        variable (learn). ``cookies`` are the request's cookies by name; ``variables`` the
        values of the nginx variables named in the directive (``$route_cookie``...)."""
        s = self.sticky
        if s.mode == "cookie":
            return (cookies or {}).get(s.cookie) or None
        if s.mode == "route":
            return s.first_value(s.variables, variables or {})
        session = s.first_value(s.variables, variables or {})
        return None if session is None else self.sessions.lookup(session)

    def response(
        self,
        peer: Peer | PeerState,
        variables: Mapping[str, str] | None = None,
        now: float | None = None,
    ) -> str | None:
        """Account for a response from ``peer`` that was passed on (call it when the
        attempt ends, even if the body broke off: nginx ends such an attempt as a success;
        not for an attempt that is retried): the ``Set-Cookie`` value to send in cookie
        mode (``variables`` give ``domain=``/``samesite=`` their values), or, in learn mode
        without the ``header`` flag, learn the session (see :meth:`learn`)."""
        s = self.sticky
        if s.mode == "cookie":
            return s.set_cookie(peer, now, variables)
        if s.mode == "learn" and not s.header:
            self.learn(peer, variables)
        return None

    def header(self, peer: Peer | PeerState, variables: Mapping[str, str] | None = None) -> None:
        """The upstream response's header arrived and is passed on (not retried): with
        ``sticky learn ... header``, learn the session now (see :meth:`learn`), as nginx
        does on ``NGX_HTTP_UPSTREAM_NOTIFY_HEADER``, before the body is sent. Does nothing
        otherwise."""
        if self.sticky.mode == "learn" and self.sticky.header:
            self.learn(peer, variables)

    def learn(self, peer: Peer | PeerState, variables: Mapping[str, str] | None = None) -> None:
        """nginx's ``ngx_http_upstream_sticky_learn_peer``: the first non-empty ``create=``
        variable (``$upstream_cookie_sid``) is stored, or refreshed and moved, bound to
        ``peer``; without one, the request's lookup session is refreshed and moved to
        ``peer`` if the table knows it (never created)."""
        s = self.sticky
        values = variables or {}
        sid = s.sid(peer.name)
        created = s.first_value(s.create, values)
        if created is not None:
            self.sessions.learn(created, sid)
            return
        asked = s.first_value(s.variables, values)
        if asked is not None:
            self.sessions.learn(asked, sid, only_known=True)
