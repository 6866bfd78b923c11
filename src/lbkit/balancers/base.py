"""What every balancing method provides: a frozen config object that binds to peer groups."""

from __future__ import annotations

from typing import Protocol

from lbkit.peer import PeerGroup, PeerState, RequestState

__all__ = ["Method", "Picker"]


class Picker(Protocol):
    """The runtime half of a method, bound to one upstream's peer groups."""

    def begin(self, request: RequestState) -> None:
        """Prepare per-request state (hash position, client address...) before the first get."""

    def get(self, request: RequestState, now: int) -> PeerState | None:
        """Choose the next peer for ``request``, or ``None`` when nginx would say NGX_BUSY."""


class Method(Protocol):
    """A balancing method's configuration (``least_conn``, ``hash $uri consistent``...)."""

    #: Whether ``server ... backup`` is allowed (nginx refuses it for hash, ip_hash, random).
    supports_backup: bool
    #: Whether pick() needs ``key=`` (hash methods).
    needs_key: bool
    #: Whether pick() needs ``client_addr=`` (ip_hash).
    needs_client_addr: bool

    def bind(self, primary: PeerGroup) -> Picker:
        """Return a picker for these peers (built once per upstream)."""

    def to_nginx(self) -> str:
        """The nginx directive for this method, or ``""`` for the default round robin."""
