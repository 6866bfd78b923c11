"""What ``sticky`` costs per pick: plain method vs sticky without a hint vs with a hint.

Run: ``.venv/bin/python benchmarks/bench_sticky.py [--quick] [--json PATH]``. For round
robin, least_conn and hash (8 servers), rounds of pick+done are interleaved (plain, sticky
with no hint, sticky with a hint naming a server) in one run; medians and the ratios to the
plain method are printed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from lbkit import Upstream
from lbkit.balancers import Hash, LeastConn, RoundRobin, Sticky, StickyMethod
from lbkit.upstream import Method, parse_server_line

SERVERS = [f"10.0.0.{i}:80" for i in range(1, 9)]
ROUNDS = 7
PICKS = 5000


def make(method: Method) -> Upstream:
    return Upstream([parse_server_line(s) for s in SERVERS], method, name="b")


def per_pick(pick: Callable[[], Any], done: Callable[[Any], None], picks: int) -> float:
    start = time.perf_counter()
    for _ in range(picks):
        done(pick())
    return (time.perf_counter() - start) / picks * 1e6


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="3 rounds of 1,000 picks")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)
    rounds, picks = (3, 1000) if args.quick else (ROUNDS, PICKS)
    results: dict[str, Any] = {"pick_us": {}}
    cookie = Sticky("cookie", cookie="srv_id")
    hint = cookie.sid(SERVERS[3])
    methods: list[tuple[str, Callable[[], Method], str | None]] = [
        ("round robin", RoundRobin, None),
        ("least_conn", LeastConn, None),
        ("hash", lambda: Hash("$uri"), "/index.html"),
    ]
    for label, method, key in methods:
        plain = make(method())
        sticky = make(StickyMethod(method(), cookie))
        contenders = {
            "plain": lambda up=plain, k=key: up.pick(key=k),
            "sticky, no hint": lambda up=sticky, k=key: up.pick(key=k),
            "sticky, hint": lambda up=sticky, k=key: up.pick(key=k, sticky=hint),
        }
        ups = {"plain": plain, "sticky, no hint": sticky, "sticky, hint": sticky}
        times: dict[str, list[float]] = {name: [] for name in contenders}
        for _ in range(rounds):
            for name, pick in contenders.items():
                times[name].append(per_pick(pick, ups[name].done, picks))
        medians = {name: statistics.median(t) for name, t in times.items()}
        results["pick_us"][label] = medians
        base = medians["plain"]
        shown = ", ".join(f"{name} {us:.2f} us ({us / base:.2f}x)" for name, us in medians.items())
        print(f"{label:12} 8 servers, pick+done: {shown}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
