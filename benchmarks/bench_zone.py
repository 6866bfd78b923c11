"""The zone's cost per pick against in-process state, and the 4-process least_conn spread.

Run: ``.venv/bin/python benchmarks/bench_zone.py``. Rounds of pick+done are interleaved
(in-process, zone) in one run; medians and the ratio are printed. Then 4 worker processes
each take 6 connections with least_conn, with and without a shared zone.
"""

from __future__ import annotations

import multiprocessing
import os
import statistics
import tempfile
import time
import uuid
from collections import Counter
from typing import Any

from lbkit import Upstream
from lbkit.balancers import LeastConn, RoundRobin
from lbkit.upstream import parse_server_line

SERVERS = [f"10.0.0.{i}:80" for i in range(1, 9)]
ROUNDS = 7
PICKS = 5000


def make(method: Any, zone: str | None) -> Upstream:
    return Upstream([parse_server_line(s) for s in SERVERS], method, name="b", zone=zone)


def per_pick(up: Upstream) -> float:
    start = time.perf_counter()
    for _ in range(PICKS):
        up.done(up.pick())
    return (time.perf_counter() - start) / PICKS * 1e6


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


def main() -> None:
    os.environ.setdefault("LBKIT_ZONE_DIR", tempfile.mkdtemp())
    for label, method in (("round robin", RoundRobin), ("least_conn", LeastConn)):
        plain, zoned = make(method(), None), make(method(), "bench" + uuid.uuid4().hex[:8])
        a, b = [], []
        for _ in range(ROUNDS):
            a.append(per_pick(plain))
            b.append(per_pick(zoned))
        ma, mb = statistics.median(a), statistics.median(b)
        print(
            f"{label:12} 8 servers, pick+done: in-process {ma:.2f} us, zone {mb:.2f} us, "
            f"ratio {mb / ma:.2f}x"
        )
    alone = make(LeastConn(), None)
    one = Counter(alone.pick().name for _ in range(24))
    print("least_conn, 24 connections held by one process:", sorted(one.values()))
    print("4 processes x 6, one shared zone:             ", sorted(spread(True).values()))
    print("4 processes x 6, no shared zone:              ", sorted(spread(False).values()))


if __name__ == "__main__":
    main()
