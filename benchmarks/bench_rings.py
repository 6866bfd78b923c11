"""Consistent hashing: lbkit against the floor and the peers, side by side in one run.

Measures (medians of several repeats, the contenders timed in turn within each repeat; the
machine is noisy, so compare the ratios):
- lookup ns/op with 100 and 1,000 nodes over random keys: the floor (a closure doing one
  mmh3 call, one bisect and one list index), lbkit's rings, and uhashring, hashring,
  clandestined, jump-consistent-hash, and libketama's own C code (the ``ketama`` binding;
  100 nodes only: its shared memory segment holds ~117 servers);
- lookup_many per key against lookup in a loop;
- build time for 100, 1,000 and 10,000 nodes (10,000: lbkit against the floor only), and
  memory of the structure (tracemalloc) for 100 and 10,000 nodes;
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
import tempfile
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
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


def _interleaved_ns(runs: dict[str, tuple[Callable[[], object], int]], repeats: int) -> Result:
    """Median ns per op of each contender, timed in turn within every repeat so that a
    change in machine load touches all of them alike."""
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, (fn, ops) in runs.items():
            gc.collect()
            start = time.perf_counter_ns()
            fn()
            times[name].append((time.perf_counter_ns() - start) / ops)
    return {name: statistics.median(t) for name, t in times.items()}


def _loop(lookup: Callable[[str], object], keys: list[str]) -> Callable[[], None]:
    def run() -> None:
        for k in keys:
            lookup(k)

    return run


FLOOR = "floor (mmh3 + bisect + index)"


def _floor_ring(nodes: Sequence[str]) -> tuple[list[int], list[str]]:
    """The floor's ring: one sorted list of points and one list of owners (plus the wrap)."""
    entries = sorted((mmh3.hash(f"{n}-{i}"), n) for n in nodes for i in range(160))
    points = [p for p, _ in entries]
    owners = [n for _, n in entries]
    owners.append(owners[0])
    return points, owners


def _floor(nodes: Sequence[str]) -> Callable[[str], object]:
    points, owners = _floor_ring(nodes)
    find = bisect.bisect_left
    h = mmh3.hash

    def floor(key: str) -> object:
        return owners[find(points, h(key))]

    return floor


#: libketama's C library keeps its continuum in one 512 KB shared memory segment: room for
#: ~117 servers of 160 points; more crash the process, so the C peer runs at 100 nodes only.
LIBKETAMA_C_MAX_NODES = 100


@contextmanager
def _libketama_c(nodes: list[str]) -> Iterator[Callable[[str], object] | None]:
    """libketama's own C code (the ``ketama`` binding) over ``nodes``, weight 1 each; its
    shared memory and semaphore are released on exit once the caller has dropped what it
    got. None if it is not installed."""
    try:
        import ketama
    except ImportError:
        print("ketama (libketama C) not installed: pip install 'lbkit[bench]'", file=sys.stderr)
        yield None
        return
    with tempfile.TemporaryDirectory() as folder:
        conf = Path(folder) / "servers"
        conf.write_text("".join(f"{n}\t1\n" for n in nodes))
        continuum = ketama.Ketama(str(conf))
        try:
            yield continuum.get_server  # (key hash, server): its own API, no wrapper
        finally:
            # the caller dropped the bound method: the dealloc detaches and removes the
            # shared memory segment and the semaphore
            del continuum


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
        jump_c, hash64 = jump.hash, mmh3.hash64

        def jump_lookup(key: str) -> object:
            return nodes[jump_c(hash64(key, 0, signed=False)[0], n)]

        out["jump-consistent-hash (+mmh3)"] = jump_lookup
    except ImportError:
        print("jump-consistent-hash not installed: pip install 'lbkit[bench]'", file=sys.stderr)
    return out


