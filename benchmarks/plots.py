"""Figures for docs/benchmarks.md from bench_rings.py results (needs matplotlib)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def draw(results: dict[str, Any], folder: Path) -> list[Path]:
    """Write the PNG figures into ``folder`` and return their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    written = []

    lookup: dict[str, float] = results["lookup_ns"]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    names = list(lookup)
    values = [lookup[n] for n in names]
    colors = ["tab:blue" if n.startswith(("lbkit", "floor")) else "tab:gray" for n in names]
    ax.barh(names, values, color=colors)
    ax.set_xscale("log")
    ax.set_xlabel("ns per lookup (median, log scale)")
    ax.set_title("Lookup cost, 100 nodes")
    ax.invert_yaxis()
    fig.tight_layout()
    path = folder / "lookup_ns.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    written.append(path)

    balance: dict[str, dict[str, list[float]]] = results["balance"]
    fig, ax = plt.subplots(figsize=(7, 4))
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
    fig.tight_layout()
    path = folder / "balance.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    written.append(path)

    disruption: dict[str, dict[str, list[float]]] = results["disruption"]
    fig, ax = plt.subplots(figsize=(7, 4))
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
    fig.tight_layout()
    path = folder / "disruption.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    written.append(path)

    picks: dict[str, dict[str, float]] = results["picks_per_s"]
    fig, ax = plt.subplots(figsize=(7, 4))
    peers = [int(c) for c in picks]
    for label in picks[str(peers[0])]:
        ax.plot(peers, [1e9 / picks[str(p)][label] for p in peers], marker="o", label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("peers")
    ax.set_ylabel("ns per pick")
    ax.set_title("Pick cost vs group size")
    ax.legend()
    fig.tight_layout()
    path = folder / "picks.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    written.append(path)
    return written
