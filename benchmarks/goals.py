"""The rows of issue 14's table, read from the bench scripts' JSON, each against its goal.

Every row names what is measured, lbkit's figure, its floor and peers from the same
interleaved run, the goal and whether this run meets it. A row whose script did not run
(or did not measure it) is still listed, as "not measured", so a missing number shows.

``results`` maps a script's stem (``bench_pick``) to the JSON it wrote with ``--json``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

Results = dict[str, Any]


@dataclass(frozen=True)
class Ref:
    """A figure set beside lbkit's: a floor or a peer, in the unit of its row."""

    name: str
    value: float


@dataclass(frozen=True)
class Row:
    """One line of the goals table.

    ``score`` is measured / allowed: 1.0 or less meets the goal. It is None when the row
    has no goal or was not measured (then ``passed`` is None too).
    """

    area: str
    path: str
    unit: str
    value: float | None
    filed: str
    goal: str
    score: float | None = None
    floor: Ref | None = None
    peers: tuple[Ref, ...] = field(default_factory=tuple)

    @property
    def passed(self) -> bool | None:
        return None if self.score is None else self.score <= 1.0


def _at_most(value: float | None, limit: float | None) -> float | None:
    """Score of "value <= limit" (None when either is unknown)."""
    if value is None or limit is None or limit <= 0:
        return None
    return value / limit


def _ref(name: str, value: float | None) -> Ref | None:
    return None if value is None else Ref(name, value)


def _refs(*pairs: tuple[str, float | None]) -> tuple[Ref, ...]:
    return tuple(Ref(name, value) for name, value in pairs if value is not None)


# --- readers: each returns None when the script or the figure is missing ---------------


def _pick_rows(results: Results) -> list[dict[str, Any]]:
    rows = results.get("bench_pick", {}).get("results", [])
    return rows if isinstance(rows, list) else []


def pick_ns(results: Results, method: str, peers: int) -> float | None:
    """bench_pick's median ns of ``method`` (or a floor/peer row's name) at ``peers``."""
    for row in _pick_rows(results):
        if row.get("method") == method and row.get("peers") == peers:
            return float(row["median_ns"])
    return None


def pick_floor_ns(results: Results, peers: int) -> float | None:
    for row in _pick_rows(results):
        if str(row.get("method", "")).startswith("floor") and row.get("peers") == peers:
            return float(row["median_ns"])
    return None


def pick_schedule_ns(results: Results, peers: int) -> float | None:
    for row in _pick_rows(results):
        if "SmoothSchedule" in str(row.get("method", "")) and row.get("peers") == peers:
            return float(row["median_ns"])
    return None


def _get(results: Results, script: str, *keys: str) -> float | None:
    value: Any = results.get(script)
    for key in keys:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return float(value) if isinstance(value, int | float) else None


def _lookup_table(results: Results, nodes: int) -> dict[str, float]:
    rings = results.get("bench_rings", {})
    table = rings.get("lookup_ns" if nodes == 100 else f"lookup_ns_{nodes}", {})
    return {k: float(v) for k, v in table.items()} if isinstance(table, dict) else {}


def _first(table: dict[str, float], match: Callable[[str], bool]) -> tuple[str, float | None]:
    for name, value in table.items():
        if match(name):
            return name, value
    return "", None


RING_FLOOR = "floor (mmh3 + bisect + index)"


def _is_lbkit(name: str) -> bool:
    return name.startswith(("lbkit", "floor"))


def libketama_c(table: dict[str, float]) -> tuple[str, float | None]:
    """The libketama C binding's row, when bench_rings could measure it."""
    return _first(table, lambda n: "libketama" in n and not _is_lbkit(n))


def jump_c(table: dict[str, float]) -> tuple[str, float | None]:
    return _first(table, lambda n: n.startswith("jump"))


def uhashring(table: dict[str, float]) -> tuple[str, float | None]:
    return _first(table, lambda n: n.startswith("uhashring"))


# --- the rows ---------------------------------------------------------------------------

#: The issue's "today" column, quoted as the table was filed (for before/after).
FILED_PICK = {
    ("round robin", 10): "3.5 µs",
    ("round robin", 100): "14.8 µs",
    ("round robin", 1000): "135 µs",
    ("least_conn", 10): "5.2 µs",
    ("least_conn", 100): "—",
    ("least_conn", 1000): "286 µs",
}


