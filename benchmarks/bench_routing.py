"""Host routing cost: 10,000 exact names, 1,000 wildcards, 100 regexes (nginx semantics).

Prints ns per ``Router.match`` for a host of each kind (exact, leading wildcard, trailing
wildcard, regex, no match), the ratio to a plain dict lookup of the same host, the cost of
normalising the Host header alone, and the worst case for hostile Host headers (long, near
misses for every regex) to show that the length bound keeps matching fast. Regex rows are
measured with each engine available: PCRE2 (the ``pcre`` extra, nginx's own semantics and
match limit) and Python's ``re`` fallback.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import lbkit
from lbkit.routing import normalize_host
from lbkit.routing._host import MAX_HOST_LENGTH
from lbkit.routing._regex import default_engine
from lbkit.routing._router import Router, ServerBlock


def build_router(exact: int, wild: int, regexes: int, engine: str = "auto") -> Router:
    servers = [ServerBlock(index=0, names=("_",), default=True)]
    for i in range(exact):
        servers.append(ServerBlock(index=len(servers), names=(f"tenant-{i}.example.com",)))
    for i in range(wild // 2):
        servers.append(ServerBlock(index=len(servers), names=(f"*.zone{i}.example.net",)))
        servers.append(ServerBlock(index=len(servers), names=(f"www.brand{i}.*",)))
    for i in range(regexes):
        servers.append(
            ServerBlock(
                index=len(servers),
                names=(rf"~^([a-z0-9]+)_([a-z0-9]+)_([0-9]+)\.r{i}\.test\.org$",),
            )
        )
    return Router(servers, regex_engine=engine)


def _median_ns(fn: Callable[[], object], ops: int, repeats: int) -> float:
    runs = []
    for _ in range(repeats):
        start = time.perf_counter_ns()
        fn()
        runs.append((time.perf_counter_ns() - start) / ops)
    return statistics.median(runs)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Router.match cost by kind of name")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    repeats = args.repeats or (3 if args.quick else 7)
    n = 2_000 if args.quick else 20_000
    router = build_router(10_000, 1_000, 100)
    rng = random.Random(1)
    hosts = {
        "exact": [f"tenant-{rng.randrange(10_000)}.example.com" for _ in range(n)],
        "leading wildcard": [f"a{i}.zone{rng.randrange(500)}.example.net" for i in range(n)],
        "trailing wildcard": [f"www.brand{rng.randrange(500)}.io" for _ in range(n)],
        "regex (first of 100)": [f"wp_c{i}_01.r0.test.org" for i in range(n)],
        "regex (last of 100)": [f"wp_c{i}_01.r99.test.org" for i in range(n)],
        "no match (default)": [f"nobody-{i}.nowhere.io" for i in range(n)],
    }
    table = {f"tenant-{i}.example.com": i for i in range(10_000)}
    floor_hosts = hosts["exact"]

    def floor() -> None:
        get = table.get
        for h in floor_hosts:
            get(h)

    results: dict[str, float] = {"plain dict lookup (floor)": _median_ns(floor, n, repeats)}

    def norm() -> None:
        for h in floor_hosts:
            normalize_host(h)

    results["normalize_host only"] = _median_ns(norm, n, repeats)
    for kind, sample in hosts.items():

        def run(sample: list[str] = sample) -> None:
            match = router.match
            for h in sample:
                match(h)

        results[kind] = _median_ns(run, n, repeats)
    if default_engine() == "pcre2":
        fallback = build_router(10_000, 1_000, 100, engine="re")
        for kind in ("regex (first of 100)", "regex (last of 100)"):
            sample = hosts[kind]

            def run_re(sample: list[str] = sample) -> None:
                match = fallback.match
                for h in sample:
                    match(h)

            results[f"{kind}, re fallback"] = _median_ns(run_re, n, repeats)

    # Hostile hosts: as long as accepted, built to get far into every regex before failing.
    hostile = [
        "a" * (MAX_HOST_LENGTH - 30) + "_b_1.r50.test.orx",
        "_".join(["a"] * (MAX_HOST_LENGTH // 2)),
        "a_" * (MAX_HOST_LENGTH // 2 - 1) + "!",
    ]
    hostile = [h[:MAX_HOST_LENGTH] for h in hostile]

    def run_hostile() -> None:
        for h in hostile:
            with contextlib.suppress(lbkit.InvalidHostError):
                router.match(h)

    worst = _median_ns(run_hostile, len(hostile), repeats)
    results[f"hostile {MAX_HOST_LENGTH}-byte hosts vs 100 regexes"] = worst

    floor_ns = results["plain dict lookup (floor)"]
    print(
        f"Router.match with 10,000 exact names, 1,000 wildcards, 100 regexes (median of {repeats})"
    )
    for kind, ns in results.items():
        print(f"  {kind:<45} {ns:12.0f} ns   {ns / floor_ns:8.1f}x dict")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
