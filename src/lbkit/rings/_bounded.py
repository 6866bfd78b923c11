"""Consistent hashing with bounded loads (Mirrokni, Thorup, Zadimoghaddam, 2018).

A key goes to the first node clockwise from its ring position whose current load is below
``ceil(c * (total_load + 1) * weight / total_weight)``: no node takes more than ``c`` times
its fair share of the requests in flight, and keys still stick to their node while it has
room. HAProxy calls ``c`` ``hash-balance-factor`` (there in percent: 125 means c=1.25).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import Generic, TypeVar

from lbkit.errors import ConfigError, EmptyRingError, UnknownNodeError, UsageError
from lbkit.rings._ketama import Flavor, Ketama

__all__ = ["BoundedLoad"]

N = TypeVar("N", bound=Hashable)


class BoundedLoad(Generic[N]):
    """A ketama ring whose nodes never exceed ``c`` times their fair share of the load.

    ``acquire(key)`` returns the node for a new request and counts it in flight;
    ``release(node)`` ends it.

    Thread safety: every method takes one lock, so acquisitions, releases and membership
    changes from any number of threads are applied one at a time; the ring inside swaps its
    tables atomically (see :class:`Ketama`).
    """

    def __init__(
        self,
        nodes: Iterable[N] = (),
        weights: Mapping[N, int] | Sequence[int] | None = None,
        c: float = 1.25,
        flavor: Flavor = "fast",
    ) -> None:
        if isinstance(c, bool) or not isinstance(c, (int, float)) or not c > 1.0 or math.isinf(c):
            raise ConfigError(f"invalid balance factor c={c!r}: expected a number > 1.0")
        self.c = float(c)
        self.ring: Ketama[N] = Ketama(nodes, weights, flavor=flavor)
        self._loads: dict[N, int] = dict.fromkeys(self.ring.nodes, 0)
        self._total = 0
        self._lock = threading.Lock()

    def capacity(self, node: N) -> int:
        """The most requests ``node`` may hold at once if one more arrives now."""
        weights = self.ring.weights
        if node not in weights:
            raise UnknownNodeError(f"capacity({node!r}): no such node")
        share = weights[node] / sum(weights.values())
        return math.ceil(self.c * (self._total + 1) * share)

    def acquire(self, key: str | bytes) -> N:
        """The node for one new request with ``key``, counted in flight until released."""
        with self._lock:
            if not self._loads:
                raise EmptyRingError("acquire on an empty ring: add a node first")
            weights = self.ring.weights
            total_weight = sum(weights.values())
            fair = self.c * (self._total + 1) / total_weight
            seen: set[N] = set()
            for node in self.ring.walk(key):
                if node in seen:
                    continue
                seen.add(node)
                if self._loads[node] < math.ceil(fair * weights[node]):
                    self._loads[node] += 1
                    self._total += 1
                    return node
                if len(seen) == len(self._loads):
                    break
        raise AssertionError("no node under its cap: impossible with c > 1")  # pragma: no cover

    def release(self, node: N) -> None:
        """One request on ``node`` ended."""
        with self._lock:
            if node not in self._loads:
                raise UnknownNodeError(f"release({node!r}): no such node")
            if self._loads[node] <= 0:
                raise UsageError(f"release({node!r}) without a matching acquire")
            self._loads[node] -= 1
            self._total -= 1

    def lookup(self, key: str | bytes) -> N:
        """The node ``key`` would go to now, without counting a request."""
        node = self.acquire(key)
        self.release(node)
        return node

    def add(self, node: N, weight: int = 1) -> None:
        """Add a node (with no load)."""
        with self._lock:
            self.ring.add(node, weight)
            self._loads[node] = 0

    def remove(self, node: N) -> None:
        """Remove a node; its in-flight requests are forgotten (UnknownNodeError if absent)."""
        with self._lock:
            self.ring.remove(node)
            self._total -= self._loads.pop(node)

    @property
    def loads(self) -> dict[N, int]:
        """Requests in flight per node."""
        with self._lock:
            return dict(self._loads)

    @property
    def total(self) -> int:
        """Requests in flight overall."""
        return self._total
