"""Cost of one ``pick()`` + ``done()`` pair for each nginx method with 3 to 1,000 peers.

For every method (round robin, least_conn, least_time, ip_hash, hash, hash consistent,
random, random two least_conn) and every upstream size, a loop of ``pick()`` + ``done()``
over pre-generated keys / IPv4 client addresses is timed with ``time.perf_counter_ns``.
Servers have weights 1, 2, 3, 1, 2, 3... so the weighted code paths run. Each pick is
reported before the next, except in the ``least_conn, 16 held`` row, which keeps 16 picks
outstanding (each new pick reports the oldest), as 16 concurrent requests would.

The machine this runs on is noisy, so:

- each case gets one untimed warm-up run, then ``--repeats`` timed runs;
- the repeats are interleaved (round 1 of every case, then round 2...), so a burst of load
  from elsewhere slows every case a little instead of one case a lot;
- the garbage collector is off during a timed run (as ``timeit`` does);
- the figure reported is the MEDIAN ns per pick, with the minimum beside it;
- every median is also given as a ratio to a floor measured the same way: a plain Python
  loop doing ``random.choice(names)`` over the list of server names and nothing else.
  Ratios move much less than nanoseconds from one machine or one run to the next;
- each hash method (hash, hash consistent, ip_hash) is also measured beside its lookup
  alone (``lookup: ...`` rows: the key or client address to a server through the method's
  own table or ring, no upstream around it), and the ``x lookup`` column divides by it.

``--json PATH`` writes every sample and the environment, for later comparisons.
"""

from __future__ import annotations

import argparse
import bisect
import collections
import datetime
import gc
import itertools
import json
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import lbkit
from lbkit.rings._ketama import nginx_ring_table
from lbkit.upstream import PeerGroup

#: Name of the reference row; ratios are relative to it.
FLOOR = "floor: random.choice(list)"

#: The peer row: lbkit's precomputed nginx order alone, what a pick at least costs.
SCHEDULE = "peer: SmoothSchedule.next()"

#: The ring/table lookup alone of each hash method: what its pick() at least costs.
LOOKUP = "lookup: "

#: Upstream sizes measured (round robin and least_conn must stay flat from 10 to 1,000).
PEER_COUNTS: tuple[int, ...] = (3, 10, 100, 1000)

#: What each method's ``pick()`` is given: nothing, ``key=`` or ``client_addr=``.
NO_ARG, KEY, ADDR = "none", "key", "client_addr"
#: No argument, with :data:`HELD` picks kept outstanding (each pick releases the oldest).
HOLDING = "holding"
#: Connections a ``HOLDING`` loop keeps open, as 16 concurrent requests would.
HELD = 16

#: label -> (factory of the method, argument its pick() needs), in table order.
METHODS: dict[str, tuple[Callable[[], lbkit.Method], str]] = {
    "round robin": (lbkit.RoundRobin, NO_ARG),
    "least_conn": (lbkit.LeastConn, NO_ARG),
    f"least_conn, {HELD} held": (lbkit.LeastConn, HOLDING),
    "least_time header": (lbkit.LeastTimeMethod, NO_ARG),
    "least_time last_byte inflight": (
        lambda: lbkit.LeastTimeMethod("last_byte", inflight=True),
        NO_ARG,
    ),
    "ip_hash": (lbkit.IpHash, ADDR),
    "hash": (lambda: lbkit.Hash("$request_uri"), KEY),
    "hash consistent": (lambda: lbkit.Hash("$request_uri", consistent=True), KEY),
    "random": (lambda: lbkit.Random(seed=1), NO_ARG),
    "random two least_conn": (lambda: lbkit.Random(two=True, least_conn=True, seed=1), NO_ARG),
}

#: The methods measured beside their lookup alone (:func:`lookup_loop`).
LOOKUPS = ("ip_hash", "hash", "hash consistent")

#: (picks per timed run, repeats) for each mode.
QUICK = (3_000, 5)
FULL = (20_000, 11)


