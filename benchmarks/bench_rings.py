"""Consistent hashing: lbkit against the floor and the peers, side by side in one run.

Measures (medians of several repeats; the machine is noisy, so compare the ratios):
- lookup ns/op with 100 nodes over random keys: the floor (a closure doing one mmh3 call,
  one bisect and one list index), lbkit's rings, and uhashring, hashring, clandestined,
  jump-consistent-hash;
- lookup_many per key against lookup in a loop;
- build time for 100 and 1,000 nodes, and memory of the structure (tracemalloc);
- balance over many keys (max/mean, coefficient of variation) for 10/100/1,000 nodes;
- disruption when one node is removed or added (fraction moved vs the ideal 1/N, and keys
  moved between surviving nodes);
- picks/s of weighted round robin and least_conn with 10/100/1,000 peers, and of the O(1)
  precomputed schedule that gives nginx's round-robin order.

``--quick`` runs a small version in seconds; ``--json PATH`` saves the numbers;
``--plots DIR`` draws the figures used by docs/benchmarks.md (needs matplotlib).
"""

from __future__ import annotations

import argparse
import bisect
import gc
import json
import random
import statistics
import sys
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import mmh3

import lbkit

Result = dict[str, Any]


def _keys(n: int, seed: int = 1) -> list[str]:
    rng = random.Random(seed)
    return [f"{rng.getrandbits(64):016x}" for _ in range(n)]