def _pick_row(results: Results, method: str, size: int, **fields: Any) -> Row:
    """A ``pick()``+``done()`` row of ``method`` with ``size`` peers (bench_pick's median)."""
    return Row(
        area="pick",
        path=f"`pick()`+`done()` {method}, {size:,} peers",
        unit="ns",
        value=pick_ns(results, method, size),
        **fields,
    )


def pick_goal_rows(results: Results) -> list[Row]:
    rows: list[Row] = []
    for method in ("round robin", "least_conn"):
        at_ten = pick_ns(results, method, 10)
        for peers in (10, 100, 1000):
            value = pick_ns(results, method, peers)
            if peers == 10:
                goal, score = "≤ 1 µs", _at_most(value, 1000.0)
            else:
                goal = "≤ 1.5x its cost at 10 peers"
                score = _at_most(value, None if at_ten is None else 1.5 * at_ten)
            rows.append(
                _pick_row(
                    results,
                    method,
                    peers,
                    filed=FILED_PICK[(method, peers)],
                    goal=goal,
                    score=score,
                    floor=_ref("`random.choice`", pick_floor_ns(results, peers)),
                    peers=_refs(("`SmoothSchedule.next()`", pick_schedule_ns(results, peers))),
                )
            )
    return rows


def hash_goal_rows(results: Results) -> list[Row]:
    filed = {"hash consistent": "3.3-4.6 µs", "hash": "3.3-4.6 µs", "ip_hash": "3.3-4.6 µs"}
    lookup_name = {
        "hash consistent": "its crc32 ring lookup",
        "hash": "its crc15 + weight lookup",
        "ip_hash": "its ip_hash + weight lookup",
    }
    rows = []
    for method in ("hash consistent", "hash", "ip_hash"):
        for peers in (10, 1000):
            value = pick_ns(results, method, peers)
            lookup = pick_ns(results, f"lookup: {method}", peers)
            rows.append(
                _pick_row(
                    results,
                    method,
                    peers,
                    filed=filed[method] if peers == 10 else "—",
                    goal="≤ 1.5x its lookup",
                    score=_at_most(value, None if lookup is None else 1.5 * lookup),
                    floor=_ref(lookup_name[method], lookup),
                )
            )
    whole = _get(results, "bench_pick_parts", "fixed_cost_ns", "pick() + done()")
    rows.append(
        Row(
            area="pick",
            path="fixed cost of one pick (round robin), 10 peers",
            unit="ns",
            value=whole,
            filed="3.53 µs",
            goal="≤ 1 µs",
            score=_at_most(whole, 1000.0),
            floor=_ref(
                "the choice alone (`SmoothSchedule.next()`)",
                _get(
                    results,
                    "bench_pick_parts",
                    "fixed_cost_ns",
                    "the choice: SmoothSchedule.next()",
                ),
            ),
        )
    )
    return rows


def ring_goal_rows(results: Results) -> list[Row]:
    rows = []
    filed_lookup = {100: "1.03x floor (347 ns)", 1000: "—"}
    for nodes in (100, 1000):
        table = _lookup_table(results, nodes)
        floor = table.get(RING_FLOOR)
        value = table.get("lbkit Ketama fast: lookup")
        rows.append(
            Row(
                area="ring",
                path=f"ring lookup (fast flavour), {nodes:,} nodes",
                unit="ns",
                value=value,
                filed=filed_lookup[nodes],
                goal="≤ 0.7x floor",
                score=_at_most(value, None if floor is None else 0.7 * floor),
                floor=_ref("mmh3 + bisect + index", floor),
                peers=_refs(uhashring(table), libketama_c(table), jump_c(table)),
            )
        )
    table = _lookup_table(results, 100)
    jump_name, jump = jump_c(table)
    c_name, c_value = libketama_c(table)
    for path, lbkit_row, (peer_name, peer), filed, goal in (
        (
            "JumpHash lookup",
            "lbkit JumpHash: lookup",
            (jump_name, jump),
            "4.5-5x floor",
            "≤ 1.5x the C package",
        ),
        (
            "libketama flavour lookup",
            "lbkit Ketama libketama: lookup",
            (c_name, c_value),
            "3x floor",
            "≤ 1.5x libketama C",
        ),
    ):
        value = table.get(lbkit_row)
        rows.append(
            Row(
                area="ring",
                path=f"{path}, 100 nodes",
                unit="ns",
                value=value,
                filed=filed,
                goal=goal,
                score=_at_most(value, None if peer is None else 1.5 * peer),
                floor=_ref("mmh3 + bisect + index", table.get(RING_FLOOR)),
                peers=_refs((peer_name, peer)),
            )
        )
    lbkit_build, floor_build = ring_build_10000(results)
    rows.append(
        Row(
            area="ring",
            path="ring build (fast flavour), 10,000 nodes",
            unit="s",
            value=lbkit_build,
            filed="4.5 s",
            goal="< 1 s",
            score=_at_most(lbkit_build, 1.0),
            floor=_ref("the same points sorted once", floor_build),
        )
    )
    return rows


