"""Session stores against the raw clients: lbkit's overhead over redis-py and pymemcache.

Starts a real redis-server and memcached on free loopback ports (Debian packages
redis-server and memcached), then measures ops/s of get and set through lbkit's stores and
through the clients used directly, in one run, and prints the ratios. Local backends
(memory, files, SQLite) are measured alongside for scale.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from _servers import memcached_server, redis_server, running
from lbkit import sessions


def _ops_per_s(fn: Callable[[int], object], n: int, repeats: int) -> float:
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        for i in range(n):
            fn(i)
        runs.append(n / (time.perf_counter() - start))
    return statistics.median(runs)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="session store overhead over raw clients")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    n = 500 if args.quick else 5000
    repeats = 3 if args.quick else 5
    value = b"x" * 512
    keys = [f"bench-{i}" for i in range(n)]
    results: dict[str, float] = {}
    with (
        tempfile.TemporaryDirectory() as tmp,
        running(redis_server(Path(tmp))) as redis_proc,
        running(memcached_server(None, "-t", "1")) as mc_proc,
    ):
        rport, mport = redis_proc.port, mc_proc.port
        import redis

        # the raw clients get the same settings as lbkit's: timeouts, acknowledged writes
        raw_redis = redis.Redis(port=rport, socket_timeout=5.0, socket_connect_timeout=5.0)
        lb_redis = sessions.RedisStore(f"redis://127.0.0.1:{rport}/0")
        from pymemcache.client.base import Client

        # memcached runs with one worker thread (-t 1): with several threads on a 2-core box,
        # a connection's speed depended on which thread it landed on (up to 8x apart), which
        # swamped the difference between the clients. One throwaway connection warms it up.
        first = Client(("127.0.0.1", mport))
        first.get("warm-up")
        first.close()
        raw_mc = Client(
            ("127.0.0.1", mport),
            connect_timeout=5.0,
            timeout=5.0,
            default_noreply=False,
            no_delay=True,
        )
        lb_mc = sessions.MemcachedStore("127.0.0.1", mport)
        for i in range(n):  # warm both connections up with the keys read below
            raw_mc.set(keys[i], value)
            lb_mc.set(keys[i], value)
        pairs = {
            ("redis-py set (raw SET)", "lbkit RedisStore.set"): (
                lambda i: raw_redis.set(keys[i], value),
                lambda i: lb_redis.set(keys[i], value),
            ),
            ("redis-py get (raw GET)", "lbkit RedisStore.get"): (
                lambda i: raw_redis.get(keys[i]),
                lambda i: lb_redis.get(keys[i]),
            ),
            ("pymemcache set (raw)", "lbkit MemcachedStore.set"): (
                lambda i: raw_mc.set(keys[i], value),
                lambda i: lb_mc.set(keys[i], value),
            ),
            ("pymemcache get (raw)", "lbkit MemcachedStore.get"): (
                lambda i: raw_mc.get(keys[i]),
                lambda i: lb_mc.get(keys[i]),
            ),
        }
        for (raw_name, lb_name), (raw_fn, lb_fn) in pairs.items():
            # alternate raw and lbkit runs so that both see the same machine state
            raw_runs, lb_runs = [], []
            for _ in range(repeats):
                raw_runs.append(_ops_per_s(raw_fn, n, 1))
                lb_runs.append(_ops_per_s(lb_fn, n, 1))
            results[raw_name] = statistics.median(raw_runs)
            results[lb_name] = statistics.median(lb_runs)

        local = {
            "MemoryStore": sessions.MemoryStore(),
            "FileStore (fsync)": sessions.FileStore(Path(tmp) / "f"),
            "FileStore (no fsync)": sessions.FileStore(Path(tmp) / "g", fsync=False),
            "SqliteStore": sessions.SqliteStore(Path(tmp) / "s.db"),
        }
        for name, store in local.items():
            m = max(50, n // 10) if "fsync)" in name and "no" not in name else n
            results[f"lbkit {name}.set"] = _ops_per_s(
                lambda i, s=store: s.set(keys[i], value), m, repeats
            )
            results[f"lbkit {name}.get"] = _ops_per_s(
                lambda i, s=store, m=m: s.get(keys[i % m]), n, repeats
            )

    print(f"ops/s, 512-byte values, {n} ops, median of {repeats} (one process, loopback)")
    for name, ops in results.items():
        print(f"  {name:<34} {ops:12,.0f}")
    print("\nlbkit's cost over the raw client (raw ops/s divided by lbkit ops/s):")
    pairs = [
        ("redis set", "redis-py set (raw SET)", "lbkit RedisStore.set"),
        ("redis get", "redis-py get (raw GET)", "lbkit RedisStore.get"),
        ("memcached set", "pymemcache set (raw)", "lbkit MemcachedStore.set"),
        ("memcached get", "pymemcache get (raw)", "lbkit MemcachedStore.get"),
    ]
    for label, raw, ours in pairs:
        print(f"  {label:<14} {results[raw] / results[ours]:5.2f}x")
    print("  (lbkit's redis set is a Lua script that also keeps a version for compare-and-set)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
