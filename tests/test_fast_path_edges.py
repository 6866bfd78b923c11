"""Edges of the fast paths that the main properties reach rarely or never.

- A Ketama ring sorted by the plain integer sort (past 65,536 nodes) and looked up through
  the small bisect-built table (past 1.45 million points) answers, adds and removes nodes
  exactly as the ordinary ring does: both limits are lowered here, so small rings take
  those branches (a real ring past them takes minutes to build).
- The wildcard lookup with the odd names nginx accepts (``*.x.``, ``.*.x``, ``.x.*``,
  ``x.``) and hosts with empty labels, against nginx's label by label walk.
- A request-free peer from a plain ``pick()`` (a ``BarePeer``, its fields set by ``pick()``
  itself) has every field of the ``Peer`` its ``__init__`` would make.
- ``Upstream.configured`` read from the peers (no backup, no ``resolve``) stays as made
  while another process's upstream changes the shared zone's membership.
"""

from __future__ import annotations

import gc
import random
from collections import Counter

import attrs
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import lbkit
from lbkit.errors import ConfigError
from lbkit.rings import _ketama, _point_sort
from lbkit.routing import ServerNames
from tests.test_ring_fast_paths import _reference_lookup
from tests.test_routing_fast_paths import check_wildcards_equal_reference

from .helpers import FakeClock, churn_ring, wait_until

# -- Ketama through the integer sort and the small table ----------------------------------

_POOL = [f"10.0.{i // 4}.{i}:{8000 + i}" for i in range(8)] + ["unix:/run/a", "n1", "n2"]


def _ring(nodes: dict[str, int], flavor: lbkit.Flavor, *, fallback: bool) -> lbkit.Ketama[str]:
    with pytest.MonkeyPatch.context() as patch:
        if fallback:
            patch.setattr(_point_sort, "MAX_RECORD_NODES", 0)
            patch.setattr(_ketama, "_SMALL_TABLE_ABOVE", 0)
        return lbkit.Ketama(list(nodes), dict(nodes), flavor)


@pytest.mark.parametrize("flavor", lbkit.FLAVORS)
@settings(max_examples=60, deadline=None)
@given(data=st.data(), seed=st.integers(0, 2**32))
def test_a_ring_sorted_as_huge_rings_are_answers_as_the_ordinary_ring(
    flavor: lbkit.Flavor, data: st.DataObject, seed: int
) -> None:
    start = data.draw(st.lists(st.sampled_from(_POOL), min_size=1, max_size=6, unique=True))
    weights = {n: data.draw(st.integers(1, 3)) for n in start}
    huge = _ring(weights, flavor, fallback=True)
    plain = _ring(weights, flavor, fallback=False)
    assert huge._ring.shift == 16  # the small table, found by bisects
    assert list(huge._ring.points) == list(plain._ring.points)
    assert huge._ring.owners == plain._ring.owners
    # adds and removes on the integer sort's arrays (another item type than the records')
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_point_sort, "MAX_RECORD_NODES", 0)
        patch.setattr(_ketama, "_SMALL_TABLE_ABOVE", 0)
        churn_ring(data, huge, weights, _POOL, data.draw(st.integers(0, 4)))
    rng = random.Random(seed)
    keys: list[str | bytes] = [f"k{rng.getrandbits(64):x}" for _ in range(300)]
    keys += [b"", "", b"\xff" * 3]
    expected = _reference_lookup(flavor, weights)
    want = [expected(k) for k in keys]
    assert [huge.lookup(k) for k in keys] == want
    assert huge.lookup_many(keys) == want
    assert huge.distinct_points() == _ring(weights, flavor, fallback=False).distinct_points()


# -- wildcards: the odd names and hosts ---------------------------------------------------


def _accepted(name: str) -> bool:
    """Whether nginx (and ServerNames) accept ``name`` as a server_name."""
    try:
        ServerNames[int]().add(name, 0)
    except ConfigError:
        return False
    return True


_LABEL = st.sampled_from(["a", "b", "ab", ""])
_CORE = st.lists(_LABEL, min_size=1, max_size=4).map(".".join)
_ODD_NAMES = st.lists(
    st.one_of(
        _CORE.map(lambda n: "*." + n),
        _CORE.map(lambda n: "." + n),
        _CORE.map(lambda n: n + ".*"),
        _CORE.map(lambda n: ".*." + n),
        _CORE.map(lambda n: "." + n + ".*"),
        _CORE,
    ).filter(_accepted),
    max_size=12,
)
_ODD_HOSTS = st.lists(
    st.lists(st.sampled_from(["a", "b", "ab", "", "*"]), min_size=1, max_size=8).map(".".join),
    min_size=1,
    max_size=25,
)


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(_ODD_NAMES, _ODD_HOSTS)
@example(["*.a.", ".*.a", ".a.*", "a."], ["b.a.", "x.*.a", "*.a", "a.*.b", "a.", "a", ".a", ""])
@example(["*.a", "a.*"], ["a", ".a", "a.", ".", "..a", "a.."])
def test_wildcard_lookup_of_odd_names_and_hosts_equals_the_label_walk(
    names: list[str], hosts: list[str]
) -> None:
    check_wildcards_equal_reference(lambda tables: tables, names, hosts)


