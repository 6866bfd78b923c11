"""The ``lbkit demo``: route requests with every method and show what a failed backend moves."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Iterable

import attrs

from lbkit import NoLiveUpstreams, Upstream
from lbkit.nginx import parse_directives, parse_upstream

__all__ = ["DEFAULT_UPSTREAM", "METHODS", "MethodReport", "demo_methods", "run_demo"]

#: The embedded default: four backends with unequal weights.
DEFAULT_UPSTREAM = """\
upstream app {
    server 10.0.0.1:8080 weight=3;
    server 10.0.0.2:8080 weight=2;
    server 10.0.0.3:8080;
    server 10.0.0.4:8080;
}
"""

#: (label, directive) for every method the demo runs.
METHODS: tuple[tuple[str, str], ...] = (
    ("round robin", ""),
    ("least_conn", "least_conn;"),
    ("ip_hash", "ip_hash;"),
    ("hash", "hash $request_uri;"),
    ("hash consistent", "hash $request_uri consistent;"),
    ("random", "random;"),
    ("random two least_conn", "random two least_conn;"),
)


#: Directives that choose a balancing method inside an upstream block.
_METHOD_DIRECTIVES = ("hash", "ip_hash", "least_conn", "random")


def demo_methods(config: str) -> tuple[tuple[str, str], ...]:
    """The (label, directive) rows to run: every method in :data:`METHODS`, or, when the
    upstream already names a method, only that one, labelled as written."""
    for top in parse_directives(config):
        for d in top.block or ():
            if d.name in _METHOD_DIRECTIVES:
                return ((" ".join((d.name, *d.args)), ""),)
    return METHODS


@attrs.frozen
class MethodReport:
    """Shares before/after one backend fails, and how many requests changed backend."""

    label: str
    failing: str
    before: dict[str, float]
    after: dict[str, float]
    moved: float
    moved_from_healthy: float


def _with_method(config: str, directive: str) -> str:
    if not directive:
        return config
    brace = config.index("{")
    return config[: brace + 1] + f"\n    {directive}" + config[brace + 1 :]


def _route(up: Upstream, requests: list[dict[str, str]], failing: str | None) -> list[str | None]:
    """Send each request through ``attempts()``; the failing backend refuses every one."""
    served: list[str | None] = []
    for kwargs in requests:
        chosen: str | None = None
        try:
            for peer in up.attempts(kwargs.get("key"), kwargs.get("client_addr")):
                ok = peer.name != failing
                up.done(peer, failed=not ok)
                if ok:
                    chosen = peer.name
                    break
        except NoLiveUpstreams:
            chosen = None
        served.append(chosen)
    return served


def _shares(served: Iterable[str | None], names: list[str]) -> dict[str, float]:
    counts = Counter(served)
    total = sum(counts.values()) or 1
    return {name: counts[name] / total for name in names}


def run_demo(
    config: str = DEFAULT_UPSTREAM, requests: int = 10_000, fail: str | None = None, seed: int = 1
) -> list[MethodReport]:
    """Route ``requests`` with each method, then again with ``fail`` (default: the 2nd
    server) refusing connections, and report shares and moved requests.

    A config whose upstream names a method runs that method alone (see :func:`demo_methods`).
    """
    rng = random.Random(seed)
    inputs = [
        {
            "key": f"/item/{rng.randrange(1_000_000)}",
            "client_addr": f"{rng.randrange(1, 224)}.{rng.randrange(256)}.{rng.randrange(256)}.7",
        }
        for _ in range(requests)
    ]
    reports = []
    for label, directive in demo_methods(config):
        text = _with_method(config, directive)
        frozen_clock: Callable[[], float] = lambda: 1_000_000.0  # noqa: E731 - fail_timeout never ends
        up = parse_upstream(text, clock=frozen_clock)
        names = [s.address for s in up.servers]
        failing = fail if fail is not None else names[min(1, len(names) - 1)]
        if failing not in names:
            raise ValueError(f"--fail {failing!r} is not a server of the upstream: {names}")
        needs = {"key"} if up.method.needs_key else set()
        needs |= {"client_addr"} if up.method.needs_client_addr else set()
        reqs = [{k: v for k, v in r.items() if k in needs} for r in inputs]
        before = _route(up, reqs, None)
        after = _route(parse_upstream(text, clock=frozen_clock), reqs, failing)
        changed = sum(1 for a, b in zip(before, after, strict=True) if a != b)
        healthy = [(a, b) for a, b in zip(before, after, strict=True) if a != failing]
        changed_healthy = sum(1 for a, b in healthy if a != b)
        reports.append(
            MethodReport(
                label,
                failing,
                _shares(before, names),
                _shares(after, names),
                changed / max(len(before), 1),
                changed_healthy / max(len(healthy), 1),
            )
        )
    return reports


def format_reports(reports: list[MethodReport]) -> str:
    """Render demo reports as a text table."""
    names = list(reports[0].before)
    width = max(12, *(len(n) for n in names))
    first = max(24, *(len(r.label) + 2 for r in reports), *(len(r.failing) + 11 for r in reports))
    head = f"{'method':<{first}}" + "".join(f"{n:>{width + 2}}" for n in names)
    lines = [head, "-" * len(head)]
    for r in reports:
        lines.append(
            f"{r.label:<{first}}" + "".join(f"{r.before[n]:>{width + 2}.1%}" for n in names)
        )
        lines.append(
            f"{'  ' + r.failing + ' failed':<{first}}"
            + "".join(f"{r.after[n]:>{width + 2}.1%}" for n in names)
        )
        lines.append(
            f"{'':<{first}}moved: {r.moved:.1%} of requests changed backend; "
            f"{r.moved_from_healthy:.1%} of those on healthy backends"
        )
    return "\n".join(lines)
