"""The zone's cost per pick against in-process state, and the 4-process least_conn spread.

Run: ``.venv/bin/python benchmarks/bench_zone.py [--quick] [--json PATH]``. Rounds of
pick+done are interleaved (in-process, zone) in one run; medians and the ratio are printed.
Then 4 worker processes each take 6 connections with least_conn, with and without a shared
zone.
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
from lbkit.upstream import parse_server_line

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
        plain, zoned = make(method(), None), make(method(), "bench" + uuid.uuid4().hex[:8])
        a, b = [], []
        for _ in range(rounds):
            a.append(per_pick(plain, picks))
            b.append(per_pick(zoned, picks))
        ma, mb = statistics.median(a), statistics.median(b)
        results["pick_us"][label] = {"in-process": ma, "zone": mb}
        print(
            f"{label:12} 8 servers, pick+done: in-process {ma:.2f} us, zone {mb:.2f} us, "
            f"ratio {mb / ma:.2f}x"
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