# -- configured, read from the peers --------------------------------------------------------


def test_configured_stays_as_made_when_the_zone_membership_changes() -> None:
    made = [lbkit.Server(f"10.0.0.{i}:80", weight=i) for i in (1, 2, 3)]
    clock = FakeClock()
    here = lbkit.Upstream(made, name="u", zone="edges_configured", clock=clock)
    there = lbkit.Upstream(made, name="u", zone="edges_configured", clock=clock)
    there.update(["10.0.0.2:80 weight=7", "10.0.0.9:80"])
    peer = here.pick()  # follows the zone: the peer of 10.0.0.2 now has weight 7
    here.done(peer)
    assert [(s.address, s.weight) for s in here.servers] == [("10.0.0.2:80", 7), ("10.0.0.9:80", 1)]
    assert here.configured == there.configured == tuple(made)
    assert here.peer_state("10.0.0.2:80").server.weight == 7


# -- a finaliser giving a peer back inside a pick ---------------------------------------------


def _pick_with_a_finaliser_inside(
    weights: list[int], hold: int, allocations: int
) -> tuple[lbkit.Upstream, str, list[lbkit.upstream.Peer], str]:
    """Hold ``hold`` picks, then abandon an attempt in a reference cycle and pick again
    with the collector primed to run after ``allocations`` more objects: somewhere in or
    around the pick (inside its lock for some counts) the attempt's finaliser gives its
    peer back. The upstream, the abandoned peer's name, the held peers, the pick (or the
    error that escaped it)."""
    up = lbkit.Upstream(
        [lbkit.Server(f"10.0.0.{i + 1}:80", weight=w) for i, w in enumerate(weights)],
        lbkit.LeastConn(),
    )
    held = [up.pick() for _ in range(hold)]
    threshold = gc.get_threshold()
    enabled = gc.isenabled()
    gc.disable()
    try:
        gc.collect()
        attempts = up.attempts()
        abandoned = next(attempts).name
        cycle: list[object] = [attempts]
        cycle.append(cycle)
        del attempts, cycle
        gc.set_threshold(20)
        keep: list[list[int]] = [[] for _ in range(allocations)]
        gc.enable()
        try:
            picked = up.pick()
            held.append(picked)
            outcome = picked.name
        except Exception as exc:  # what escaped is the finding
            outcome = f"{type(exc).__name__}: {exc}"
        del keep
    finally:
        gc.disable()
        gc.set_threshold(*threshold)
        gc.collect()
        if enabled:
            gc.enable()
    return up, abandoned, held, outcome


def _wait_for_conns(up: lbkit.Upstream, want: dict[str, int]) -> None:
    wait_until(
        lambda: {p.name: p.conns for p in up.peers if p.conns} == want,
        what=f"conns {want} after the give-back",
    )


@pytest.mark.parametrize(("weights", "hold"), [([1, 1], 2), ([1, 1, 1], 3), ([1, 2], 2)])
def test_a_finaliser_giving_back_inside_a_pick_leaves_the_pick_whole(
    weights: list[int], hold: int
) -> None:
    """The collector may run an abandoned attempt's finaliser at any allocation, also
    inside a pick that holds the upstream's (reentrant) lock: the give-back must not
    change least_conn's buckets under the pick (a ValueError escaped). The pick chooses
    as nginx would with the peer given back before it or after it."""
    for allocations in range(40):
        up, abandoned, held, outcome = _pick_with_a_finaliser_inside(weights, hold, allocations)
        answers = set()
        for give_back_first in (True, False):
            ref = lbkit.Upstream(
                [lbkit.Server(f"10.0.0.{i + 1}:80", weight=w) for i, w in enumerate(weights)],
                lbkit.LeastConn(),
            )
            for _ in range(hold):
                ref.pick()
            with ref.attempts() as attempts:  # (kept open: its end gives the peer back)
                assert next(attempts).name == abandoned
                if give_back_first:
                    attempts.close()
                answers.add(ref.pick().name)
        assert outcome in answers, (allocations, outcome, answers)
        # the abandoned peer is given back (maybe by a short thread, once the pick is over)
        _wait_for_conns(up, dict(Counter(p.name for p in held)))


# -- the request-free peer of a plain pick ------------------------------------------------


@pytest.mark.parametrize(
    "method", [lbkit.RoundRobin(), lbkit.LeastConn(), lbkit.Hash(), lbkit.IpHash()]
)
def test_request_free_peer_has_every_field_a_made_peer_has(method: lbkit.Method) -> None:
    up = lbkit.Upstream([lbkit.Server("a:80", weight=2), lbkit.Server("b:80")], method)
    arg = {"key": "k"} if method.needs_key else {"client_addr": "10.0.0.1"}
    peer = up.pick(**(arg if method.needs_key or method.needs_client_addr else {}))
    assert isinstance(peer, lbkit.upstream.Peer)
    assert peer.request is None  # the fast path answered
    made = lbkit.upstream.Peer(peer.state, None, up)
    for field in attrs.fields(lbkit.upstream.Peer):
        assert getattr(peer, field.name) == getattr(made, field.name), field.name
    assert repr(peer) == repr(made)
    up.done(peer)
    assert peer.reported
    assert peer.state.conns == 0
