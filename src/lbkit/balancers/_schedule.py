"""nginx's smooth weighted round robin as a precomputed cycle: O(1) per pick.

With static weights and every peer healthy, nginx's choices repeat with a period equal to
the total weight (after a full cycle every current weight is back to 0). This module
computes one period in O(total_weight * distinct_weights * log n) and then answers each
pick by indexing it, instead of nginx's O(n) scan per pick. It gives exactly the sequence
:class:`~lbkit.Upstream` (and nginx) produce for a fresh upstream without failures.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Hashable, Iterable, Sequence
from typing import Generic, TypeVar

from lbkit.errors import ConfigError

__all__ = ["SmoothSchedule", "smooth_wrr_cycle", "smooth_wrr_from"]

N = TypeVar("N", bound=Hashable)

#: Largest period precomputed (total weight); above it, use Upstream's O(n) algorithm.
MAX_PERIOD = 10_000_000


def smooth_wrr_cycle(weights: Sequence[int]) -> list[int]:
    """Indexes nginx's smooth WRR picks over one period (``sum(weights)`` picks).

    Before pick ``t`` (0-based) peer ``i`` holds ``(t + 1) * w_i - W * c_i`` where ``c_i``
    counts its earlier picks; the largest wins, the lowest index on ties. Peers of equal
    weight grow alike, so within a weight class the one with the fewest picks (then the
    lowest index) leads: one heap per class, and only the class leaders are compared.
    """
    for w in weights:
        if isinstance(w, bool) or not isinstance(w, int) or w < 1:
            raise ConfigError(f"invalid weight {w!r}: expected an integer >= 1")
    total = sum(weights)
    if not weights:
        return []
    if total > MAX_PERIOD:
        raise ConfigError(f"total weight {total} exceeds {MAX_PERIOD}: schedule too long")
    return smooth_wrr_from(weights, [0] * len(weights))


def smooth_wrr_from(weights: Sequence[int], start: Sequence[int]) -> list[int]:
    """Indexes of nginx's next ``sum(weights)`` smooth-WRR picks from current weights
    ``start``, every peer available and at full effective weight.

    Before pick ``t`` peer ``i`` holds ``start[i] + (t + 1) * w_i - W * c_i`` (``c_i``: its
    earlier picks); the largest wins, the lowest index on ties. Within a weight class the
    leader is the smallest ``(W * c_i - start[i], i)``: one heap per class.
    """
    total = sum(weights)
    n = len(weights)
    # A heap entry (key, i) is the one int key * n + i: same order, and no tuple per step.
    classes: dict[int, list[int]] = {}
    for i, w in enumerate(weights):
        classes.setdefault(w, []).append(-start[i] * n + i)
    for heap in classes.values():
        heapq.heapify(heap)
    items = list(classes.items())
    step = total * n
    order: list[int] = []
    for t in range(1, total + 1):
        best_value: int | None = None
        best_entry = 0
        best_heap: list[int] = []
        for w, heap in items:
            entry = heap[0]
            value = t * w - entry // n
            if (
                best_value is None
                or value > best_value
                or (value == best_value and entry % n < best_entry % n)
            ):
                best_value, best_entry, best_heap = value, entry, heap
        heapq.heapreplace(best_heap, best_entry + step)
        order.append(best_entry % n)
    return order


class SmoothSchedule(Generic[N]):
    """An O(1)-per-pick iterator over nginx's smooth weighted round-robin order.

    For large groups with static weights and no failures (e.g. to plan or simulate traffic);
    use :class:`~lbkit.Upstream` when passive health, ``down`` or ``max_conns`` matter.

    Thread safety: threads may share one schedule; each ``next()`` is one step of a C-level
    ``itertools.cycle`` (atomic under the GIL), so no pick is lost or repeated out of turn.
    """

    __slots__ = ("_cycle", "_it", "_nodes")

    def __init__(self, nodes: Iterable[N], weights: Sequence[int] | None = None) -> None:
        self._nodes = list(nodes)
        if not self._nodes:
            raise ConfigError("a schedule needs at least one node")
        w = [1] * len(self._nodes) if weights is None else list(weights)
        if len(w) != len(self._nodes):
            raise ConfigError(f"{len(w)} weights for {len(self._nodes)} nodes")
        self._cycle = [self._nodes[i] for i in smooth_wrr_cycle(w)]
        self._it = itertools.cycle(self._cycle)

    def next(self) -> N:
        """The next node in nginx's order."""
        return next(self._it)

    def take(self, count: int) -> list[N]:
        """The next ``count`` nodes."""
        return list(itertools.islice(self._it, count))

    @property
    def period(self) -> int:
        """Picks after which the order repeats (the total weight)."""
        return len(self._cycle)
