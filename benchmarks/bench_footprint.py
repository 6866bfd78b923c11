"""Size costs: building a 10,000-node ring, and the memory of big rings and upstreams.

Each lbkit structure is set beside its floor, the least a Python program could keep or do
for the same job, measured the same way in the same run:

- **ring build, 10,000 nodes**: ``lbkit.Ketama(nodes)`` (fast flavour: 160 mmh3 points per
  node) against the floor ring: the same 1,600,000 mmh3 points, each packed with its node's
  index into one integer, one ``list.sort()``, then split into the points list and the
  owners list. Builds alternate (floor, lbkit, floor, lbkit...); medians in seconds.
- **memory** (``tracemalloc``, what the structure holds once built; the node names and
  ``Server`` objects exist before and are not counted):
  - a 10,000-node ``lbkit.Ketama`` against the floor ring above (two lists);
  - a 1,000-peer ``lbkit.Upstream`` (round robin, weights 1, 2, 3...) against the floor
    peer table: a list of slotted objects holding the fields nginx keeps per peer
    (``ngx_http_upstream_rr_peer_t``: name, weights, conns, fails, times, limits, down).

``--quick`` builds once each instead of three times; ``--json PATH`` writes the numbers.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mmh3

import lbkit

RING_NODES = 10_000
UPSTREAM_PEERS = 1_000
POINTS_PER_NODE = 160
#: 1,600,000 points is above lbkit's default bound on a ring's size (max_points): raise it.
MAX_POINTS = RING_NODES * POINTS_PER_NODE

#: Row names, shared with report.py through the JSON.
RING_BUILD = f"lbkit Ketama fast, {RING_NODES:,} nodes"
RING_FLOOR = f"floor ring (mmh3 + one sort), {RING_NODES:,} nodes"
UPSTREAM = f"lbkit Upstream, {UPSTREAM_PEERS:,} peers (round robin)"
UPSTREAM_FLOOR = f"floor peer table, {UPSTREAM_PEERS:,} slotted peers"


def floor_ring(nodes: Sequence[str]) -> tuple[list[int], list[str]]:
    """The least a ring build does: hash every point, sort once, split points and owners."""
    shift = max(1, len(nodes).bit_length())
    mask = (1 << shift) - 1
    hash32 = mmh3.hash
    packed = [
        ((hash32(f"{node}-{i}") + (1 << 31)) << shift) | index
        for index, node in enumerate(nodes)
        for i in range(POINTS_PER_NODE)
    ]
    packed.sort()
    return [p >> shift for p in packed], [nodes[p & mask] for p in packed]


@dataclass(slots=True)
class FloorPeer:
    """The fields nginx keeps for one round-robin peer, and nothing else."""

    name: str
    weight: int
    effective_weight: int
    current_weight: int
    conns: int = 0
    max_conns: int = 0
    fails: int = 0
    max_fails: int = 1
    fail_timeout: int = 10
    accessed: int = 0
    checked: int = 0
    down: bool = False


def floor_peers(servers: Sequence[lbkit.Server]) -> list[FloorPeer]:
    return [FloorPeer(s.address, s.weight, s.weight, 0) for s in servers]


def servers(count: int) -> list[lbkit.Server]:
    return [
        lbkit.Server(f"10.2.{i // 250}.{i % 250 + 1}:80", weight=1 + i % 3) for i in range(count)
    ]


def seconds(build: Callable[[], object]) -> float:
    gc.collect()
    start = time.perf_counter()
    obj = build()
    elapsed = time.perf_counter() - start
    del obj
    return elapsed


def traced_bytes(build: Callable[[], object]) -> int:
    """Bytes still allocated once ``build()`` returned (its result alive)."""
    gc.collect()
    tracemalloc.start()
    try:
        obj = build()
        size, _peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    del obj
    return size


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="one build of each, not three")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)
    repeats = args.repeats or (1 if args.quick else 3)
    nodes = [f"node-{i}" for i in range(RING_NODES)]
    peers = servers(UPSTREAM_PEERS)

    builds: dict[str, list[float]] = {RING_FLOOR: [], RING_BUILD: []}
    for _ in range(repeats):  # interleaved: floor and lbkit see the same machine state
        builds[RING_FLOOR].append(seconds(lambda: floor_ring(nodes)))
        builds[RING_BUILD].append(seconds(lambda: lbkit.Ketama(nodes, max_points=MAX_POINTS)))
    build_s = {name: statistics.median(runs) for name, runs in builds.items()}

    memory = {
        RING_FLOOR: traced_bytes(lambda: floor_ring(nodes)),
        RING_BUILD: traced_bytes(lambda: lbkit.Ketama(nodes, max_points=MAX_POINTS)),
        UPSTREAM_FLOOR: traced_bytes(lambda: floor_peers(peers)),
        UPSTREAM: traced_bytes(lambda: lbkit.Upstream(peers, lbkit.RoundRobin())),
    }

    print(f"ring build, {RING_NODES:,} nodes (median of {repeats}, seconds)")
    for name, value in build_s.items():
        print(f"  {name:<50} {value:8.3f} s  {value / build_s[RING_FLOOR]:5.2f}x floor")
    print("memory once built (tracemalloc)")
    pairs = ((RING_BUILD, RING_FLOOR), (UPSTREAM, UPSTREAM_FLOOR))
    for name, floor in pairs:
        for row in (floor, name):
            print(f"  {row:<50} {memory[row]:>12,} B  {memory[row] / memory[floor]:5.2f}x floor")
    if args.json:
        results: dict[str, Any] = {
            "benchmark": "bench_footprint",
            "mode": "quick" if args.quick else "full",
            "repeats": repeats,
            "build_s": build_s,
            "memory_bytes": memory,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
