"""Cost of one pick() + done() for each nginx method with 3, 10 and 100 peers.

Medians of several repeats, in ns per pick, with the ratio to a floor (a plain Python loop
doing ``random.choice`` over a list and nothing else), so that later changes can show they
made lbkit faster, not slower. ``--json`` saves the numbers for comparisons.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import lbkit

METHODS: dict[str, Callable[[], lbkit.Method]] = {
    "round robin": lbkit.RoundRobin,
    "least_conn": lbkit.LeastConn,
    "ip_hash": lbkit.IpHash,
    "hash": lambda: lbkit.Hash("$request_uri"),
    "hash consistent": lambda: lbkit.Hash("$request_uri", consistent=True),
    "random": lambda: lbkit.Random(seed=1),
    "random two least_conn": lambda: lbkit.Random(two=True, least_conn=True, seed=1),
}


def _median_ns(run: Callable[[], None], ops: int, repeats: int) -> tuple[float, float]:
    run()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter_ns()
        run()
        times.append((time.perf_counter_ns() - start) / ops)
    return statistics.median(times), min(times)


def bench(peers: int, n: int, repeats: int) -> dict[str, tuple[float, float]]:
    servers = [
        lbkit.Server(f"10.0.{i // 250}.{i % 250}:80", weight=1 + i % 3) for i in range(peers)
    ]
    rng = random.Random(7)
    keys = [f"/item/{rng.getrandbits(40)}" for _ in range(n)]
    addrs = [
        f"{rng.randrange(1, 224)}.{rng.randrange(256)}.{rng.randrange(256)}.9" for _ in range(n)
    ]
    out: dict[str, tuple[float, float]] = {}
    names = [s.address for s in servers]

    def floor() -> None:
        choice = rng.choice
        for _ in range(n):
            choice(names)

    out["floor: random.choice"] = _median_ns(floor, n, repeats)
    for label, make in METHODS.items():
        up = lbkit.Upstream(servers, make())
        pick, done = up.pick, up.done
        if label == "ip_hash":

            def run(
                pick: Callable[..., lbkit.Peer] = pick, done: Callable[..., None] = done
            ) -> None:
                for a in addrs:
                    done(pick(client_addr=a))

        elif label.startswith("hash"):

            def run(
                pick: Callable[..., lbkit.Peer] = pick, done: Callable[..., None] = done
            ) -> None:
                for k in keys:
                    done(pick(key=k))

        else:

            def run(
                pick: Callable[..., lbkit.Peer] = pick, done: Callable[..., None] = done
            ) -> None:
                for _ in range(n):
                    done(pick())

        out[label] = _median_ns(run, n, repeats)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="pick()+done() cost per nginx method")
    parser.add_argument("--quick", action="store_true", help="small run, a few seconds")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)
    repeats = args.repeats or (3 if args.quick else 7)
    n = 1_000 if args.quick else 10_000
    results: dict[str, dict[str, list[float]]] = {}
    print(f"pick() + done(), ns per pick: median (min) of {repeats} runs of {n} picks")
    for peers in (3, 10, 100):
        rows = bench(peers, n, repeats)
        floor = rows["floor: random.choice"][0]
        print(f"\n{peers} peers")
        for label, (median, low) in rows.items():
            print(f"  {label:<24} {median:9.0f} ({low:7.0f})  {median / floor:6.1f}x floor")
        results[str(peers)] = {k: [m, lo] for k, (m, lo) in rows.items()}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
