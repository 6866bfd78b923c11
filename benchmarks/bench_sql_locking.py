"""The lock question: concurrent session writers on PostgreSQL, MariaDB, SQLite and Redis.

Starts a real PostgreSQL and MariaDB (Debian packages postgresql and mariadb-server, durable
settings: fsync / innodb_flush_log_at_trx_commit=1) and redis-server on free loopback ports,
then runs 1, 4, 16 and 64 concurrent writers, spread over up to 4 worker processes (threads
within each, like web-server workers), each saving a 1 KiB session with a 30-minute TTL:

- ``same``: every writer saves the same session (one hot row: the row lock serialises them);
- ``different``: each writer saves its own session.

Prints writes/s, median and p99 write latency, lock waits and deadlocks. Lock waits come
from the database itself: MariaDB's ``Innodb_row_lock_waits``; for PostgreSQL the number of
backends seen waiting on a lock, sampled every 5 ms (``pg_stat_activity``); SQLite's
writers all wait on one database lock (its p99 shows it); Redis has no locks. Deadlocks:
PostgreSQL's ``pg_stat_database.deadlocks``, MariaDB's ``Innodb_deadlocks`` and the store's
own deadlock retries; they must be 0.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

WRITERS = (1, 4, 16, 64)
MODES = ("same", "different")
VALUE = b"s" * 1024


def _store(backend: str, target: str, threads: int) -> Any:
    from lbkit import sessions

    if backend == "redis":
        return sessions.RedisStore(target, prefix="bench:", timeout=30.0)
    if backend == "sqlite":
        return sessions.SqliteStore(target, timeout=30.0)
    return sessions.SqlStore(target, timeout=30.0, pool_size=max(1, threads))


def _worker(backend: str, target: str, index: int, jobs: Any, results: Any) -> None:
    """One web-server process: runs ``threads`` writers per job it is given."""
    stores: dict[int, Any] = {}
    while True:
        job = jobs.get()
        if job is None:
            break
        threads, mode, seconds, start_at, run_id = job
        store = stores.get(threads)
        if store is None:
            store = stores[threads] = _store(backend, target, threads)
            store.get("warm-up")
        latencies: list[list[float]] = [[] for _ in range(threads)]
        errors = [0] * threads
        keys = ["hot" if mode == "same" else f"own-{run_id}-{index}-{t}" for t in range(threads)]
        pool = [
            threading.Thread(
                target=_write,
                args=(store, keys[t], start_at, start_at + seconds, latencies[t], errors, t),
            )
            for t in range(threads)
        ]
        for th in pool:
            th.start()
        for th in pool:
            th.join()
        retries = getattr(store, "deadlock_retries", 0)
        results.put(([x for lat in latencies for x in lat], sum(errors), retries))
    for store in stores.values():
        store.close()


def _write(
    store: Any,
    key: str,
    start_at: float,
    stop: float,
    latencies: list[float],
    errors: list[int],
    slot: int,
) -> None:
    """One writer: saves ``key`` from ``start_at`` until ``stop`` (wall clock)."""
    while time.time() < start_at:
        time.sleep(0.001)
    while True:
        began = time.perf_counter()
        if time.time() >= stop:
            break
        try:
            store.set(key, VALUE, ttl=1800)
        except Exception:
            errors[slot] += 1
            continue
        latencies.append(time.perf_counter() - began)


class Probe:
    """Reads a database's lock and deadlock counters around a run."""

    def __init__(self, backend: str, url: str | None) -> None:
        self.backend = backend
        self.engine: Any = None
        self.samples: list[int] = []
        self._stop = threading.Event()
        if url is not None:
            import sqlalchemy as sa

            driver = {"postgresql": "postgresql+psycopg", "mariadb": "mysql+pymysql"}[backend]
            self.engine = sa.create_engine(
                sa.make_url(url).set(drivername=driver), isolation_level="AUTOCOMMIT"
            )

    def counters(self) -> tuple[int, int]:
        """(lock waits, deadlocks) so far."""
        import sqlalchemy as sa

        if self.engine is None:
            return 0, 0
        with self.engine.connect() as conn:
            if self.backend == "mariadb":
                rows = dict(
                    conn.execute(
                        sa.text(
                            "SHOW GLOBAL STATUS WHERE Variable_name IN "
                            "('Innodb_row_lock_waits', 'Innodb_deadlocks')"
                        )
                    ).all()
                )
                return int(rows["Innodb_row_lock_waits"]), int(rows.get("Innodb_deadlocks", 0))
            deadlocks = conn.execute(
                sa.text("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()")
            ).scalar()
            return 0, int(deadlocks or 0)

    def start(self) -> None:
        self.samples = []
        self._stop.clear()
        if self.backend == "postgresql":
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self.backend == "postgresql":
            self._thread.join()

    def _sample(self) -> None:
        import sqlalchemy as sa

        query = sa.text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")
        # heavyweight locks only (a row or transaction lock), not LWLocks or I/O
        with self.engine.connect() as conn:
            while not self._stop.is_set():
                self.samples.append(int(conn.execute(query).scalar() or 0))
                time.sleep(0.005)


