"""Latency-aware choices over plain nodes: least_time and power of two choices.

``least_time`` follows nginx Plus's ``least_time header|last_byte [inflight]``: the peer
with the lowest ``average time * (active requests + 1) / weight`` wins (ties go round
robin). ``PowerOfTwo`` compares two random peers by in-flight requests per weight, or by the
same latency cost when trackers are given (the "P2C + peak EWMA" of Finagle and Linkerd).
"""

from __future__ import annotations

import math
import random as _random
import threading
import time
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from typing import Generic, Literal, TypeVar

from lbkit.errors import ConfigError, EmptyRingError, UnknownNodeError, UsageError
from lbkit.latency._ewma import Ewma, PeakEwma, check_sample
from lbkit.rings import node_weights

__all__ = ["LeastTime", "PowerOfTwo"]

N = TypeVar("N", bound=Hashable)


class _LatencyBalancer(Generic[N]):
    """Nodes, their weights, requests in flight and one tracker each, behind one lock.

    Thread safety: ``pick()`` and ``done()`` take the lock, so any number of threads may
    share one balancer.
    """

    def __init__(
        self,
        nodes: Iterable[N],
        weights: Mapping[N, int] | Sequence[int] | None,
        tracker: Callable[[], Ewma],
        clock: Callable[[], float],
    ) -> None:
        node_list = list(nodes)
        if not node_list:
            raise EmptyRingError("no nodes: give at least one")
        self._weights = node_weights(node_list, weights)
        self.nodes = node_list
        self.inflight: dict[N, int] = dict.fromkeys(node_list, 0)
        self.trackers: dict[N, Ewma] = {n: tracker() for n in node_list}
        self._clock = clock
        self._lock = threading.Lock()

    def cost(self, node: N, now: float | None = None) -> float:
        """``(average time + 1 µs) * (in flight + 1) / weight``: lower is better."""
        self._check_node(node)
        t = self.trackers[node].get(self._clock() if now is None else now)
        return (t + 1e-6) * (self.inflight[node] + 1) / self._weights[node]

    def _check_node(self, node: N) -> None:
        if node not in self.inflight:
            known = ", ".join(map(repr, self.nodes[:10]))
            raise UnknownNodeError(f"no node {node!r} (nodes: {known})")

    def done(self, node: N, elapsed: float | None = None) -> None:
        """A request on ``node`` ended; ``elapsed`` seconds feeds its tracker."""
        if elapsed is not None:
            check_sample(elapsed)
        with self._lock:
            self._check_node(node)
            if self.inflight[node] <= 0:
                raise UsageError(f"done({node!r}) without a matching pick")
            self.inflight[node] -= 1
            if elapsed is not None:
                self.trackers[node].observe(elapsed, self._clock())


class LeastTime(_LatencyBalancer[N]):
    """nginx Plus ``least_time``: lowest average response time, weighed by load and weight.

    ``mode`` records which time the caller reports (``"header"``: time to the response
    header; ``"last_byte"``: to the end of the body); ``inflight=True`` also counts requests
    still running (``least_time ... inflight``): a node whose oldest running request has
    taken longer than its average is judged by that longer time.
    """

    def __init__(
        self,
        nodes: Iterable[N],
        weights: Mapping[N, int] | Sequence[int] | None = None,
        *,
        mode: Literal["header", "last_byte"] = "header",
        inflight: bool = False,
        peak: bool = False,
        decay: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if mode not in ("header", "last_byte"):
            raise ConfigError(f"invalid least_time mode {mode!r}: expected header or last_byte")
        if isinstance(decay, bool) or not isinstance(decay, (int, float)) or not decay > 0:
            raise ConfigError(f"invalid decay {decay!r}: expected seconds > 0")
        kind = PeakEwma if peak else Ewma
        super().__init__(nodes, weights, lambda: kind(decay), clock)
        self.mode = mode
        self.count_inflight = inflight
        self._rr = 0
        self._started: dict[N, list[float]] = {n: [] for n in self.nodes}

    def cost(self, node: N, now: float | None = None) -> float:
        """Like the base cost, with running requests' elapsed time when ``inflight``."""
        self._check_node(node)
        now = self._clock() if now is None else now
        t = self.trackers[node].get(now)
        started = self._started[node]
        if self.count_inflight and started:
            t = max(t, now - started[0])
        return (t + 1e-6) * (self.inflight[node] + 1) / self._weights[node]

    def done(self, node: N, elapsed: float | None = None) -> None:
        """A request on ``node`` ended; ``elapsed`` seconds feeds its tracker."""
        super().done(node, elapsed)
        with self._lock:
            if self._started[node]:
                self._started[node].pop(0)

    def pick(self) -> N:
        """The node with the lowest cost; ties rotate."""
        with self._lock:
            now = self._clock()
            n = len(self.nodes)
            best: N | None = None
            best_cost = math.inf
            for i in range(n):
                node = self.nodes[(self._rr + i) % n]
                c = self.cost(node, now)
                if c < best_cost:
                    best, best_cost = node, c
            self._rr = (self._rr + 1) % n
            assert best is not None
            self.inflight[best] += 1
            self._started[best].append(now)
            return best


class PowerOfTwo(_LatencyBalancer[N]):
    """Power of two choices: draw two distinct nodes (by weight), keep the cheaper one.

    With ``latency=False`` the comparison is in-flight requests per weight (least request);
    with ``latency=True`` it is the least_time cost using peak-EWMA trackers.
    """

    def __init__(
        self,
        nodes: Iterable[N],
        weights: Mapping[N, int] | Sequence[int] | None = None,
        *,
        latency: bool = False,
        decay: float = 10.0,
        seed: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(nodes, weights, lambda: PeakEwma(decay), clock)
        self.latency = latency
        self._rng = _random.Random(seed)
        self._cum: list[int] = []
        total = 0
        for node in self.nodes:
            total += self._weights[node]
            self._cum.append(total)

    def _draw(self) -> int:
        x = self._rng.randrange(self._cum[-1])
        lo, hi = 0, len(self._cum)
        while lo < hi:
            mid = (lo + hi) // 2
            if self._cum[mid] <= x:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def pick(self) -> N:
        """Two weighted draws of distinct nodes; the one with the lower cost wins."""
        with self._lock:
            nodes = self.nodes
            if len(nodes) == 1:
                best = nodes[0]
            else:
                i = self._draw()
                j = self._draw()
                while j == i:
                    j = self._draw()
                a, b = nodes[i], nodes[j]
                if self.latency:
                    now = self._clock()
                    best = a if self.cost(a, now) <= self.cost(b, now) else b
                else:
                    wa, wb = self._weights[a], self._weights[b]
                    best = a if self.inflight[a] * wb <= self.inflight[b] * wa else b
            self.inflight[best] += 1
            return best