@dataclass
class Case:
    """One row of the table: a timed loop of ``ops`` operations."""

    method: str
    peers: int
    ops: int
    run: Callable[[], None]
    upstream: lbkit.Upstream | None = None
    samples_ns: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.samples_ns)

    @property
    def minimum(self) -> float:
        return min(self.samples_ns)


def make_servers(peers: int) -> list[lbkit.Server]:
    """``peers`` servers 10.0.x.y:80 with weights 1, 2, 3, 1, 2, 3..."""
    return [
        lbkit.Server(f"10.0.{i // 250}.{i % 250 + 1}:80", weight=1 + i % 3) for i in range(peers)
    ]


def make_inputs(n: int, seed: int = 7) -> tuple[list[str], list[str]]:
    """``n`` request URIs (hash keys) and ``n`` IPv4 client addresses, as text."""
    rng = random.Random(seed)
    keys = [f"/item/{rng.getrandbits(40):x}?page={rng.randrange(100)}" for _ in range(n)]
    addrs = [
        f"{rng.randrange(1, 224)}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        for _ in range(n)
    ]
    return keys, addrs


def floor_loop(names: list[str], inputs: list[str]) -> Callable[[], None]:
    """The floor: the same loop shape as the picks, doing only ``random.choice(names)``."""
    choice = random.Random(3).choice

    def run() -> None:
        for _ in inputs:
            choice(names)

    return run


def schedule_loop(servers: list[lbkit.Server], inputs: list[str]) -> Callable[[], None]:
    """The peer: the same loop shape doing only ``SmoothSchedule.next()`` (no health)."""
    step = lbkit.SmoothSchedule([s.address for s in servers], [s.weight for s in servers]).next

    def run() -> None:
        for _ in inputs:
            step()

    return run


def lookup_loop(
    label: str, servers: list[lbkit.Server], keys: list[str], addrs: list[str]
) -> Callable[[], None]:
    """The lookup floor of a hash method: the key (or address) to its server through the
    method's own table or ring, with no upstream around it (no health, no accounting).

    The structures are the ones the method's picker builds, so that ``x lookup`` compares
    like with like: hash's weight ranges (a bisect over their starts, as
    ``PeerGroup.peer_at``), ip_hash's table of the peer of each hash
    (``PeerGroup.peers_by_weight``), and hash consistent's ring with its prefix table
    (``nginx_ring_table``, whose lookup is mostly one table index).
    """
    names = [s.address for s in servers]
    if label == "hash consistent":
        pairs = [(s.address, s.weight) for s in servers]
        lookup = nginx_ring_table(pairs, names).lookup

        def run_ring() -> None:
            for k in keys:
                lookup(k.encode())

        return run_ring
    if label == "hash":
        starts = list(itertools.accumulate((s.weight for s in servers), initial=0))[:-1]
        total = sum(s.weight for s in servers)
        bisect_right = bisect.bisect_right
        crc15 = lbkit.hashing.memcached_crc15

        def run_table() -> None:
            for k in keys:
                names[bisect_right(starts, crc15(k.encode()) % total) - 1]

        return run_table
    by_hash = PeerGroup.from_servers(servers).peers_by_weight(lbkit.hashing.IP_HASH_MODULUS)
    step = lbkit.hashing.ip_hash_step
    address_bytes = lbkit.hashing.client_address_bytes
    size = len(by_hash)

    def run_ip() -> None:
        for a in addrs:
            by_hash[step(89, address_bytes(a)) % size]

    return run_ip


def pick_loop(
    up: lbkit.Upstream, arg: str, keys: list[str], addrs: list[str]
) -> Callable[[], None]:
    """A loop of ``done(pick(...))`` giving each pick what its method needs."""
    pick, done = up.pick, up.done
    if arg == KEY:

        def run_key() -> None:
            for k in keys:
                done(pick(key=k))

        return run_key
    if arg == ADDR:

        def run_addr() -> None:
            for a in addrs:
                done(pick(client_addr=a))

        return run_addr
    if arg == HOLDING:

        def run_holding() -> None:
            # Peers busy while others are picked: least_conn's ties are no longer all of
            # them (its buckets by connections per weight must keep up, not only the
            # round-robin order).
            held = collections.deque(pick() for _ in range(HELD))
            for _ in keys:
                held.append(pick())
                done(held.popleft())
            for peer in held:
                done(peer)

        return run_holding

    def run_plain() -> None:
        for _ in keys:
            done(pick())

    return run_plain


