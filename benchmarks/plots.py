"""Figures for docs/benchmarks.md from the bench scripts' JSON (needs matplotlib).

Written deterministically: the Agg backend, fixed sizes and resolution, no software or
date in the PNG's metadata, series in a fixed order; the same JSON gives the same bytes.
A figure whose script did not run is not drawn (an older file of that name is left).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from goals import Row

DPI = 90


def _save(fig: Figure, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=DPI, metadata={"Software": None})
    plt.close(fig)
    return path


def _figure(width: float, height: float) -> tuple[Figure, Axes]:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(width, height))
    return fig, ax


def goals_figure(rows: Sequence[Row], path: Path) -> Path | None:
    """Each goal's measured / allowed (log scale): green at or below 1, red above."""
    scored = [r for r in rows if r.score is not None]
    if not scored:
        return None
    fig, ax = _figure(9, 0.32 * len(scored) + 1.4)
    names = [r.path.replace("`", "") for r in scored]
    scores = [r.score or 0.0 for r in scored]
    colors = ["tab:green" if s <= 1.0 else "tab:red" for s in scores]
    ax.barh(names, scores, color=colors)
    ax.axvline(1.0, color="black", linewidth=1)
    ax.set_xscale("log")
    ax.set_xlabel("measured / allowed by the goal (log scale; 1 or less meets it)")
    ax.set_title("Issue 14's goals")
    ax.invert_yaxis()
    ax.tick_params(axis="y", labelsize=8)
    return _save(fig, path)


def picks_figure(results: dict[str, Any], path: Path) -> Path | None:
    """ns per pick+done against upstream size, with the floor and SmoothSchedule."""
    rows = results.get("bench_pick", {}).get("results", [])
    if not rows:
        return None
    wanted = [
        m
        for m in dict.fromkeys(r["method"] for r in rows)
        if m in ("round robin", "least_conn") or m.startswith(("floor", "peer"))
    ]
    fig, ax = _figure(7, 4)
    for method in wanted:
        points = sorted((r["peers"], r["median_ns"]) for r in rows if r["method"] == method)
        ax.plot([p for p, _ in points], [v for _, v in points], marker="o", label=method)
    ax.axhline(1000, color="black", linestyle="--", linewidth=1, label="goal: 1 µs")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("peers")
    ax.set_ylabel("ns per pick() + done() (median)")
    ax.set_title("Pick cost against upstream size")
    ax.legend(fontsize=8)
    return _save(fig, path)


def lookup_figure(results: dict[str, Any], path: Path) -> Path | None:
    lookup: dict[str, float] = results.get("bench_rings", {}).get("lookup_ns", {})
    if not lookup:
        return None
    fig, ax = _figure(8, 4.5)
    names = list(lookup)
    colors = ["tab:blue" if n.startswith(("lbkit", "floor")) else "tab:gray" for n in names]
    ax.barh(names, [lookup[n] for n in names], color=colors)
    ax.set_xscale("log")
    ax.set_xlabel("ns per lookup (median, log scale)")
    ax.set_title("Lookup cost, 100 nodes")
    ax.invert_yaxis()
    return _save(fig, path)


def balance_figure(results: dict[str, Any], path: Path) -> Path | None:
    balance: dict[str, dict[str, list[float]]] = results.get("bench_rings", {}).get("balance", {})
    if not balance:
        return None
    fig, ax = _figure(7, 4)
    methods = sorted({m for row in balance.values() for m in row})
    counts = list(balance)
    width = 0.8 / len(methods)
    for i, method in enumerate(methods):
        xs = [j + i * width for j in range(len(counts))]
        ys = [balance[c].get(method, [float("nan")])[0] for c in counts]
        ax.bar(xs, ys, width=width, label=method)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(counts))], [f"{c} nodes" for c in counts])
    ax.set_ylim(1.0, None)
    ax.set_ylabel("max load / mean load")
    ax.set_title("Balance over random keys (lower is better)")
    ax.legend()
    return _save(fig, path)


def disruption_figure(results: dict[str, Any], path: Path) -> Path | None:
    disruption: dict[str, dict[str, list[float]]] = results.get("bench_rings", {}).get(
        "disruption", {}
    )
    if not disruption:
        return None
    fig, ax = _figure(7, 4)
    ns = [int(c) for c in disruption]
    for method in sorted({m for row in disruption.values() for m in row}):
        ax.plot(ns, [disruption[str(n)][method][0] for n in ns], marker="o", label=method)
    ax.plot(ns, [1 / n for n in ns], linestyle="--", color="black", label="ideal 1/N")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("nodes")
    ax.set_ylabel("fraction of keys moved")
    ax.set_title("Disruption when one node is removed")
    ax.legend()
    return _save(fig, path)


def routing_figure(results: dict[str, Any], path: Path) -> Path | None:
    routing: dict[str, float] = results.get("bench_routing", {})
    if not routing:
        return None
    fig, ax = _figure(8, 0.32 * len(routing) + 1.4)
    names = list(routing)
    ax.barh(names, [routing[n] for n in names], color="tab:blue")
    ax.axvline(1000, color="black", linestyle="--", linewidth=1)
    ax.set_xscale("log")
    ax.set_xlabel("ns per Router.match (median, log scale; dashed: 1 µs)")
    ax.set_title("Host routing: 10,000 exact names, 1,000 wildcards, 100 regexes")
    ax.invert_yaxis()
    ax.tick_params(axis="y", labelsize=8)
    return _save(fig, path)


FIGURES: dict[str, Callable[[dict[str, Any], Path], Path | None]] = {
    "picks.png": picks_figure,
    "lookup_ns.png": lookup_figure,
    "balance.png": balance_figure,
    "disruption.png": disruption_figure,
    "routing.png": routing_figure,
}


def draw(results: dict[str, Any], rows: Sequence[Row], folder: Path) -> list[Path]:
    """Write the PNG figures into ``folder``; the paths written."""
    import matplotlib

    matplotlib.rcdefaults()
    matplotlib.use("Agg")
    folder.mkdir(parents=True, exist_ok=True)
    written = [goals_figure(rows, folder / "goals.png")]
    written += [draw_one(results, folder / name) for name, draw_one in FIGURES.items()]
    return [p for p in written if p is not None]
