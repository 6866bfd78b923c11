"""Memory of a 1,000-peer upstream against the floor: the least a peer table can hold.

``tracemalloc`` measures what a structure holds once built (the ``Server`` objects and
their names exist before and are not counted):

- ``lbkit.Upstream`` with 1,000 servers (weights 1, 2, 3...) for round robin and for
  least_conn (the method's precomputed state included);
- the floor peer table: a list of slotted objects holding the fields nginx keeps per peer
  (``ngx_http_upstream_rr_peer_t``: name, weights, conns, fails, times, limits, down).

Each figure is the median of ``--repeats`` builds (tracemalloc counts are nearly exact;
the repeats show that they are). The 10,000-node ring's memory and build time are in
``bench_rings.py``. ``--json PATH`` writes the numbers.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import tracemalloc
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lbkit

UPSTREAM_PEERS = 1_000

#: Row names, shared with report.py through the JSON (the floor first).
FLOOR = f"floor peer table, {UPSTREAM_PEERS:,} slotted peers"


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
    peers = servers(UPSTREAM_PEERS)
    builds: dict[str, Callable[[], object]] = {
        FLOOR: lambda: floor_peers(peers),
        f"lbkit Upstream, {UPSTREAM_PEERS:,} peers (round robin)": lambda: lbkit.Upstream(
            peers, lbkit.RoundRobin()
        ),
        f"lbkit Upstream, {UPSTREAM_PEERS:,} peers (least_conn)": lambda: lbkit.Upstream(
            peers, lbkit.LeastConn()
        ),
    }
    samples: dict[str, list[int]] = {name: [] for name in builds}
    for _ in range(repeats):  # interleaved, as every benchmark here
        for name, build in builds.items():
            samples[name].append(traced_bytes(build))
    memory = {name: int(statistics.median(values)) for name, values in samples.items()}
    print(f"memory once built (tracemalloc, median of {repeats})")
    for name, size in memory.items():
        print(f"  {name:<45} {size:>10,} B  {size / memory[FLOOR]:5.2f}x floor")
    if args.json:
        results: dict[str, Any] = {
            "benchmark": "bench_footprint",
            "mode": "quick" if args.quick else "full",
            "repeats": repeats,
            "memory_bytes": memory,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
