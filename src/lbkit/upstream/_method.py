"""What every balancing method provides to an upstream: a frozen config that binds to peers.

The protocols live in the model so that the model never imports a method: methods
(:mod:`lbkit.balancers`) depend on the model, not the other way round.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, Protocol, runtime_checkable

from lbkit.errors import UsageError
from lbkit.upstream._peers import PeerGroup, PeerState, RequestState, TimedPeer

__all__ = [
    "AttemptOutcome",
    "AttemptTimer",
    "Method",
    "MethodKind",
    "Picker",
    "default_method",
    "set_default_method",
]

#: The balancing methods nginx offers, by the name of their directive.
MethodKind = Literal["round_robin", "least_conn", "least_time", "ip_hash", "hash", "random"]

#: How an attempt ended, as an :class:`AttemptTimer` is told: a success (nginx frees the
#: peer with state 0), a failure (``NGX_PEER_FAILED``), passed on to the next peer without
#: a failure (``NGX_PEER_NEXT``), or abandoned (given back: the client went away).
AttemptOutcome = Literal["ok", "failed", "next", "abandoned"]


class Picker(Protocol):
    """The runtime half of a method, bound to one upstream's peer groups.

    Optional, found by name: ``first(key, addr, now)`` answers the first attempt of a
    plain :meth:`~lbkit.Upstream.pick` from the primary group without request state (take
    the peer as :func:`~lbkit.upstream.take_first` does, or return ``None`` for the full
    ``begin``/``get`` path, having changed nothing, or having made steps of that path that
    its ``get`` then leaves out: the upstream calls ``get`` for the request it builds next,
    under the same lock, as ``random`` needs after 21 draws); ``sync()`` writes back peer
    fields such a fast path lets lag; ``released(state)`` hears of every connection of a
    peer ended by :meth:`~lbkit.Upstream.done` or :meth:`~lbkit.Upstream.give_back` (read
    at each end: ``released = None`` while the picker needs no telling);
    ``publish_first(publish)`` is called once with a function the picker calls with the
    callable the upstream should use as ``first`` from then on (least_conn: its idle
    order's ``first`` or its buckets', so that a pick makes one call);
    ``begins = False`` says ``begin`` does nothing. A picker that times attempts
    (:class:`AttemptTimer`) has ``first_timed(now, seconds)`` instead of ``first``: the
    same answer, given the clock's reading too (its peer is then a
    :class:`~lbkit.upstream.TimedPeer` without request state, ended through the timer).
    """

    def begin(self, request: RequestState) -> None:
        """Prepare per-request state (hash position, client address...) before the first get."""

    def get(self, request: RequestState, now: int) -> PeerState | None:
        """Choose the next peer for ``request``, or ``None`` when nginx would say NGX_BUSY."""


@runtime_checkable
class AttemptTimer(Protocol):
    """A picker that also times attempts (``least_time``): the upstream tells it when an
    attempt starts, when its response header arrives and how it ends, under its lock.

    Times given are seconds (``None``: measure them on the upstream's clock since the
    attempt started).
    """

    def set_clock(self, clock: Callable[[], float]) -> None:
        """Use the upstream's clock (seconds) for milliseconds and measured times."""

    def attempt_started(self, peer: TimedPeer) -> None:
        """``peer`` was just chosen (by this picker's ``get``)."""

    def header_arrived(self, peer: TimedPeer, elapsed: float | None) -> None:
        """The response header from ``peer`` arrived (nginx's notify HEADER)."""

    def attempt_ended(
        self,
        peer: TimedPeer,
        outcome: AttemptOutcome,
        elapsed: float | None,
        header_time: float | None,
    ) -> None:
        """The attempt ended (nginx's peer free), before the model's own accounting."""


class Method(Protocol):
    """A balancing method's configuration (``least_conn``, ``hash $uri consistent``...)."""

    @property
    def kind(self) -> MethodKind:
        """Which of nginx's methods this is."""

    #: Whether ``server ... backup`` and ``slow_start`` are allowed (nginx refuses them for
    #: hash, ip_hash and random).
    supports_backup: bool
    #: Whether pick() needs ``key=`` (hash methods).
    needs_key: bool
    #: Whether pick() needs ``client_addr=`` (ip_hash).
    needs_client_addr: bool

    def bind(self, primary: PeerGroup) -> Picker:
        """Return a picker for these peers (built once per membership of an upstream)."""


_default: list[Callable[[], Method]] = []


def set_default_method(factory: Callable[[], Method]) -> None:
    """Register the method an :class:`~lbkit.Upstream` uses when given none (round robin:
    :mod:`lbkit.balancers` registers it when imported, so the model imports no method)."""
    _default[:] = [factory]


def default_method() -> Method:
    """A new instance of the registered default method."""
    if not _default:  # pragma: no cover - lbkit/__init__ imports lbkit.balancers first
        raise UsageError("no default balancing method: import lbkit (or lbkit.balancers)")
    return _default[0]()
