"""Host routing cost: 10,000 exact names, 1,000 wildcards, 100 regexes (nginx semantics).

Prints ns per ``Router.match`` for a host of each kind (exact, exact in mixed case,
leading wildcard, trailing wildcard, regex, no match), the ratio to a plain dict lookup of
the same host, the cost of normalising the Host header alone, and the worst case for
hostile Host headers (long, near misses for every regex) to show that the length bound
keeps matching fast. Regex rows are measured with each engine available: PCRE2 (the
``pcre`` extra, nginx's own semantics and match limit) and Python's ``re`` fallback. The
contenders run interleaved (one loop of each per round) and each row is the median.
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


def _loop(fn: Callable[[str], object], sample: list[str]) -> Callable[[], None]:
    def run() -> None:
        for h in sample:
            fn(h)

    return run


def _hostile_loop(match: Callable[[str], object], sample: list[str]) -> Callable[[], None]:
    def run() -> None:
        for h in sample:
            with contextlib.suppress(lbkit.InvalidHostError):
                match(h)

    return run


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
        "exact, mixed case (normalised first)": [
            f"Tenant-{rng.randrange(10_000)}.Example.COM" for _ in range(n)
        ],
        "leading wildcard": [f"a{i}.zone{rng.randrange(500)}.example.net" for i in range(n)],
        "trailing wildcard": [f"www.brand{rng.randrange(500)}.io" for _ in range(n)],
        "regex (first of 100)": [f"wp_c{i}_01.r0.test.org" for i in range(n)],
        "regex (last of 100)": [f"wp_c{i}_01.r99.test.org" for i in range(n)],
        "no match (default)": [f"nobody-{i}.nowhere.io" for i in range(n)],
    }
    table = {f"tenant-{i}.example.com": i for i in range(10_000)}
    # (name, loop, ops per loop): run interleaved, one of each per round, medians at the end
    contenders: list[tuple[str, Callable[[], None], int]] = [
        ("plain dict lookup (floor)", _loop(table.get, hosts["exact"]), n),
        ("normalize_host only", _loop(normalize_host, hosts["exact"]), n),
    ]
    contenders += [(kind, _loop(router.match, sample), n) for kind, sample in hosts.items()]
    if default_engine() == "pcre2":
        fallback = build_router(10_000, 1_000, 100, engine="re")
        for kind in ("regex (first of 100)", "regex (last of 100)", "no match (default)"):
            contenders.append((f"{kind}, re fallback", _loop(fallback.match, hosts[kind]), n))
    # Hostile hosts: as long as accepted, built to get far into every regex before failing.
    hostile = [
        "a" * (MAX_HOST_LENGTH - 30) + "_b_1.r50.test.orx",
        "_".join(["a"] * (MAX_HOST_LENGTH // 2)),
        "a_" * (MAX_HOST_LENGTH // 2 - 1) + "!",
    ]
    hostile = [h[:MAX_HOST_LENGTH] for h in hostile]
    contenders.append(
        (
            f"hostile {MAX_HOST_LENGTH}-byte hosts vs 100 regexes",
            _hostile_loop(router.match, hostile),
            len(hostile),
        )
    )
    runs: dict[str, list[float]] = {name: [] for name, _, _ in contenders}
    for _, fn, _ in contenders:  # one untimed round: compiled regex scans, warm caches
        fn()
    for _ in range(repeats):
        for name, fn, ops in contenders:
            start = time.perf_counter_ns()
            fn()
            runs[name].append((time.perf_counter_ns() - start) / ops)
    results = {name: statistics.median(times) for name, times in runs.items()}

    floor_ns = results["plain dict lookup (floor)"]
    print(
        "Router.match with 10,000 exact names, 1,000 wildcards, 100 regexes "
        f"(median of {repeats}, interleaved)"
    )
    for kind, ns in results.items():
        print(f"  {kind:<45} {ns:12.0f} ns   {ns / floor_ns:8.1f}x dict")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
