"""What one pick is made of: its fixed cost split into parts, and hash picks against their lookup.

Two questions, measured in one interleaved run (round 1 of every case, then round 2...;
the garbage collector off while a case runs; medians of ``--repeats`` rounds):

1. **the fixed cost of one pick at 10 peers** (round robin, weights 1, 2, 3...): the whole
   ``done(pick())`` against ``pick()`` alone and ``done()`` alone, and against the cost of
   the parts any thread-safe pick pays: the choice itself (``SmoothSchedule.next()``, the
   same order with no health state), two lock round trips (``with lock:`` on a
   ``threading.RLock``, as the upstream takes one in ``pick()`` and one in ``done()``) and
   two clock reads (``time.monotonic()``). What is left is lbkit's bookkeeping: the request
   state, the ``Peer`` handed out, the health and connection accounting.
2. **hash, hash consistent and ip_hash**: ``done(pick(...))`` against the bare lookup the
   method makes, written with lbkit's public hashing functions: for ``hash consistent``
   the crc32 ring (``lbkit.rings.nginx_ring``) and one ``bisect``; for ``hash`` the
   Cache::Memcached crc15 of the key and one ``bisect`` on the cumulative weights; for
   ``ip_hash`` the first three octets (``socket.inet_aton``), nginx's ip_hash rounds and
   the same ``bisect``.

``--quick`` runs 3 rounds of 3,000 operations; ``--json PATH`` writes the medians.
"""

from __future__ import annotations

import argparse
import bisect
import gc
import itertools
import json
import socket
import statistics
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import lbkit
from bench_pick import make_inputs, make_servers
from lbkit.hashing import crc32_key, ip_hash_step, memcached_crc15
from lbkit.rings import nginx_ring

#: Upstream size of every case (the issue's "fixed cost of one pick at 10 peers").
PEERS = 10

#: Names of the parts, shared with report.py through the JSON.
WHOLE = "pick() + done()"
PICK_ONLY = "pick() alone"
DONE_ONLY = "done() alone"
CHOICE = "the choice: SmoothSchedule.next()"
LOCKS = "two lock round trips (RLock)"
CLOCKS = "two clock reads (time.monotonic)"

#: The hash methods and their lookups: label -> (method factory, argument pick() takes).
HASH_METHODS: dict[str, tuple[Callable[[], lbkit.Method], str]] = {
    "hash consistent": (lambda: lbkit.Hash("$request_uri", consistent=True), "key"),
    "hash": (lambda: lbkit.Hash("$request_uri"), "key"),
    "ip_hash": (lbkit.IpHash, "client_addr"),
}


def lookups(servers: list[lbkit.Server]) -> dict[str, Callable[[str], str]]:
    """The bare lookup of each hash method over ``servers`` (no health, no state)."""
    names = [s.address for s in servers]
    hashes, owners = nginx_ring((s.address, s.weight) for s in servers)
    points = len(hashes)
    cumulative = list(itertools.accumulate(s.weight for s in servers))
    total = cumulative[-1]
    find, right = bisect.bisect_left, bisect.bisect_right

    def consistent(key: str) -> str:
        return owners[find(hashes, crc32_key(key)) % points]

    def plain(key: str) -> str:
        return names[right(cumulative, memcached_crc15(key.encode()) % total)]

    def ip(addr: str) -> str:
        return names[right(cumulative, ip_hash_step(89, socket.inet_aton(addr)[:3]) % total)]

    return {"hash consistent": consistent, "hash": plain, "ip_hash": ip}


def loop_over(inputs: list[str], fn: Callable[[str], object]) -> Callable[[], None]:
    def run() -> None:
        for item in inputs:
            fn(item)

    return run


def repeat(n: int, fn: Callable[[], object]) -> Callable[[], None]:
    def run() -> None:
        for _ in range(n):
            fn()

    return run


