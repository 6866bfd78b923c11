"""What one pick is made of: its fixed cost at 10 peers, split into parts.

The whole ``done(pick())`` (round robin, weights 1, 2, 3...) is measured beside ``pick()``
alone and ``done()`` alone, and beside the parts any thread-safe pick pays: the choice
itself (``SmoothSchedule.next()``, the same order with no health state), two lock round
trips (``acquire()`` and ``release()`` of a ``threading.RLock``, as lbkit calls them: one in
``pick()``, one in ``done()``) and
two clock reads (``time.monotonic()``). What is left is lbkit's bookkeeping: the ``Peer``
handed out, the health and connection accounting. One interleaved run (round 1 of every
case, then round 2...), the garbage collector off while a case runs, medians of
``--repeats`` rounds. (``bench_pick.py`` sets the hash methods beside their lookup alone.)

It also measures the least a thread-safe ``pick()`` + ``done()`` can cost in plain Python
(``thread_safe_floor_ns`` in the JSON): the same lock taken twice by hand, one clock read,
one slotted object handed out and a connection counter, around round robin's precomputed
order and around the ``hash`` method's lookup (crc15 and its weight table, as
``bench_pick.py``'s lookup row), beside that lookup alone and lbkit's hash pick+done. It is
what issue 14's "hash pick+done at most 1.5x its lookup" is up against.

``--quick`` runs 7 rounds of 5,000 operations; ``--json PATH`` writes the medians.
"""

from __future__ import annotations

import argparse
import bisect
import gc
import itertools
import json
import math
import statistics
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import lbkit
from bench_pick import KEY, lookup_loop, make_inputs, make_servers, pick_loop

#: Upstream size of every case (the issue's "fixed cost of one pick at 10 peers").
PEERS = 10

#: Names of the parts, shared with report.py through the JSON.
WHOLE = "pick() + done()"
PICK_ONLY = "pick() alone"
DONE_ONLY = "done() alone"
CHOICE = "the choice: SmoothSchedule.next()"
LOCKS = "two lock round trips (RLock)"
CLOCKS = "two clock reads (time.monotonic)"

#: Names of the thread-safe floor cases (``thread_safe_floor_ns`` in the JSON).
RR_FLOOR = "round robin: a minimal thread-safe pick+done"
RR_LBKIT = "round robin: lbkit pick() + done()"
HASH_LOOKUP = "hash: its lookup alone (crc15 + weight table)"
HASH_FLOOR = "hash: a minimal thread-safe pick+done around that lookup"
HASH_LBKIT = "hash: lbkit pick(key) + done()"


class _Ticket:
    """The least a pick can hand out: which peer, and whether it was reported."""

    __slots__ = ("index", "reported")

    def __init__(self, index: int) -> None:
        self.index = index
        self.reported = False


def floor_cases(n: int) -> dict[str, Callable[[], None]]:
    """The least a thread-safe pick+done costs around a choice, beside lbkit's."""
    servers = make_servers(PEERS)
    keys, addrs = make_inputs(n)
    weights = [s.weight for s in servers]
    order = itertools.cycle(lbkit.balancers.smooth_wrr_cycle(weights))
    starts = list(itertools.accumulate(weights, initial=0))[:-1]
    total = sum(weights)
    crc15 = lbkit.hashing.memcached_crc15
    bisect_right = bisect.bisect_right
    conns = [0] * len(servers)
    lock = threading.RLock()
    acquire, release = lock.acquire, lock.release
    clock, trunc = time.monotonic, math.trunc

    def done(ticket: _Ticket) -> None:
        acquire()
        ticket.reported = True
        conns[ticket.index] -= 1
        release()

    def rr_floor() -> None:
        for _ in range(n):
            trunc(clock())
            acquire()
            index = next(order)
            conns[index] += 1
            release()
            done(_Ticket(index))

    def hash_floor() -> None:
        for key in keys:
            trunc(clock())
            acquire()
            index = bisect_right(starts, crc15(key.encode()) % total) - 1
            conns[index] += 1
            release()
            done(_Ticket(index))

    rr = lbkit.Upstream(servers, lbkit.RoundRobin())
    return {
        RR_FLOOR: rr_floor,
        RR_LBKIT: repeat(n, lambda: rr.done(rr.pick())),
        HASH_LOOKUP: lookup_loop("hash", servers, keys, addrs),
        HASH_FLOOR: hash_floor,
        HASH_LBKIT: pick_loop(lbkit.Upstream(servers, lbkit.Hash()), KEY, keys, addrs),
    }


def repeat(n: int, fn: Callable[[], object]) -> Callable[[], None]:
    def run() -> None:
        for _ in range(n):
            fn()

    return run


def fixed_cost_cases(n: int) -> dict[str, Callable[[], None]]:
    """The cases, each a loop of ``n`` operations, in the order they run."""
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
    acquire, release = lock.acquire, lock.release

    def locks() -> None:
        for _ in range(n):
            acquire()
            release()
            acquire()
            release()

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
    parser.add_argument("--quick", action="store_true", help="7 rounds of 5,000 operations")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--ops", type=int, default=None, help="operations per timed run")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)
    n = args.ops or (5_000 if args.quick else 20_000)
    repeats = args.repeats or (7 if args.quick else 11)
    parts = measure(fixed_cost_cases(n), n, repeats)

    whole = parts[WHOLE]
    print(f"one pick at {PEERS} peers (round robin), median ns of {repeats} x {n:,}")
    for name, ns in parts.items():
        print(f"  {name:<40} {ns:8.0f} ns  {ns / whole:6.1%} of {WHOLE}")
    rest = whole - parts[CHOICE] - parts[LOCKS] - parts[CLOCKS]
    print(f"  {'the rest: lbkit bookkeeping':<40} {rest:8.0f} ns  {rest / whole:6.1%}")
    floors = measure(floor_cases(n), n, repeats)
    print(f"the least a thread-safe pick+done costs, median ns of {repeats} x {n:,}")
    for name, ns in floors.items():
        print(f"  {name:<58} {ns:8.0f} ns")
    lookup = floors[HASH_LOOKUP]
    print(
        f"  hash: the minimal pick+done is {floors[HASH_FLOOR] / lookup:.1f}x its lookup; "
        f"lbkit's {floors[HASH_LBKIT] / lookup:.1f}x its lookup, "
        f"{floors[HASH_LBKIT] / floors[HASH_FLOOR]:.2f}x the minimal one"
    )
    if args.json:
        results: dict[str, Any] = {
            "benchmark": "bench_pick_parts",
            "mode": "quick" if args.quick else "full",
            "peers": PEERS,
            "ops": n,
            "repeats": repeats,
            "fixed_cost_ns": parts,
            "thread_safe_floor_ns": floors,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