def build_cases(n: int, peer_counts: Sequence[int], methods: Sequence[str]) -> list[Case]:
    keys, addrs = make_inputs(n)
    cases: list[Case] = []
    for peers in peer_counts:
        servers = make_servers(peers)
        names = [s.address for s in servers]
        cases.append(Case(FLOOR, peers, n, floor_loop(names, keys)))
        cases.append(Case(SCHEDULE, peers, n, schedule_loop(servers, keys)))
        for label in methods:
            make, arg = METHODS[label]
            if label in LOOKUPS:
                cases.append(
                    Case(LOOKUP + label, peers, n, lookup_loop(label, servers, keys, addrs))
                )
            up = lbkit.Upstream(servers, make())
            cases.append(Case(label, peers, n, pick_loop(up, arg, keys, addrs), up))
    return cases


def time_once(run: Callable[[], None]) -> int:
    """Nanoseconds for one call of ``run`` with the garbage collector off."""
    gc.collect()
    enabled = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter_ns()
        run()
        return time.perf_counter_ns() - start
    finally:
        if enabled:
            gc.enable()


def measure(cases: list[Case], repeats: int, progress: bool) -> None:
    """Warm every case up once, then time ``repeats`` interleaved rounds."""
    for case in cases:
        case.run()
    for round_no in range(repeats):
        if progress:
            print(f"\r  round {round_no + 1}/{repeats}", end="", file=sys.stderr, flush=True)
        for case in cases:
            case.samples_ns.append(time_once(case.run) / case.ops)
    if progress:
        print("\r" + " " * 30 + "\r", end="", file=sys.stderr, flush=True)


def check_balanced(cases: list[Case]) -> None:
    """Every pick was matched by a done(): no connection may be left counted."""
    for case in cases:
        if case.upstream is None:
            continue
        busy = [p.name for p in case.upstream.peers if p.conns]
        if busy:
            raise RuntimeError(f"{case.method} ({case.peers} peers): conns left on {busy}")


def floors(cases: list[Case]) -> dict[int, float]:
    return {c.peers: c.median for c in cases if c.method == FLOOR}


def _table_order(case: Case) -> tuple[int, int, int]:
    """Floor first, then the methods in :data:`METHODS` order (a hash method after its
    lookup alone), each by number of peers."""
    method = case.method.removeprefix(LOOKUP)
    return (
        [FLOOR, SCHEDULE, *METHODS].index(method),
        0 if case.method.startswith(LOOKUP) else 1,
        case.peers,
    )


def format_table(cases: list[Case]) -> str:
    floor_by_peers = floors(cases)
    width = max(len(c.method) for c in cases)
    at_ten = {c.method: c.median for c in cases if c.peers == 10}
    lookups = {(c.method, c.peers): c.median for c in cases if c.method.startswith(LOOKUP)}
    header = (
        f"{'method':<{width}} {'peers':>5} {'median ns':>10} {'min ns':>10} {'x floor':>8}"
        f" {'x 10 peers':>10} {'x lookup':>8}"
    )
    lines = [header, "-" * len(header)]
    for case in sorted(cases, key=_table_order):
        ratio = case.median / floor_by_peers[case.peers]
        # How the cost grows with the upstream: the goal is flat (at most 1.5x at 1,000).
        growth = f"{case.median / at_ten[case.method]:>10.2f}" if case.method in at_ten else ""
        # A hash method against its lookup alone: the goal is at most 1.5x.
        lookup = lookups.get((LOOKUP + case.method, case.peers))
        versus = f" {case.median / lookup:>8.2f}" if lookup else ""
        lines.append(
            f"{case.method:<{width}} {case.peers:>5} {case.median:>10,.0f} {case.minimum:>10,.0f}"
            f" {ratio:>8.1f} {growth:>10}{versus}".rstrip()
        )
    return "\n".join(lines)