def fixed_cost_cases(n: int) -> dict[str, Callable[[], None]]:
    """The cases of question 1, each a loop of ``n`` operations."""
    servers = make_servers(PEERS)
    up = lbkit.Upstream(servers, lbkit.RoundRobin())
    pick, done = up.pick, up.done
    held: list[lbkit.Peer] = []

    def whole() -> None:
        for _ in range(n):
            done(pick())

    def pick_only() -> None:
        append = held.append
        for _ in range(n):
            append(pick())

    def done_only() -> None:
        # the peers taken by the pick_only run just before (cases run in this order)
        for peer in held:
            done(peer)
        held.clear()

    lock = threading.RLock()

    def locks() -> None:
        for _ in range(n):
            with lock:
                pass
            with lock:
                pass

    clock = time.monotonic

    def clocks() -> None:
        for _ in range(n):
            clock()
            clock()

    schedule = lbkit.SmoothSchedule([s.address for s in servers], [s.weight for s in servers])
    return {
        WHOLE: whole,
        PICK_ONLY: pick_only,
        DONE_ONLY: done_only,
        CHOICE: repeat(n, schedule.next),
        LOCKS: locks,
        CLOCKS: clocks,
    }


def hash_cases(n: int) -> dict[str, Callable[[], None]]:
    """The cases of question 2: each method's pick+done and its bare lookup."""
    servers = make_servers(PEERS)
    keys, addrs = make_inputs(n)
    bare = lookups(servers)
    cases: dict[str, Callable[[], None]] = {}
    for label, (make, arg) in HASH_METHODS.items():
        inputs = keys if arg == "key" else addrs
        cases[f"{label}: pick() + done()"] = pick_loop(lbkit.Upstream(servers, make()), arg, inputs)
        cases[f"{label}: lookup"] = loop_over(inputs, bare[label])
    return cases


def pick_loop(up: lbkit.Upstream, arg: str, inputs: list[str]) -> Callable[[], None]:
    """A loop of ``done(pick(...))`` giving each pick its key or client address."""
    pick, done = up.pick, up.done
    if arg == "key":
        return loop_over(inputs, lambda key: done(pick(key=key)))
    return loop_over(inputs, lambda addr: done(pick(client_addr=addr)))


def time_once(run: Callable[[], None]) -> int:
    gc.collect()
    gc.disable()
    try:
        start = time.perf_counter_ns()
        run()
        return time.perf_counter_ns() - start
    finally:
        gc.enable()


def measure(cases: dict[str, Callable[[], None]], n: int, repeats: int) -> dict[str, float]:
    """Median ns per operation of each case over ``repeats`` interleaved rounds."""
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for run in cases.values():
        run()  # warm-up
    for _ in range(repeats):
        for name, run in cases.items():
            samples[name].append(time_once(run) / n)
    return {name: statistics.median(values) for name, values in samples.items()}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="3 rounds of 3,000 operations")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--ops", type=int, default=None, help="operations per timed run")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)
    n = args.ops or (3_000 if args.quick else 20_000)
    repeats = args.repeats or (3 if args.quick else 11)
    fixed = fixed_cost_cases(n)
    hashed = hash_cases(n)
    medians = measure({**fixed, **hashed}, n, repeats)
    parts = {name: medians[name] for name in fixed}
    versus = {name: medians[name] for name in hashed}

    whole = parts[WHOLE]
    print(f"one pick at {PEERS} peers (round robin), median ns of {repeats} x {n:,}")
    for name, ns in parts.items():
        print(f"  {name:<40} {ns:8.0f} ns  {ns / whole:6.1%} of {WHOLE}")
    rest = whole - parts[CHOICE] - parts[LOCKS] - parts[CLOCKS]
    print(f"  {'the rest: lbkit bookkeeping':<40} {rest:8.0f} ns  {rest / whole:6.1%}")
    print(f"\nhash methods at {PEERS} peers: pick() + done() against the bare lookup")
    for label in HASH_METHODS:
        full, bare = versus[f"{label}: pick() + done()"], versus[f"{label}: lookup"]
        print(f"  {label:<16} {full:8.0f} ns  lookup {bare:6.0f} ns  {full / bare:5.1f}x")
    if args.json:
        results: dict[str, Any] = {
            "benchmark": "bench_pick_parts",
            "mode": "quick" if args.quick else "full",
            "peers": PEERS,
            "ops": n,
            "repeats": repeats,
            "fixed_cost_ns": parts,
            "hash_vs_lookup_ns": versus,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