def _median_ns(fn: Callable[[], object], ops: int, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        gc.collect()
        start = time.perf_counter_ns()
        fn()
        times.append((time.perf_counter_ns() - start) / ops)
    return statistics.median(times)


def _loop(lookup: Callable[[str], object], keys: list[str]) -> Callable[[], None]:
    def run() -> None:
        for k in keys:
            lookup(k)

    return run


def _floor(nodes: Sequence[str]) -> Callable[[str], object]:
    points = sorted(mmh3.hash(f"{n}-{i}") for n in nodes for i in range(160))
    owners = [nodes[i % len(nodes)] for i in range(len(points) + 1)]
    find = bisect.bisect_left
    h = mmh3.hash

    def floor(key: str) -> object:
        return owners[find(points, h(key))]

    return floor


def _peers(nodes: list[str]) -> dict[str, Callable[[str], object]]:
    out: dict[str, Callable[[str], object]] = {}
    try:
        import uhashring

        out["uhashring (md5, 160 vnodes)"] = uhashring.HashRing(nodes).get_node
        out["uhashring ketama"] = uhashring.HashRing(nodes, hash_fn="ketama").get_node
    except ImportError:
        print("uhashring not installed: pip install 'lbkit[bench]'", file=sys.stderr)
    try:
        import hashring

        out["hashring (md5)"] = hashring.HashRing(nodes).get_node
    except ImportError:
        print("hashring not installed: pip install 'lbkit[bench]'", file=sys.stderr)
    try:
        import clandestined

        out["clandestined (rendezvous)"] = clandestined.RendezvousHash(nodes).find_node
    except ImportError:
        print("clandestined not installed: pip install 'lbkit[bench]'", file=sys.stderr)
    try:
        import jump

        n = len(nodes)

        def jump_lookup(key: str) -> object:
            return nodes[jump.hash(mmh3.hash64(key, signed=False)[0], n)]

        out["jump-consistent-hash (+mmh3)"] = jump_lookup
    except ImportError:
        print("jump-consistent-hash not installed: pip install 'lbkit[bench]'", file=sys.stderr)
    return out


def bench_lookup(n_keys: int, repeats: int, count: int = 100) -> Result:
    nodes = [f"10.0.{i // 250}.{i % 250}:11211" for i in range(count)]
    keys = _keys(n_keys)
    floor = _floor(nodes)
    fast = lbkit.Ketama(nodes)
    rows: dict[str, float] = {}
    rows["floor (mmh3 + bisect + index)"] = _median_ns(_loop(floor, keys), n_keys, repeats)
    rows["lbkit Ketama fast: lookup"] = _median_ns(_loop(fast.lookup, keys), n_keys, repeats)
    fast.lookup_many(keys[:10])  # build the bucket table outside the timing
    rows["lbkit Ketama fast: lookup_many"] = _median_ns(
        lambda: fast.lookup_many(keys), n_keys, repeats
    )
    for flavor in ("nginx", "libketama"):
        ring = lbkit.Ketama(nodes, flavor=flavor)  # type: ignore[arg-type]
        rows[f"lbkit Ketama {flavor}: lookup"] = _median_ns(
            _loop(ring.lookup, keys), n_keys, repeats
        )
    maglev = lbkit.Maglev(nodes)
    rows["lbkit Maglev: lookup"] = _median_ns(_loop(maglev.lookup, keys), n_keys, repeats)
    few = keys[: max(1000, n_keys // 20)]
    rows["lbkit Rendezvous: lookup"] = _median_ns(
        _loop(lbkit.Rendezvous(nodes).lookup, few), len(few), repeats
    )
    rows["lbkit JumpHash: lookup"] = _median_ns(
        _loop(lbkit.JumpHash(nodes).lookup, keys), n_keys, repeats
    )
    for name, fn in _peers(nodes).items():
        sample = few if "clandestined" in name else keys
        rows[name] = _median_ns(_loop(fn, sample), len(sample), repeats)
    return rows


def bench_build(repeats: int) -> Result:
    out: dict[str, dict[str, float]] = {}
    for count in (100, 1000):
        nodes = [f"node-{i}" for i in range(count)]
        row: dict[str, float] = {}
        row["lbkit Ketama fast"] = _median_ns(partial(lbkit.Ketama, nodes), 1, repeats) / 1e6
        row["lbkit Maglev"] = (
            _median_ns(partial(lbkit.Maglev, nodes), 1, max(1, repeats // 2)) / 1e6
        )
        try:
            import uhashring

            row["uhashring"] = _median_ns(partial(uhashring.HashRing, nodes), 1, repeats) / 1e6
        except ImportError:
            pass
        out[str(count)] = row
    return out


def _memory(build: Callable[[], object]) -> int:
    gc.collect()
    tracemalloc.start()
    obj = build()
    size, _peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del obj
    return size


def bench_memory() -> Result:
    nodes = [f"node-{i}" for i in range(100)]
    row = {"lbkit Ketama fast (160 points/node)": _memory(lambda: lbkit.Ketama(nodes))}
    row["lbkit Maglev (65537 slots)"] = _memory(lambda: lbkit.Maglev(nodes))
    try:
        import uhashring

        row["uhashring (160 vnodes/node)"] = _memory(lambda: uhashring.HashRing(nodes))
    except ImportError:
        pass
    return row


def _balance(owners: list[str], count: int) -> tuple[float, float]:
    counts = Counter(owners)
    loads = [counts.get(f"n{i}", 0) for i in range(count)]
    mean = statistics.fmean(loads)
    return max(loads) / mean, statistics.pstdev(loads) / mean


def bench_balance(n_keys: int) -> Result:
    keys = _keys(n_keys, seed=2)
    out: dict[str, dict[str, list[float]]] = {}
    for count in (10, 100, 1000):
        nodes = [f"n{i}" for i in range(count)]
        row = {
            "ring (fast)": list(_balance(lbkit.Ketama(nodes).lookup_many(keys), count)),
            "ring (nginx)": list(
                _balance(lbkit.Ketama(nodes, flavor="nginx").lookup_many(keys), count)
            ),
            "maglev": list(_balance(lbkit.Maglev(nodes).lookup_many(keys), count)),
        }
        if count <= 100:
            sample = keys[: n_keys // 5]
            row["rendezvous"] = list(_balance(lbkit.Rendezvous(nodes).lookup_many(sample), count))
        out[str(count)] = row
    return out


def bench_disruption(n_keys: int) -> Result:
    keys = _keys(n_keys, seed=3)
    out: dict[str, dict[str, list[float]]] = {}
    for count in (10, 100):
        nodes = [f"n{i}" for i in range(count)]
        gone = nodes[count // 2]
        rest = [n for n in nodes if n != gone]
        row: dict[str, list[float]] = {}
        makers: dict[str, Callable[[list[str]], Any]] = {
            "ring (fast)": lambda ns: lbkit.Ketama(ns),
            "maglev": lambda ns: lbkit.Maglev(ns),
            "rendezvous": lambda ns: lbkit.Rendezvous(ns),
        }
        for name, make in makers.items():
            sample = keys if name != "rendezvous" else keys[: n_keys // 5]
            before = make(nodes).lookup_many(sample)
            after = make(rest).lookup_many(sample)
            moved = sum(a != b for a, b in zip(before, after, strict=True)) / len(sample)
            between = sum(a != b and a != gone for a, b in zip(before, after, strict=True))
            row[name] = [moved, 1 / count, between / len(sample)]
        out[str(count)] = row
    return out


def bench_schedules(repeats: int, picks: int) -> Result:
    out: dict[str, dict[str, float]] = {}
    for count in (10, 100, 1000):
        servers = [
            lbkit.Server(f"10.1.{i // 250}.{i % 250}:80", weight=1 + i % 3) for i in range(count)
        ]
        row: dict[str, float] = {}
        for label, method in (
            ("round robin", lbkit.RoundRobin()),
            ("least_conn", lbkit.LeastConn()),
        ):
            up = lbkit.Upstream(servers, method)

            def run(up: lbkit.Upstream = up) -> None:
                pick, done = up.pick, up.done
                for _ in range(picks):
                    done(pick())

            row[f"{label} (nginx-exact, O(n))"] = 1e9 / _median_ns(run, picks, repeats)
        schedule = lbkit.SmoothSchedule([s.address for s in servers], [s.weight for s in servers])

        def run_schedule(schedule: lbkit.SmoothSchedule[str] = schedule) -> None:
            nxt = schedule.next
            for _ in range(picks):
                nxt()

        row["round robin schedule (same order, O(1))"] = 1e9 / _median_ns(
            run_schedule, picks, repeats
        )
        out[str(count)] = row
    return out


def _print_table(title: str, rows: dict[str, float], unit: str, ref: str | None = None) -> None:
    print(f"\n{title}")
    ref_value = rows.get(ref) if ref else None
    for name, value in rows.items():
        ratio = f"  {value / ref_value:6.2f}x" if ref_value else ""
        print(f"  {name:<40} {value:12.1f} {unit}{ratio}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="small sizes, a few seconds")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--json", type=Path, help="write the results as JSON here")
    parser.add_argument("--plots", type=Path, help="write PNG figures into this folder")
    args = parser.parse_args(argv)
    quick = args.quick
    repeats = args.repeats or (3 if quick else 7)
    n_lookup = 20_000 if quick else 200_000
    n_balance = 100_000 if quick else 1_000_000
    results: Result = {
        "python": sys.version.split()[0],
        "date": time.strftime("%Y-%m-%d"),
        "quick": quick,
    }

    lookup = bench_lookup(n_lookup, repeats)
    results["lookup_ns"] = lookup
    _print_table(
        f"lookup, 100 nodes, {n_lookup} random keys (median ns/op; ratio to the floor)",
        lookup,
        "ns",
        "floor (mmh3 + bisect + index)",
    )
    fast = lookup["lbkit Ketama fast: lookup"]
    many = lookup["lbkit Ketama fast: lookup_many"]
    print(f"  lookup_many speed-up per key over lookup: {fast / many:.2f}x")
    for name, value in lookup.items():
        if not name.startswith(("lbkit", "floor")):
            print(f"  lbkit fast lookup is {value / fast:.2f}x faster than {name}")

    lookup_1000 = bench_lookup(n_lookup, repeats, count=1000)
    results["lookup_ns_1000"] = lookup_1000
    _print_table(
        f"lookup, 1,000 nodes, {n_lookup} random keys (median ns/op; ratio to the floor)",
        lookup_1000,
        "ns",
        "floor (mmh3 + bisect + index)",
    )

    build = bench_build(repeats)
    results["build_ms"] = build
    for count, row in build.items():
        _print_table(f"build, {count} nodes (median ms)", row, "ms", "lbkit Ketama fast")

    memory = bench_memory()
    results["memory_bytes"] = memory
    _print_table(
        "memory of the structure, 100 nodes (bytes)",
        {k: float(v) for k, v in memory.items()},
        "B",
        "lbkit Ketama fast (160 points/node)",
    )

    balance = bench_balance(n_balance)
    results["balance"] = balance
    print(f"\nbalance over {n_balance} keys: max/mean, coefficient of variation")
    for count, row in balance.items():
        for name, (mx, cv) in row.items():
            print(f"  {count:>5} nodes  {name:<14} max/mean {mx:6.3f}  cv {cv:6.3f}")

    disruption = bench_disruption(n_lookup)
    results["disruption"] = disruption
    print(
        "\ndisruption when one node is removed: moved fraction, ideal 1/N, moved between survivors"
    )
    for count, row in disruption.items():
        for name, (moved, ideal, between) in row.items():
            print(
                f"  {count:>5} nodes  {name:<12} moved {moved:7.4f}  ideal {ideal:7.4f}"
                f"  between survivors {between:7.4f}"
            )

    schedules = bench_schedules(repeats, 2_000 if quick else 20_000)
    results["picks_per_s"] = schedules
    for count, row in schedules.items():
        _print_table(f"picks/s, {count} peers (pick + done)", row, "/s")

    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))
        print(f"\nwrote {args.json}")
    if args.plots:
        from plots import draw

        draw({"bench_rings": results}, [], args.plots)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