def run_backend(backend: str, target: str, url: str | None, seconds: float) -> list[dict[str, Any]]:
    ctx = multiprocessing.get_context("spawn")
    procs_n = 4
    jobs = [ctx.Queue() for _ in range(procs_n)]
    results = ctx.Queue()
    procs = [
        ctx.Process(target=_worker, args=(backend, target, i, jobs[i], results), daemon=True)
        for i in range(procs_n)
    ]
    for p in procs:
        p.start()
    probe = Probe(backend, url)
    rows = []
    try:
        for run_id, (writers, mode) in enumerate((w, m) for w in WRITERS for m in MODES):
            used = min(procs_n, writers)
            per_proc = writers // used
            waits0, dead0 = probe.counters()
            start_at = time.time() + 1.5 + 0.02 * writers  # time to open the connections
            probe.start()
            for q in jobs[:used]:
                q.put((per_proc, mode, seconds, start_at, run_id))
            latencies: list[float] = []
            errors = retries = 0
            for _ in range(used):
                lat, err, retry = results.get(timeout=300)
                latencies += lat
                errors += err
                retries += retry
            probe.stop()
            waits1, dead1 = probe.counters()
            latencies.sort()
            lock_waits = (
                f"{statistics.fmean(probe.samples or [0]):.1f} avg"
                if backend == "postgresql"
                else str(waits1 - waits0)
                if backend == "mariadb"
                else "db lock"
                if backend == "sqlite"
                else "none"
            )
            rows.append(
                {
                    "backend": backend,
                    "mode": mode,
                    "writers": writers,
                    "writes_per_s": len(latencies) / seconds,
                    "median_ms": statistics.median(latencies) * 1e3 if latencies else 0.0,
                    "p99_ms": latencies[max(0, int(len(latencies) * 0.99) - 1)] * 1e3
                    if latencies
                    else 0.0,
                    "lock_waits": lock_waits,
                    "deadlocks": (dead1 - dead0) + retries,
                    "errors": errors,
                }
            )
            _print_row(rows[-1])
    finally:
        for q in jobs:
            q.put(None)
        for p in procs:
            p.join(30)
            if p.is_alive():
                p.kill()
        if probe.engine is not None:
            probe.engine.dispose()
    return rows


HEADER = (
    f"  {'backend':<10} {'mode':<9} {'writers':>7} {'writes/s':>9} {'median ms':>9} "
    f"{'p99 ms':>8} {'lock waits':>11} {'deadlocks':>9} {'errors':>6}"
)


def _print_row(r: dict[str, Any]) -> None:
    print(
        f"  {r['backend']:<10} {r['mode']:<9} {r['writers']:>7} {r['writes_per_s']:>9.0f} "
        f"{r['median_ms']:>9.2f} {r['p99_ms']:>8.2f} {r['lock_waits']:>11} "
        f"{r['deadlocks']:>9} {r['errors']:>6}",
        flush=True,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="session writers on SQL databases and Redis")
    parser.add_argument("--quick", action="store_true", help="0.5 s per cell instead of 2 s")
    parser.add_argument("--seconds", type=float, default=None, help="seconds per cell")
    parser.add_argument(
        "--only", action="append", default=[], help="postgresql, mariadb, sqlite or redis"
    )
    parser.add_argument("--json", type=Path, help="write the rows here")
    args = parser.parse_args(argv)
    seconds = args.seconds or (0.5 if args.quick else 2.0)
    wanted = args.only or ["postgresql", "mariadb", "sqlite", "redis"]

    from lbkit import sessions
    from tests.conformance.sql_servers import mariadb_server, postgres_server
    from tests.conformance.stores import redis_server

    print(f"{seconds:g} s per cell; 1 KiB values; writers over up to 4 processes")
    print(HEADER)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for backend in wanted:
            if backend == "postgresql":
                server: Any = postgres_server(durable=True, max_connections=200)
                url = server.url
                store = sessions.SqlStore(url)
                store.create_table()
                store.close()
                try:
                    rows += run_backend(backend, url, url, seconds)
                finally:
                    server.stop()
            elif backend == "mariadb":
                server = mariadb_server(durable=True, max_connections=200)
                url = server.url
                store = sessions.SqlStore(url)
                store.create_table()
                store.close()
                try:
                    rows += run_backend(backend, url, url, seconds)
                finally:
                    server.stop()
            elif backend == "sqlite":
                rows += run_backend(backend, str(Path(tmp) / "s.db"), None, seconds)
            elif backend == "redis":
                work = Path(tmp) / "redis"
                work.mkdir()
                proc = redis_server(work)
                try:
                    target = f"redis://127.0.0.1:{proc.port}/0"
                    rows += run_backend(backend, target, None, seconds)
                finally:
                    proc.stop()
            else:
                parser.error(f"unknown backend {backend!r}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    bad = [r for r in rows if r["deadlocks"]]
    if bad:
        print(f"DEADLOCKS in {len(bad)} cells", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
