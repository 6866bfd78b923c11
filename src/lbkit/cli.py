"""The ``lbkit`` command line: ``lbkit demo`` and ``lbkit pick``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from lbkit import __version__
from lbkit.demo import DEFAULT_UPSTREAM, format_reports, run_demo
from lbkit.errors import LbkitError
from lbkit.nginx.upstream import parse_upstream

__all__ = ["main"]


def _read_config(path: str | None) -> str:
    if path is None:
        return DEFAULT_UPSTREAM
    if path == "-":
        return sys.stdin.read()
    with open(path, encoding="utf-8") as f:
        return f.read()


def _demo(args: argparse.Namespace) -> int:
    config = _read_config(args.config)
    print("upstream:")
    print(config.rstrip())
    print(f"\n{args.requests} requests per method; share of requests each backend served\n")
    reports = run_demo(config, args.requests, args.fail, args.seed)
    print(format_reports(reports))
    return 0


def _pick(args: argparse.Namespace) -> int:
    up = parse_upstream(_read_config(args.config))
    for _ in range(args.count):
        peer = up.pick(key=args.key, client_addr=args.client_addr)
        print(peer.name)
        up.done(peer)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for documentation and tests)."""
    parser = argparse.ArgumentParser(prog="lbkit", description="nginx-exact load balancing")
    parser.add_argument("--version", action="version", version=f"lbkit {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="route requests with every method on an upstream")
    demo.add_argument("--config", help="file with one nginx upstream block ('-' for stdin)")
    demo.add_argument("--requests", type=int, default=10_000, help="requests per method")
    demo.add_argument("--fail", help="server to mark failed (default: the second)")
    demo.add_argument("--seed", type=int, default=1, help="seed for keys and client addresses")
    demo.set_defaults(func=_demo)
    pick = sub.add_parser("pick", help="print the peers nginx would choose for requests")
    pick.add_argument("--config", help="file with one nginx upstream block ('-' for stdin)")
    pick.add_argument("--key", help="evaluated hash key (hash methods)")
    pick.add_argument("--client-addr", help="client IP (ip_hash)")
    pick.add_argument("--count", type=int, default=1, help="number of sequential requests")
    pick.set_defaults(func=_pick)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``lbkit`` script and ``python -m lbkit``."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (LbkitError, OSError, ValueError) as exc:
        print(f"lbkit: error: {exc}", file=sys.stderr)
        return 2
