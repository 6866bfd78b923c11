"""Framework adapters and PHP's formats: what an lbkit session costs a request.

A Flask view that reads and changes its session, called through Flask's test client:
Flask's own signed-cookie session (the floor: no store at all) against
``lbkit.integrations.flask.SessionInterface`` on a MemoryStore and on a real redis-server
(the Debian package, started here on a free port), runs interleaved, medians of the
repeats. Then ``PhpSerializer`` against ``JSONSerializer`` on one typical session.
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from flask import Flask, session

from _servers import redis_server, running
from lbkit import sessions
from lbkit.integrations.flask import SessionInterface

SESSION = {
    "user": "alice",
    "roles": ["admin", "editor"],
    "cart": [{"sku": f"item-{i}", "qty": i} for i in range(5)],
    "csrf": "x" * 43,
    "n": 0,
}


def _app(interface: Any | None) -> Flask:
    app = Flask(__name__)
    app.secret_key = "k" * 32
    if interface is not None:
        app.session_interface = interface

    @app.post("/")
    def bump() -> str:
        if "user" not in session:
            session.update(SESSION)
        session["n"] += 1
        return str(session["n"])

    return app


def _requests_per_s(app: Flask, n: int) -> float:
    client = app.test_client()
    client.post("/")  # the session exists from here on
    start = time.perf_counter()
    for _ in range(n):
        client.post("/")
    return n / (time.perf_counter() - start)


def _per_s(fn: Callable[[], object], n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return n / (time.perf_counter() - start)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="framework adapter and PHP format costs")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    n = 200 if args.quick else 2000
    repeats = 3 if args.quick else 5
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp, running(redis_server(Path(tmp))) as redis_proc:
        port = redis_proc.port
        apps = {
            "Flask cookie session (floor)": _app(None),
            "lbkit SessionInterface, MemoryStore": _app(SessionInterface(sessions.MemoryStore())),
            "lbkit SessionInterface, RedisStore": _app(
                SessionInterface(sessions.RedisStore(f"redis://127.0.0.1:{port}/0"))
            ),
        }
        runs: dict[str, list[float]] = {name: [] for name in apps}
        for _ in range(repeats):  # interleaved: every app sees the same machine state
            for name, app in apps.items():
                runs[name].append(_requests_per_s(app, n))
        for name, values in runs.items():
            results[f"{name} (requests/s)"] = statistics.median(values)

    serializers: dict[str, Any] = {
        "JSONSerializer": sessions.JSONSerializer(),
        "PhpSerializer php": sessions.PhpSerializer("php"),
        "PhpSerializer php_serialize": sessions.PhpSerializer("php_serialize"),
    }
    m = n * 10
    codec_runs: dict[str, list[float]] = {}
    for _ in range(repeats):
        for name, codec in serializers.items():
            raw = codec.dumps(SESSION)
            dumps = codec_runs.setdefault(f"{name}.dumps", [])
            dumps.append(_per_s(functools.partial(codec.dumps, SESSION), m))
            loads = codec_runs.setdefault(f"{name}.loads", [])
            loads.append(_per_s(functools.partial(codec.loads, raw), m))
    for name, values in codec_runs.items():
        results[f"{name} (ops/s)"] = statistics.median(values)

    floor = results["Flask cookie session (floor) (requests/s)"]
    width = max(map(len, results))
    for name, value in results.items():
        ratio = f"  {value / floor:5.2f}x the floor" if "requests/s" in name else ""
        print(f"{name:<{width}}  {value:12,.0f}{ratio}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