def _lbkit_and_floor(table: dict[str, float], scale: float = 1.0) -> tuple[float | None, ...]:
    """The lbkit Ketama row and the floor row of ``table``, times ``scale``."""
    found = (
        _first(table, lambda n: n.startswith("lbkit Ketama"))[1],
        _first(table, lambda n: n.startswith("floor"))[1],
    )
    return tuple(None if v is None else v * scale for v in found)


def ring_build_10000(results: Results) -> tuple[float | None, ...]:
    """Seconds to build lbkit's 10,000-node ring and the floor's (bench_rings)."""
    return _lbkit_and_floor(
        results.get("bench_rings", {}).get("build_ms", {}).get("10000", {}), 1e-3
    )


def ring_memory_10000(results: Results) -> tuple[float | None, ...]:
    """Bytes held by lbkit's 10,000-node ring and by the floor's (bench_rings)."""
    return _lbkit_and_floor(results.get("bench_rings", {}).get("memory_bytes_10000", {}))


def routing_goal_rows(results: Results) -> list[Row]:
    routing = results.get("bench_routing", {})
    floor = _get(results, "bench_routing", "plain dict lookup (floor)")
    cases = (
        ("exact", "exact name among 10,000", "3.4 µs", 1000.0),
        ("leading wildcard", "leading wildcard (`*.zone.example.net`)", "—", 1000.0),
        ("trailing wildcard", "trailing wildcard (`www.brand.*`)", "—", 1000.0),
        ("regex (last of 100)", "last of 100 regexes", "25 µs", None),
        ("no match (default)", "no match among 100 regexes", "18.6 µs", 5000.0),
    )
    rows = []
    for key, label, filed, limit in cases:
        value = routing.get(key) if isinstance(routing, dict) else None
        rows.append(
            Row(
                area="routing",
                path=f"`Router.match`, {label}",
                unit="ns",
                value=None if value is None else float(value),
                filed=filed,
                goal="—" if limit is None else f"≤ {limit / 1000:g} µs",
                score=None if limit is None else _at_most(value, limit),
                floor=_ref("`dict.get`", floor),
            )
        )
    return rows


def memory_goal_rows(results: Results) -> list[Row]:
    memory = results.get("bench_footprint", {}).get("memory_bytes", {})
    upstream = _first(memory, lambda n: n.startswith("lbkit"))[1]
    table = _first(memory, lambda n: n.startswith("floor"))[1]
    ring, ring_floor = ring_memory_10000(results)
    return [
        Row(
            area="memory",
            path=f"memory of a {what}",
            unit="B",
            value=value,
            filed="—",
            goal="≤ 1.2x floor",
            score=_at_most(value, None if floor is None else 1.2 * floor),
            floor=_ref(floor_name, floor),
        )
        for what, value, floor_name, floor in (
            ("1,000-peer upstream", upstream, "floor peer table", table),
            ("10,000-node ring", ring, "floor ring", ring_floor),
        )
    ]


def goal_rows(results: Results) -> list[Row]:
    """Every row of the issue's table, in its order."""
    return [
        *pick_goal_rows(results),
        *hash_goal_rows(results),
        *ring_goal_rows(results),
        *routing_goal_rows(results),
        *memory_goal_rows(results),
    ]


def count(rows: Iterable[Row]) -> tuple[int, int, int]:
    """(met, missed, without a verdict) over ``rows``."""
    verdicts = [r.passed for r in rows]
    return verdicts.count(True), verdicts.count(False), verdicts.count(None)
