"""The zone's cost per pick against in-process state, and the 4-process least_conn spread.

Run: ``.venv/bin/python benchmarks/bench_zone.py [--quick] [--json PATH]``. Rounds of
pick+done are interleaved in one run (in-process; one upstream on a zone; two upstreams on
one zone taking turns, so each loads the other's change); medians and ratios are printed;
then 1,000 servers with least_conn. Then 4 worker processes each take 6 connections with
least_conn, with and without a shared zone.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lbkit import Upstream
from lbkit.balancers import LeastConn, RoundRobin
from lbkit.upstream import parse_server_line, zone_size_for

SERVERS = [f"10.0.0.{i}:80" for i in range(1, 9)]
ROUNDS = 7
PICKS = 5000


def make(method: Any, zone: str | None) -> Upstream:
    return Upstream([parse_server_line(s) for s in SERVERS], method, name="b", zone=zone)


def per_pick(up: Upstream, picks: int = PICKS) -> float:
    start = time.perf_counter()
    for _ in range(picks):
        up.done(up.pick())
    return (time.perf_counter() - start) / picks * 1e6


def alternating(one: Upstream, two: Upstream, picks: int = PICKS) -> float:
    """pick+done alternating between two upstreams on one zone: each sees the other's
    change and loads the peers (the cost when several workers are busy)."""
    start = time.perf_counter()
    for _ in range(picks // 2):
        one.done(one.pick())
        two.done(two.pick())
    return (time.perf_counter() - start) / (picks // 2 * 2) * 1e6


def hold(zone: str, picks: int, ready: Any, out: Any, release: str) -> None:
    up = make(LeastConn(), zone)
    ready.wait()
    held = [up.pick() for _ in range(picks)]
    out.put([p.name for p in held])
    while not os.path.exists(release):
        time.sleep(0.02)
    for p in held:
        up.done(p)


def spread(shared: bool, workers: int = 4, picks: int = 6) -> Counter[str]:
    ctx = multiprocessing.get_context("spawn")
    ready, out = ctx.Event(), ctx.Queue()
    release = os.path.join(os.environ["LBKIT_ZONE_DIR"], "release-" + uuid.uuid4().hex)
    name = "bench" + uuid.uuid4().hex[:8]
    procs = [
        ctx.Process(
            target=hold, args=(name if shared else f"{name}{i}", picks, ready, out, release)
        )
        for i in range(workers)
    ]
    for p in procs:
        p.start()
    ready.set()
    got = Counter(n for _ in procs for n in out.get(timeout=60))
    open(release, "w").close()
    for p in procs:
        p.join(30)
    return got


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="3 rounds of 1,000 picks")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)
    rounds, picks = (3, 1000) if args.quick else (ROUNDS, PICKS)
    os.environ.setdefault("LBKIT_ZONE_DIR", tempfile.mkdtemp())
    results: dict[str, Any] = {"pick_us": {}}
    for label, method in (("round robin", RoundRobin), ("least_conn", LeastConn)):
        zone = "bench" + uuid.uuid4().hex[:8]
        plain, zoned, other = make(method(), None), make(method(), zone), make(method(), zone)
        a: list[float] = []
        b: list[float] = []
        c: list[float] = []
        for _ in range(rounds):
            a.append(per_pick(plain, picks))
            b.append(per_pick(zoned, picks))
            c.append(alternating(zoned, other, picks))
        ma, mb, mc = statistics.median(a), statistics.median(b), statistics.median(c)
        results["pick_us"][label] = {"in-process": ma, "zone": mb, "zone, two taking turns": mc}
        print(
            f"{label:12} 8 servers, pick+done: in-process {ma:.2f} us, zone {mb:.2f} us "
            f"({mb / ma:.2f}x), two upstreams taking turns on the zone {mc:.2f} us "
            f"({mc / ma:.2f}x)"
        )
    many = [parse_server_line(f"10.1.{i // 250}.{i % 250}:80") for i in range(1000)]
    big = [
        Upstream(many, LeastConn(), name="big", zone=zone, zone_size=zone_size_for(1000))
        for zone in (None, "bench" + uuid.uuid4().hex[:8])
    ]
    d: list[list[float]] = [[], []]
    for _ in range(rounds):
        for i, up in enumerate(big):
            d[i].append(per_pick(up, max(20, picks // 25)))
    mp, mz = statistics.median(d[0]), statistics.median(d[1])
    results["pick_us"]["least_conn 1000 servers"] = {"in-process": mp, "zone": mz}
    print(
        f"least_conn   1000 servers, pick+done: in-process {mp:.1f} us, zone {mz:.1f} us "
        f"({mz / mp:.2f}x; zone_size_for(1000) = {zone_size_for(1000):,} bytes)"
    )
    alone = make(LeastConn(), None)
    one = sorted(Counter(alone.pick().name for _ in range(24)).values())
    shared, unshared = sorted(spread(True).values()), sorted(spread(False).values())
    results["spread"] = {"one process": one, "shared zone": shared, "no shared zone": unshared}
    print("least_conn, 24 connections held by one process:", one)
    print("4 processes x 6, one shared zone:             ", shared)
    print("4 processes x 6, no shared zone:              ", unshared)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
