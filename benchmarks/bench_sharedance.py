"""lbkit's sharedance server against the original C daemon, at 1, 8 and 50 clients.

Setup builds the original daemon from its source (a git checkout given by
``--sharedance-src`` or ``$SHAREDANCE_SRC``) in a temporary directory with its own
autotools build (needs autoconf, automake, make, gcc and libevent-dev); nothing of it is
kept. Both servers get a fresh directory on the same filesystem. Load comes from client
processes, each running asyncio connections that alternate a store (``S``) and a fetch
(``F``) of their own key, one connection per request as the PHP client does. Runs are
interleaved (lbkit, C, lbkit, C...) and the medians compared.

Note: the C daemon neither fsyncs nor checks its writes before answering ``OK``; lbkit's
server fsyncs every store before ``OK`` (batched: a group commit).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from _servers import Process, free_ports, running
from lbkit.sharedance.protocol import encode_fetch, encode_store


def build_original(source: Path, into: Path) -> Path:
    """Build sharedanced from a git checkout ``source`` inside ``into``; its path."""
    for tool in ("autoreconf", "make", "gcc"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} not found: apt-get install -y autoconf automake make gcc")
    tree = into / "sharedance"
    tree.mkdir()
    archive = subprocess.run(
        ["git", f"--git-dir={source}", "archive", "HEAD"], capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "x", "-C", str(tree)], input=archive, check=True)
    for step in (["autoreconf", "-fi"], ["./configure"], ["make", "-j2"]):
        done = subprocess.run(step, cwd=tree, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(step)} failed (libevent-dev installed?):\n{done.stderr}")
    return tree / "src" / "sharedanced"


async def _one(port: int, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        writer.write_eof()
        return await reader.read()
    finally:
        writer.close()


def _client_process(port: int, conns: int, seconds: float, worker: int, out: Any) -> None:
    async def loop(c: int, until: float) -> int:
        key = f"bench-{worker}-{c}".encode()
        value = os.urandom(512)
        done = 0
        while time.monotonic() < until:
            if await _one(port, encode_store(key, value)) != b"OK\n":
                raise SystemExit("store not acknowledged")
            if await _one(port, encode_fetch(key)) != value:
                raise SystemExit("fetch returned something else")
            done += 2
        return done

    async def main() -> int:
        until = time.monotonic() + seconds
        return sum(await asyncio.gather(*(loop(c, until) for c in range(conns))))

    out.put(asyncio.run(main()))


def measure(port: int, clients: int, seconds: float) -> float:
    """Requests per second with ``clients`` concurrent connections."""
    procs = min(clients, 4)
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    per = [clients // procs + (1 if i < clients % procs else 0) for i in range(procs)]
    workers = [
        ctx.Process(target=_client_process, args=(port, n, seconds, i, queue))
        for i, n in enumerate(per)
    ]
    start = time.perf_counter()
    for w in workers:
        w.start()
    total = sum(queue.get(timeout=seconds + 60) for _ in workers)
    for w in workers:
        w.join()
    return total / (time.perf_counter() - start)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sharedance-src", default=os.environ.get("SHAREDANCE_SRC"))
    p.add_argument("--clients", default="1,8,50")
    p.add_argument("--seconds", type=float, default=2.0)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json", help="write the results here")
    p.add_argument("--quick", action="store_true", help="0.5 s per run, one repeat")
    args = p.parse_args(argv)
    if args.quick:
        args.seconds, args.repeats = 0.5, 1
    if not args.sharedance_src:
        # sharedance is in no package registry: without its source only lbkit is measured
        print(
            "no --sharedance-src DIR (or SHAREDANCE_SRC): measuring lbkit's server alone; "
            "give the original sharedance's git directory to compare with the C daemon"
        )
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        names = ["lbkit"]
        lbkit_port, c_port = free_ports(2)
        ports = {"lbkit": lbkit_port}
        (root / "lbkit-data").mkdir()
        lbkit_args = [
            sys.executable, "-m", "lbkit.sharedance", "--port", str(ports["lbkit"]),
            "--directory", str(root / "lbkit-data"),
        ]  # fmt: skip
        with contextlib.ExitStack() as servers:
            servers.enter_context(running(Process(lbkit_args, ports["lbkit"])))
            if args.sharedance_src:
                daemon = build_original(Path(args.sharedance_src), root)
                ports["c"] = c_port
                (root / "c-data").mkdir()
                c_args = [
                    str(daemon), "--ip=127.0.0.1", f"--port={ports['c']}",
                    f"--directory={root / 'c-data'}",
                ]  # fmt: skip
                servers.enter_context(running(Process(c_args, ports["c"])))
                names.append("c")
            print(f"{'clients':>7} {'lbkit req/s':>12} {'C req/s':>10} {'lbkit/C':>8}")
            for clients in (int(c) for c in args.clients.split(",")):
                runs: dict[str, list[float]] = {name: [] for name in names}
                for _ in range(args.repeats):
                    for name in names:
                        runs[name].append(measure(ports[name], clients, args.seconds))
                lb = statistics.median(runs["lbkit"])
                if "c" in runs:
                    c = statistics.median(runs["c"])
                    results[str(clients)] = {"lbkit": lb, "c": c, "ratio": lb / c}
                    print(f"{clients:>7} {lb:>12.0f} {c:>10.0f} {lb / c:>8.2f}", flush=True)
                else:
                    results[str(clients)] = {"lbkit": lb}
                    print(f"{clients:>7} {lb:>12.0f} {'-':>10} {'-':>8}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