def format_comparison(cases: list[Case], path: Path) -> str:
    """The change of each ratio to the floor since the run saved in ``path`` (``--json``).

    Ratios, not nanoseconds, are compared: they survive a change of machine or load better.
    """
    old_data = json.loads(path.read_text())
    old = {(r["method"], r["peers"]): r for r in old_data["results"]}
    env = old_data.get("environment", {})
    floor_by_peers = floors(cases)
    width = max(len(c.method) for c in cases)
    header = f"{'method':<{width}} {'peers':>5} {'old x':>7} {'new x':>7} {'change':>8}"
    lines = [f"(earlier run: {env.get('date', '?')}, python {env.get('python', '?')})", header]
    for case in sorted(cases, key=_table_order):
        before = old.get((case.method, case.peers))
        if case.method in (FLOOR, SCHEDULE) or case.method.startswith(LOOKUP) or before is None:
            continue
        ratio = case.median / floor_by_peers[case.peers]
        change = ratio / before["ratio_to_floor"] - 1
        lines.append(
            f"{case.method:<{width}} {case.peers:>5} {before['ratio_to_floor']:>7.1f}"
            f" {ratio:>7.1f} {change:>+8.0%}"
        )
    return "\n".join(lines)


def environment() -> dict[str, object]:
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "lbkit": lbkit.__version__,
    }


def to_json(
    cases: list[Case], n: int, repeats: int, quick: bool, env: dict[str, object]
) -> dict[str, object]:
    floor_by_peers = floors(cases)
    return {
        "benchmark": "bench_pick",
        "unit": "ns per pick()+done()",
        "floor": FLOOR,
        "mode": "quick" if quick else "full",
        "picks_per_run": n,
        "repeats": repeats,
        "environment": env,
        "results": [
            {
                "method": c.method,
                "peers": c.peers,
                "median_ns": round(c.median, 1),
                "min_ns": round(c.minimum, 1),
                "ratio_to_floor": round(c.median / floor_by_peers[c.peers], 2),
                "samples_ns": [round(s, 1) for s in c.samples_ns],
            }
            for c in cases
        ],
    }


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text}")
    return value


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="ns per pick()+done() for each nginx method, medians and ratio to a floor"
    )
    parser.add_argument(
        "--quick", action="store_true", help=f"{QUICK[0]:,} picks x {QUICK[1]} repeats"
    )
    parser.add_argument(
        "--repeats",
        type=positive_int,
        help=f"timed runs per case (default {FULL[1]}, {QUICK[1]} with --quick)",
    )
    parser.add_argument(
        "--picks",
        type=positive_int,
        help=f"picks per timed run (default {FULL[0]:,}, {QUICK[0]:,} with --quick)",
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="write the results here")
    parser.add_argument(
        "--compare",
        type=Path,
        metavar="PATH",
        help="a --json file from an earlier run: print the change of each ratio to the floor",
    )
    parser.add_argument(
        "--method",
        action="append",
        choices=list(METHODS),
        help="measure only this method (repeatable; default all)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    default_n, default_repeats = QUICK if args.quick else FULL
    n = args.picks or default_n
    repeats = args.repeats or default_repeats
    methods = args.method or list(METHODS)
    env = environment()
    print(
        f"bench_pick: pick() + done(), ns per pick, median and min of {repeats} runs of "
        f"{n:,} picks\n"
        f"python {env['python']} on {env['platform']}, {env['cpus']} cpus, "
        f"lbkit {env['lbkit']}, {env['date']}\n"
        f"x floor = median / median of '{FLOOR}' over the same number of servers\n"
    )
    started = time.perf_counter()
    cases = build_cases(n, PEER_COUNTS, methods)
    measure(cases, repeats, progress=sys.stderr.isatty())
    check_balanced(cases)
    print(format_table(cases))
    print(f"\n({time.perf_counter() - started:.1f} s)")
    if args.compare:
        print(f"\ncompared with {args.compare}:\n{format_comparison(cases, args.compare)}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(to_json(cases, n, repeats, args.quick, env), indent=2) + "\n"
        )
        print(f"results written to {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
