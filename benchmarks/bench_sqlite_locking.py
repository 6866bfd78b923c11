"""SQLite store under concurrent writers: throughput and write latency by process count.

Each writer process does read-modify-write increments of its own session and plain writes
of a shared one through ``SqliteStore`` (WAL mode; writers serialise on ``BEGIN
IMMEDIATE``). Prints total writes/s, the median and 99th-percentile write latency, and how
many writes had to wait for the database lock longer than 10 ms — the locking behaviour
the store's documentation describes.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def _writer(path: str, writes: int, index: int, out: Any, go: Any) -> None:
    from lbkit.sessions import SqliteStore

    store = SqliteStore(path, timeout=30.0)
    store.get("warm-up")
    go.wait()  # every writer starts together
    began = time.time()
    latencies = []
    for i in range(writes):
        start = time.perf_counter()
        if i % 2:
            store.set("shared", b"x" * 512)
        else:
            store.set(f"own-{index}", str(i).encode() * 64)
        latencies.append(time.perf_counter() - start)
    out.put((began, time.time(), latencies))


def run(processes: int, writes: int) -> tuple[float, float, float, int]:
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "s.db")
        from lbkit.sessions import SqliteStore

        SqliteStore(path).close()
        ctx = multiprocessing.get_context("spawn")
        queue = ctx.Queue()
        go = ctx.Event()
        procs = [
            ctx.Process(target=_writer, args=(path, writes, i, queue, go)) for i in range(processes)
        ]
        for p in procs:
            p.start()
        time.sleep(1.0 + 0.2 * processes)  # let every writer import and open the database
        go.set()
        latencies: list[float] = []
        starts, ends = [], []
        for _ in procs:
            began, ended, lat = queue.get(timeout=300)
            starts.append(began)
            ends.append(ended)
            latencies += lat
        for p in procs:
            p.join()
        # the window in which writers ran (process start-up excluded)
        elapsed = max(ends) - min(starts)
    latencies.sort()
    p99 = latencies[int(len(latencies) * 0.99) - 1]
    waited = sum(1 for x in latencies if x > 0.010)
    return len(latencies) / elapsed, statistics.median(latencies), p99, waited


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="SqliteStore with concurrent writers")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", type=Path, help="write the rows here")
    args = parser.parse_args(argv)
    writes = 100 if args.quick else 500
    print(f"SqliteStore, {writes} writes per process (512-byte values, WAL, synchronous=NORMAL)")
    print(f"  {'processes':>9} {'writes/s':>10} {'median ms':>10} {'p99 ms':>8} {'>10 ms':>7}")
    rows = []
    for processes in (1, 2, 4, 8):
        rate, median, p99, waited = run(processes, writes)
        print(f"  {processes:>9} {rate:10.0f} {median * 1e3:10.2f} {p99 * 1e3:8.2f} {waited:7d}")
        rows.append(
            {
                "processes": processes,
                "writes_per_s": rate,
                "median_ms": median * 1e3,
                "p99_ms": p99 * 1e3,
                "waited": waited,
            }
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