def bench_lookup(n_keys: int, repeats: int, count: int = 100) -> Result:
    """ns per lookup of every contender over ``count`` nodes, interleaved, medians."""
    nodes = [f"10.0.{i // 250}.{i % 250}:11211" for i in range(count)]
    keys = _keys(n_keys)
    few = keys[: max(1000, n_keys // 20)]  # for the O(nodes) contenders
    fast = lbkit.Ketama(nodes)
    fast.lookup_many(keys[:10])
    runs: dict[str, tuple[Callable[[], object], int]] = {
        FLOOR: (_loop(_floor(nodes), keys), n_keys),
        "lbkit Ketama fast: lookup": (_loop(fast.lookup, keys), n_keys),
        "lbkit Ketama fast: lookup_many": (partial(fast.lookup_many, keys), n_keys),
    }
    for flavor in ("nginx", "libketama"):
        ring = lbkit.Ketama(nodes, flavor=flavor)  # type: ignore[arg-type]
        runs[f"lbkit Ketama {flavor}: lookup"] = (_loop(ring.lookup, keys), n_keys)
    runs["lbkit Maglev: lookup"] = (_loop(lbkit.Maglev(nodes).lookup, keys), n_keys)
    runs["lbkit Rendezvous: lookup"] = (_loop(lbkit.Rendezvous(nodes).lookup, few), len(few))
    runs["lbkit JumpHash: lookup"] = (_loop(lbkit.JumpHash(nodes).lookup, keys), n_keys)
    for name, fn in _peers(nodes).items():
        sample = few if "clandestined" in name else keys
        runs[name] = (_loop(fn, sample), len(sample))
    small = count <= LIBKETAMA_C_MAX_NODES
    with _libketama_c(nodes) if small else nullcontext(None) as libketama:
        if libketama is not None:
            runs["libketama C (ketama binding)"] = (_loop(libketama, keys), n_keys)
        try:
            return _interleaved_ns(runs, repeats)
        finally:
            runs.clear()


def bench_build(repeats: int, sizes: Sequence[int] = (100, 1000, 10_000)) -> Result:
    """Median ms to build each structure, interleaved; 10,000 nodes: lbkit and the floor."""
    out: dict[str, dict[str, float]] = {}
    for count in sizes:
        nodes = [f"node-{i}" for i in range(count)]
        big = count > 1000
        runs: dict[str, tuple[Callable[[], object], int]] = {
            "floor (sorted (point, node) pairs)": (partial(_floor_ring, nodes), 1),
            "lbkit Ketama fast": (
                partial(lbkit.Ketama, nodes, max_points=160 * count),
                1,
            ),
        }
        if not big:
            runs["lbkit Maglev"] = (partial(lbkit.Maglev, nodes), 1)
            try:
                import uhashring

                runs["uhashring"] = (partial(uhashring.HashRing, nodes), 1)
            except ImportError:
                pass
        rows = _interleaved_ns(runs, max(1, repeats // 3) if big else repeats)
        out[str(count)] = {name: ns / 1e6 for name, ns in rows.items()}
    return out


def _memory(build: Callable[[], object]) -> int:
    gc.collect()
    tracemalloc.start()
    obj = build()
    size, _peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del obj
    return size


def bench_memory(count: int = 100) -> Result:
    nodes = [f"node-{i}" for i in range(count)]
    row = {"floor (sorted points + owners)": _memory(lambda: _floor_ring(nodes))}
    row["lbkit Ketama fast (160 points/node)"] = _memory(
        lambda: lbkit.Ketama(nodes, max_points=160 * count)
    )
    if count <= 1000:
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

    for count, field in ((100, "lookup_ns"), (1000, "lookup_ns_1000")):
        lookup = bench_lookup(n_lookup, repeats, count)
        results[field] = lookup
        _print_table(
            f"lookup, {count} nodes, {n_lookup} random keys (median ns/op; ratio to the floor)",
            lookup,
            "ns",
            FLOOR,
        )
        fast = lookup["lbkit Ketama fast: lookup"]
        many = lookup["lbkit Ketama fast: lookup_many"]
        print(f"  lookup_many speed-up per key over lookup: {fast / many:.2f}x")
        for name, value in lookup.items():
            if not name.startswith(("lbkit", "floor")):
                print(f"  lbkit fast lookup is {value / fast:.2f}x faster than {name}")
        for ours, theirs in (
            ("lbkit Ketama libketama: lookup", "libketama C (ketama binding)"),
            ("lbkit JumpHash: lookup", "jump-consistent-hash (+mmh3)"),
        ):
            if theirs in lookup:
                print(f"  {ours} / {theirs}: {lookup[ours] / lookup[theirs]:.2f}x")

    build = bench_build(repeats)
    results["build_ms"] = build
    for count, row in build.items():
        _print_table(f"build, {count} nodes (median ms)", row, "ms", "lbkit Ketama fast")

    for count, field in ((100, "memory_bytes"), (10_000, "memory_bytes_10000")):
        memory = bench_memory(count)
        results[field] = memory
        _print_table(
            f"memory of the structure, {count} nodes (bytes; ratio to the floor)",
            {k: float(v) for k, v in memory.items()},
            "B",
            "floor (sorted points + owners)",
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
