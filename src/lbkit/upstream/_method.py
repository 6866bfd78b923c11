"""What every balancing method provides to an upstream: a frozen config that binds to peers.

The protocols live in the model so that the model never imports a method: methods
(:mod:`lbkit.balancers`) depend on the model, not the other way round.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, Protocol

from lbkit.errors import UsageError
from lbkit.upstream._peers import PeerGroup, PeerState, RequestState

__all__ = ["Method", "MethodKind", "Picker", "default_method", "set_default_method"]

#: The balancing methods nginx offers, by the name of their directive.
MethodKind = Literal["round_robin", "least_conn", "ip_hash", "hash", "random"]


class Picker(Protocol):
    """The runtime half of a method, bound to one upstream's peer groups."""

    def begin(self, request: RequestState) -> None:
        """Prepare per-request state (hash position, client address...) before the first get."""

    def get(self, request: RequestState, now: int) -> PeerState | None:
        """Choose the next peer for ``request``, or ``None`` when nginx would say NGX_BUSY."""


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
