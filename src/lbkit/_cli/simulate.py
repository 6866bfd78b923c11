"""``lbkit simulate``: send N requests through an upstream and chart where they went."""

from __future__ import annotations

import argparse
import random
import sys
from collections import Counter, deque

import attrs

from lbkit import NoLiveUpstreams, Peer, Upstream
from lbkit._cli.sources import load_upstream, read_config
from lbkit._cli.terminal import Progress, bar_chart, progress
from lbkit.nginx import render_method

__all__ = ["Distribution", "add_parser", "simulate"]

#: Runs of at least this many requests show a progress bar on a terminal.
PROGRESS_FROM = 20_000
#: Most requests one run may send.
MAX_REQUESTS = 10_000_000
#: Label of requests no backend took (nginx answers 502).
REFUSED = "(502: no live upstreams)"


@attrs.frozen
class Distribution:
    """How many requests each backend served; ``refused`` got nginx's 502."""

    served: dict[str, int]
    refused: int
    requests: int


def _finish(upstream: Upstream, in_flight: deque[tuple[Peer, object]]) -> None:
    """Complete the oldest request in flight (its attempts object lives until then)."""
    peer, tries = in_flight.popleft()
    upstream.done(peer)
    del tries


def simulate(
    upstream: Upstream,
    requests: int,
    *,
    fail: str | None = None,
    hold: int = 0,
    seed: int = 1,
    progress_bar: Progress | None = None,
) -> Distribution:
    """Send ``requests`` requests (random URIs as keys, random client addresses) through
    ``upstream`` with retries as ``proxy_next_upstream`` does; ``fail`` refuses every
    connection; ``hold`` keeps that many requests in flight (least_conn and max_conns see
    them) before each one completes, oldest first. ``progress_bar`` counts the requests."""
    names = [s.address for s in upstream.servers]
    if fail is not None and fail not in names:
        raise ValueError(f"--fail {fail!r} is not a server of the upstream: {', '.join(names)}")
    if not 0 <= hold <= 100_000:
        raise ValueError(f"--hold must be 0..100000, not {hold}")
    rng = random.Random(seed)
    method = upstream.method
    served: Counter[str] = Counter(dict.fromkeys(names, 0))
    refused = 0
    in_flight: deque[tuple[Peer, object]] = deque()
    for i in range(requests):
        key = f"/item/{rng.randrange(1_000_000)}" if method.needs_key else None
        client = (
            f"{rng.randrange(1, 224)}.{rng.randrange(256)}.{rng.randrange(256)}.7"
            if method.needs_client_addr
            else None
        )
        chosen: Peer | None = None
        # the attempts object stays referenced while its request is in flight: dropping it
        # would give an unreported peer back (and its connection would stop counting)
        tries = upstream.attempts(key, client)
        try:
            for peer in tries:
                if peer.name == fail:
                    upstream.done(peer, failed=True)
                    continue
                chosen = peer
                break
        except NoLiveUpstreams:
            chosen = None
        if chosen is None:
            refused += 1
        else:
            served[chosen.name] += 1
            in_flight.append((chosen, tries))
            while len(in_flight) > hold:
                _finish(upstream, in_flight)
        if progress_bar is not None and (i + 1) % 1000 == 0:
            progress_bar.advance(1000)
    while in_flight:
        _finish(upstream, in_flight)
    if progress_bar is not None and requests % 1000:
        progress_bar.advance(requests % 1000)
    return Distribution(dict(served), refused, requests)


def _plot(dist: Distribution, path: str, title: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ValueError(
            "--plot needs matplotlib: pip install 'lbkit[plot]' (or pip install matplotlib)"
        ) from None
    labels = list(dist.served) + ([REFUSED] if dist.refused else [])
    counts = list(dist.served.values()) + ([dist.refused] if dist.refused else [])
    fig, ax = plt.subplots(figsize=(max(4.0, 1.2 * len(labels)), 3.2))
    ax.bar(labels, counts, color="#4c72b0")
    ax.set_ylabel("requests")
    ax.set_title(title)
    ax.tick_params(axis="x", labelrotation=20)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _run(args: argparse.Namespace) -> int:
    source = read_config(args.config)
    upstream = load_upstream(source, args.upstream)
    if not 1 <= args.requests <= MAX_REQUESTS:
        raise ValueError(f"--requests must be 1..{MAX_REQUESTS}, not {args.requests}")
    show = (
        args.progress
        if args.progress is not None
        else (args.requests >= PROGRESS_FROM and sys.stderr.isatty())
    )
    with progress(args.requests, "simulating", show) as bar:
        dist = simulate(
            upstream,
            args.requests,
            fail=args.fail,
            hold=args.hold,
            seed=args.seed,
            progress_bar=bar,
        )
    method = render_method(upstream.method).rstrip(";") or "round robin"
    title = f"upstream {upstream.name} ({method}): {args.requests} requests"
    if args.fail:
        title += f", {args.fail} failing"
    print(title)
    rows = [(name, count) for name, count in dist.served.items()]
    if dist.refused:
        rows.append((REFUSED, dist.refused))
    print(bar_chart(rows, dist.requests))
    if args.plot:
        _plot(dist, args.plot, title)
        print(f"plot written to {args.plot}")
    return 0


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``lbkit simulate``."""
    p = sub.add_parser(
        "simulate",
        help="send N requests through an upstream; chart the distribution per backend",
        description="Send N requests (random URIs and client addresses) through an upstream "
        "the way nginx would, with retries, and chart where they went.",
    )
    p.add_argument("config", help="nginx file with the upstream block(s) ('-' for stdin)")
    p.add_argument("--upstream", help="which upstream, when the file has several")
    p.add_argument("--requests", type=int, default=10_000, help="number of requests")
    p.add_argument("--fail", metavar="SERVER", help="a server that refuses every connection")
    p.add_argument(
        "--hold", type=int, default=0, metavar="N", help="requests kept in flight (default 0)"
    )
    p.add_argument("--seed", type=int, default=1, help="seed for keys and client addresses")
    p.add_argument("--plot", metavar="OUT.png", help="also draw the chart (needs matplotlib)")
    p.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help=f"progress bar on stderr (default: on a terminal from {PROGRESS_FROM} requests)",
    )
    p.set_defaults(func=_run)
