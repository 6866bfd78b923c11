"""``python -m lbkit.sharedance``: run the sharedance-compatible server."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import Sequence

from lbkit.sharedance.protocol import DEFAULT_PORT
from lbkit.sharedance.server import SharedanceServer


def main(argv: Sequence[str] | None = None) -> int:
    """Parse sharedanced's options and serve until interrupted."""
    p = argparse.ArgumentParser(prog="python -m lbkit.sharedance", description=__doc__)
    p.add_argument("--ip", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"TCP port (default {DEFAULT_PORT})"
    )
    p.add_argument("--directory", required=True, help="storage directory")
    p.add_argument("--expiration", type=float, default=600.0, help="seconds an entry lives")
    p.add_argument("--timeout", type=float, default=10.0, help="idle connection timeout (s)")
    p.add_argument("--maxreadsize", type=int, default=16 * 1024 * 1024, help="largest request")
    p.add_argument("--readsize", type=int, default=65536, help="read chunk size")
    p.add_argument("--backlog", type=int, default=128, help="listen backlog")
    p.add_argument(
        "--maxconnections",
        type=int,
        default=None,
        help="clients served at once (default: half the open-file limit, at most 1024)",
    )
    args = p.parse_args(argv)
    server = SharedanceServer(
        args.directory,
        args.ip,
        args.port,
        expiration=args.expiration,
        timeout=args.timeout,
        max_read_size=args.maxreadsize,
        read_size=args.readsize,
        backlog=args.backlog,
        max_connections=args.maxconnections,
    )

    async def run() -> None:
        await server.start()
        print(f"sharedance listening on {args.ip}:{server.port}", file=sys.stderr, flush=True)
        await server.serve_forever()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
