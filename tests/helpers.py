"""Small helpers shared by the unit tests."""

from __future__ import annotations

import lbkit


def servers(*weights: int) -> list[lbkit.Server]:
    """Servers 10.0.0.1:80, 10.0.0.2:80... with the given weights."""
    return [lbkit.Server(f"10.0.0.{i + 1}:80", weight=w) for i, w in enumerate(weights)]


def sequence(up: lbkit.Upstream, n: int, **kw: object) -> list[str]:
    """Names of ``n`` sequential picks, each reported done at once."""
    out = []
    for _ in range(n):
        peer = up.pick(**kw)  # type: ignore[arg-type]
        out.append(peer.name)
        up.done(peer)
    return out


def snapshot(up: lbkit.Upstream) -> list[tuple[object, ...]]:
    """Every mutable field of every peer, to check that an error changed nothing."""
    return [
        (p.current_weight, p.effective_weight, p.conns, p.fails, p.checked, p.accessed)
        for p in up.peers
    ]


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
