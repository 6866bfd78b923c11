"""Resharding plans: which keys change node when a ring's membership changes."""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import Generic, TypeVar

import attrs

from lbkit.rings._ketama import Flavor, Ketama

__all__ = ["Move", "ReshardPlan", "plan_reshard"]

N = TypeVar("N", bound=Hashable)


@attrs.frozen(slots=True)
class Move(Generic[N]):
    """One key that changes node."""

    key: str | bytes
    source: N
    target: N


@attrs.frozen(slots=True)
class ReshardPlan(Generic[N]):
    """The moves from ``old`` to ``new`` membership for the keys examined."""

    moves: tuple[Move[N], ...]
    total_keys: int

    @property
    def moved_fraction(self) -> float:
        """Fraction of the examined keys that move."""
        return len(self.moves) / self.total_keys if self.total_keys else 0.0

    def by_route(self) -> Counter[tuple[N, N]]:
        """How many keys move along each (source, target) pair."""
        return Counter((m.source, m.target) for m in self.moves)


def plan_reshard(
    old_nodes: Iterable[N],
    new_nodes: Iterable[N],
    keys: Iterable[str | bytes],
    *,
    old_weights: Mapping[N, int] | Sequence[int] | None = None,
    new_weights: Mapping[N, int] | Sequence[int] | None = None,
    flavor: Flavor = "fast",
) -> ReshardPlan[N]:
    """Compare two memberships of a ketama ring and list the keys that change node."""
    key_list = list(keys)
    before = Ketama(old_nodes, old_weights, flavor=flavor).lookup_many(key_list)
    after = Ketama(new_nodes, new_weights, flavor=flavor).lookup_many(key_list)
    moves = tuple(Move(k, a, b) for k, a, b in zip(key_list, before, after, strict=True) if a != b)
    return ReshardPlan(moves, len(key_list))
