"""Small helpers shared by the unit tests."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st

import lbkit

#: Settings of a property run against a deliberately broken variant, which it must catch:
#: generated examples only (an explicit example would catch it for the property), none
#: replayed from the database, at least 2,000 of them.
SEARCH_FOR_THE_BUG = settings(
    max_examples=2000,
    deadline=None,
    database=None,
    phases=[Phase.generate],
    suppress_health_check=[HealthCheck.too_slow],
)


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


def wait_until(predicate: Callable[[], bool], timeout: float = 20.0, what: str = "") -> None:
    """Poll ``predicate`` until it holds; AssertionError after ``timeout`` seconds (generous:
    a loaded CI machine may take seconds for what takes milliseconds at rest)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(0.02)


class Lateness:
    """How late a sleeping thread of this process wakes up while the ``with`` block runs.

    A thread sleeps 10 ms again and again and keeps its worst overshoot (``worst``, seconds).
    A bound on how long a call takes to end at its deadline adds it: on a loaded machine
    (or with the GIL busy) the call's thread is woken that much later, however exact the
    call's own deadline; on a quiet one it is about a millisecond and the bound stays tight.
    """

    def __init__(self) -> None:
        self.worst = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._measure, name="lateness", daemon=True)

    def _measure(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            time.sleep(0.01)
            self.worst = max(self.worst, time.monotonic() - started - 0.01)

    def __enter__(self) -> Lateness:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def churn_ring(
    data: st.DataObject,
    ring: lbkit.Ketama[str],
    weights: dict[str, int],
    pool: Sequence[str],
    steps: int,
    *,
    keep_one: bool = True,
) -> None:
    """``steps`` random adds (weights 1-3, nodes from ``pool``) and removes on ``ring``,
    mirrored in ``weights``; ``keep_one``: never remove the last node."""
    for _ in range(steps):
        absent = [n for n in pool if n not in weights]
        must_add = len(weights) == 1 if keep_one else not weights
        if absent and (must_add or data.draw(st.booleans())):
            node, w = data.draw(st.sampled_from(absent)), data.draw(st.integers(1, 3))
            ring.add(node, w)
            weights[node] = w
        else:
            node = data.draw(st.sampled_from(sorted(weights)))
            ring.remove(node)
            del weights[node]
