"""The ``lbkit`` command line: demo, pick, simulate, reshard, predict and route.

Each subcommand lives in its own module under ``lbkit._cli``; this module builds the parser
and turns errors into messages and exit status 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from lbkit import LbkitError, __version__
from lbkit._cli import predict, reshard, simulate
from lbkit._cli.diagnostics import LocatedConfigError, located
from lbkit._cli.sources import ConfigFile, read_config
from lbkit.demo import DEFAULT_UPSTREAM, demo_methods, format_reports, run_demo
from lbkit.nginx import parse_upstream

__all__ = ["build_parser", "main"]


def _config_or_default(path: str | None) -> ConfigFile:
    return ConfigFile("<default>", DEFAULT_UPSTREAM) if path is None else read_config(path)


def _demo(args: argparse.Namespace) -> int:
    source = _config_or_default(args.config)
    with located(source.path, source.text):
        methods = demo_methods(source.text)
        reports = run_demo(source.text, args.requests, args.fail, args.seed)
    print("upstream:")
    print(source.text.rstrip())
    own = f"with the upstream's own method ({methods[0][0]})"
    what = own if len(methods) == 1 else "per method"
    print(f"\n{args.requests} requests {what}; share of requests each backend served\n")
    print(format_reports(reports))
    return 0


def _pick(args: argparse.Namespace) -> int:
    source = _config_or_default(args.config)
    with located(source.path, source.text):
        up = parse_upstream(source.text)
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
    simulate.add_parser(sub)
    reshard.add_parser(sub)
    predict.add_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``lbkit`` script and ``python -m lbkit``: exit status 0 when
    done, 1 when some input lines were invalid, 2 on errors (message on stderr)."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except BrokenPipeError:
        # the reader went away (``| head``): stop quietly, as other command-line tools do
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return 0
    except LocatedConfigError as exc:
        print(exc.describe(), file=sys.stderr)
        return 2
    except (LbkitError, OSError, ValueError) as exc:
        print(f"lbkit: error: {exc}", file=sys.stderr)
        return 2
