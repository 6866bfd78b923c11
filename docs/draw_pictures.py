"""Draw docs/img/algorithms/*.png: how each algorithm spreads keys, and what moves when a
node leaves. Run from the repository root: ``python docs/draw_pictures.py [OUT_DIR]``.

Needs matplotlib (the ``docs`` extra). Each picture has three rows: the share of 10,000
keys (or requests) per node; the owners of the first 60 keys; the owners of the same keys
after the third node leaves, with the keys that moved marked.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.patches import Rectangle

import lbkit
from lbkit.nginx import parse_upstream

NODES = [f"10.0.0.{i}:80" for i in range(1, 6)]
LEAVING = NODES[2]
KEYS = [f"/item/{i}" for i in range(10_000)]
CLIENTS = [f"{(i * 37) % 223 + 1}.{(i * 11) % 256}.{(i * 7) % 256}.9" for i in range(10_000)]
SHOWN = 60
COLORS = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3"]

Assign = Callable[[Sequence[str]], list[str]]


def nginx_method(directive: str, argument: str | None) -> Callable[[Sequence[str]], Assign]:
    """Owners of each key (or each successive request) under an nginx upstream method."""

    def build(nodes: Sequence[str]) -> Assign:
        servers = " ".join(f"server {n};" for n in nodes)
        up = parse_upstream(f"upstream u {{ {directive} {servers} }}")
        if directive == "random;":  # seeded, so the picture is the same on every run
            up = lbkit.Upstream(up.servers, lbkit.Random(seed=1), name="u")

        def assign(keys: Sequence[str]) -> list[str]:
            owners = []
            for i, key in enumerate(keys):
                kwargs = {} if argument is None else {argument: key}
                if argument == "client_addr":
                    kwargs = {"client_addr": CLIENTS[i]}
                peer = up.pick(**kwargs)
                up.done(peer)
                owners.append(peer.name)
            return owners

        return assign

    return build


def ring(factory: Callable[[Sequence[str]], object]) -> Callable[[Sequence[str]], Assign]:
    """Owners of each key on a ring or table built from ``nodes``."""

    def build(nodes: Sequence[str]) -> Assign:
        table = factory(nodes)
        return lambda keys: list(table.lookup_many(keys))  # type: ignore[attr-defined]

    return build


#: picture name -> (title, how to build an assignment for a node list)
ALGORITHMS: dict[str, tuple[str, Callable[[Sequence[str]], Assign]]] = {
    "round-robin": ("round robin (requests in order)", nginx_method("", None)),
    "least-conn": ("least_conn (requests in order, none held)", nginx_method("least_conn;", None)),
    "random": ("random (requests in order)", nginx_method("random;", None)),
    "ip-hash": ("ip_hash (client addresses)", nginx_method("ip_hash;", "client_addr")),
    "hash": ("hash $request_uri", nginx_method("hash $request_uri;", "key")),
    "consistent-hash": (
        "hash $request_uri consistent",
        nginx_method("hash $request_uri consistent;", "key"),
    ),
    "ketama": ("Ketama (fast flavour)", ring(lambda n: lbkit.Ketama(n))),
    "ketama-libketama": (
        "Ketama (libketama flavour)",
        ring(lambda n: lbkit.Ketama(n, flavor="libketama")),
    ),
    "maglev": ("Maglev", ring(lambda n: lbkit.Maglev(n))),
    "rendezvous": ("Rendezvous", ring(lambda n: lbkit.Rendezvous(n))),
    "jump-hash": ("Jump hash (a middle node leaves)", ring(lambda n: lbkit.JumpHash(n))),
}


def _strip(ax: plt.Axes, owners: Sequence[str], moved: Sequence[bool] | None, label: str) -> None:
    for i, owner in enumerate(owners[:SHOWN]):
        ax.add_patch(Rectangle((i, 0), 1, 1, color=COLORS[NODES.index(owner)], linewidth=0))
        if moved is not None and moved[i]:
            ax.plot(i + 0.5, 0.5, marker="o", color="white", markersize=3)
    ax.set_xlim(0, SHOWN)
    ax.set_ylim(0, 1)
    ax.set_yticks([])
    ax.set_xticks([])
    ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)


def draw(name: str, out_dir: Path) -> Path:
    """Draw one algorithm's picture into ``out_dir`` and return its path."""
    title, build = ALGORITHMS[name]
    before = build(NODES)(KEYS)
    after = build([n for n in NODES if n != LEAVING])(KEYS)
    moved = [a != b for a, b in zip(before, after, strict=True)]
    moved_share = sum(moved) / len(KEYS)
    unit = "requests" if "requests" in title else "keys"
    own_share = before.count(LEAVING) / len(KEYS)
    fig, (bars, top, bottom) = plt.subplots(
        3, 1, figsize=(7, 3.4), gridspec_kw={"height_ratios": [3, 0.6, 0.6]}
    )
    shares = [before.count(n) / len(KEYS) for n in NODES]
    bars.bar([n.split(":")[0] for n in NODES], shares, color=COLORS)
    bars.axhline(1 / len(NODES), color="grey", linewidth=0.8, linestyle="--")
    bars.set_ylabel("share", fontsize=8)
    bars.tick_params(labelsize=8)
    bars.set_title(
        f"{title}: {moved_share:.0%} of {unit} move when {LEAVING.split(':')[0]} leaves "
        f"(it held {own_share:.0%})",
        fontsize=9,
    )
    _strip(top, before, None, "before")
    _strip(bottom, after, moved, "after\n(o: moved)")
    fig.tight_layout()
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.png"
    fig.savefig(path, dpi=90, metadata={"Software": None})
    plt.close(fig)
    return path


def main(argv: Sequence[str]) -> int:
    out_dir = Path(argv[0]) if argv else Path(__file__).parent / "img" / "algorithms"
    for name in ALGORITHMS:
        print(draw(name, out_dir))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
