"""Requests per second through examples/proxy against the same backend hit directly.

Starts one backend (tests/examples/backend.py under uvicorn) and the proxy
(``python -m examples.proxy``) as processes on free 127.0.0.1 ports, then runs short
rounds of ``--requests`` GETs with ``--concurrency`` clients, alternating direct and
proxied rounds (interleaved, so load from elsewhere hits both), and reports the median
requests/s of each and their ratio. Two upstreams are measured through the proxy: one
without ``keepalive`` (nginx's default: a new upstream connection per request,
``Connection: close``) and one with ``keepalive 16`` and ``proxy_set_header Connection ""``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

from _servers import ROOT, Process, free_ports, running

CONFIG = """
events {{ }}
http {{
    upstream plain {{ server 127.0.0.1:{backend}; }}
    upstream pooled {{ server 127.0.0.1:{backend}; keepalive 16; }}
    server {{ listen 80; server_name plain.test; location / {{ proxy_pass http://plain; }} }}
    server {{
        listen 80;
        server_name pooled.test;
        location / {{ proxy_set_header Connection ""; proxy_pass http://pooled; }}
    }}
}}
"""


async def _round(url: str, host: str | None, requests: int, concurrency: int) -> float:
    headers = {"Host": host} if host else {}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        left = [requests]

        async def worker() -> None:
            while left[0] > 0:
                left[0] -= 1
                response = await client.get(url, headers=headers)
                assert response.status_code == 200, response.status_code

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return requests / (time.perf_counter() - started)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="200 requests, 2 rounds")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)
    if args.quick:
        args.requests, args.rounds = 200, 2
    backend_port, proxy_port = free_ports(2)
    conf = Path(tempfile.mkdtemp()) / "nginx.conf"
    conf.write_text(CONFIG.format(backend=backend_port))
    backend_args = [sys.executable, "-m", "tests.examples.backend", "b", str(backend_port)]
    proxy_args = [sys.executable, "-m", "examples.proxy", str(conf), "--port", str(proxy_port)]
    with (
        running(Process(backend_args, backend_port, cwd=ROOT, timeout=20)),
        running(Process(proxy_args, proxy_port, cwd=ROOT, timeout=20)),
    ):
        cases = {
            "direct": (f"http://127.0.0.1:{backend_port}/x", None),
            "proxy (no keepalive)": (f"http://127.0.0.1:{proxy_port}/x", "plain.test"),
            "proxy (keepalive 16)": (f"http://127.0.0.1:{proxy_port}/x", "pooled.test"),
        }
        samples: dict[str, list[float]] = {name: [] for name in cases}
        for url, host in cases.values():  # warm-up
            asyncio.run(_round(url, host, 100, args.concurrency))
        for _ in range(args.rounds):
            for name, (url, host) in cases.items():
                samples[name].append(
                    asyncio.run(_round(url, host, args.requests, args.concurrency))
                )
    floor = statistics.median(samples["direct"])
    print(f"{'case':<24}{'median req/s':>14}{'min':>10}{'max':>10}{'vs direct':>11}")
    for name, values in samples.items():
        median = statistics.median(values)
        print(
            f"{name:<24}{median:>14.0f}{min(values):>10.0f}{max(values):>10.0f}"
            f"{median / floor:>10.2f}x"
        )
    if args.json:
        medians = {name: statistics.median(values) for name, values in samples.items()}
        args.json.write_text(json.dumps({"requests_per_s": medians}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
