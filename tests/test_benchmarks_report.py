"""benchmarks/report.py: the page and figures come from the scripts' JSON, every goal row listed.

No timing is asserted: the JSON is either written here (canned figures chosen so that some
goals are met and some missed) or produced by the real scripts in a tiny mode, to check
that what they write is what the report reads.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import wait_until

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCH))

import goals  # noqa: E402
import report  # noqa: E402

#: Every row of issue 14's table, as the page names it.
ISSUE_ROWS = [
    "`pick()`+`done()` round robin, 10 peers",
    "`pick()`+`done()` round robin, 100 peers",
    "`pick()`+`done()` round robin, 1,000 peers",
    "`pick()`+`done()` least_conn, 10 peers",
    "`pick()`+`done()` least_conn, 100 peers",
    "`pick()`+`done()` least_conn, 1,000 peers",
    "`pick()`+`done()` hash consistent, 10 peers",
    "`pick()`+`done()` hash consistent, 1,000 peers",
    "`pick()`+`done()` hash, 10 peers",
    "`pick()`+`done()` hash, 1,000 peers",
    "`pick()`+`done()` ip_hash, 10 peers",
    "`pick()`+`done()` ip_hash, 1,000 peers",
    "fixed cost of one pick (round robin), 10 peers",
    "ring lookup (fast flavour), 100 nodes",
    "ring lookup (fast flavour), 1,000 nodes",
    "JumpHash lookup, 100 nodes",
    "libketama flavour lookup, 100 nodes",
    "ring build (fast flavour), 10,000 nodes",
    "`Router.match`, exact name among 10,000",
    "`Router.match`, leading wildcard",
    "`Router.match`, trailing wildcard",
    "`Router.match`, last of 100 regexes",
    "`Router.match`, no match among 100 regexes",
    "memory of a 1,000-peer upstream",
    "memory of a 10,000-node ring",
]

FIGURES = ["goals.png", "picks.png", "lookup_ns.png", "balance.png", "disruption.png"]


def _pick_json() -> dict[str, Any]:
    rows = []
    for peers in (10, 100, 1000):
        for method, ns in (
            ("floor: random.choice(list)", 150.0),
            ("peer: SmoothSchedule.next()", 30.0),
            ("round robin", 900.0),  # flat and under 1 µs: met at every size
            ("least_conn", 5000.0 * peers / 10),  # grows: missed at every size
            ("lookup: hash consistent", 400.0),
            ("hash consistent", 500.0),  # within 1.5x its lookup: met
            ("lookup: hash", 200.0),
            ("hash", 2600.0),  # missed
            ("lookup: ip_hash", 380.0),
            ("ip_hash", 2600.0),
        ):
            rows.append({"method": method, "peers": peers, "median_ns": ns, "min_ns": ns})
    return {
        "floor": "floor: random.choice(list)",
        "repeats": 1,
        "picks_per_run": 10,
        "results": rows,
    }


def _lookup(floor: float) -> dict[str, float]:
    return {
        "floor (mmh3 + bisect + index)": floor,
        "lbkit Ketama fast: lookup": floor * 0.6,
        "lbkit Ketama libketama: lookup": floor * 2,
        "lbkit JumpHash: lookup": 300.0,
        "uhashring (md5, 160 vnodes)": 1200.0,
        "libketama C (ketama)": floor,
        "jump-consistent-hash (+mmh3)": 150.0,
    }


CANNED: dict[str, Any] = {
    "bench_pick": _pick_json(),
    "bench_pick_parts": {
        "peers": 10,
        "fixed_cost_ns": {
            "pick() + done()": 1800.0,
            "pick() alone": 900.0,
            "done() alone": 850.0,
            "the choice: SmoothSchedule.next()": 30.0,
            "two lock round trips (RLock)": 270.0,
            "two clock reads (time.monotonic)": 80.0,
        },
        "thread_safe_floor_ns": {
            "round robin: a minimal thread-safe pick+done": 360.0,
            "round robin: lbkit pick() + done()": 800.0,
            "hash: its lookup alone (crc15 + weight table)": 200.0,
            "hash: a minimal thread-safe pick+done around that lookup": 600.0,
            "hash: lbkit pick(key) + done()": 1000.0,
        },
    },
    "bench_rings": {
        "lookup_ns": _lookup(300.0),
        "lookup_ns_1000": _lookup(450.0),
        "build_ms": {
            "100": {"floor (sorted (point, node) pairs)": 5.0, "lbkit Ketama fast": 9.0},
            "10000": {"floor (sorted (point, node) pairs)": 1500.0, "lbkit Ketama fast": 800.0},
        },
        "memory_bytes": {"lbkit Ketama fast (160 points/node)": 1_000_000},
        "memory_bytes_10000": {
            "floor (sorted points + owners)": 78_000_000,
            "lbkit Ketama fast (160 points/node)": 90_000_000,
        },
        "balance": {"10": {"ring (fast)": [1.09, 0.07]}},
        "disruption": {"10": {"ring (fast)": [0.1, 0.1, 0.0]}},
    },
    "bench_footprint": {
        "repeats": 1,
        "memory_bytes": {
            "floor peer table, 1,000 slotted peers": 137_000,
            "lbkit Upstream, 1,000 peers (round robin)": 420_000,
        },
    },
    "bench_routing": {
        "plain dict lookup (floor)": 40.0,
        "exact": 800.0,
        "leading wildcard": 900.0,
        "trailing wildcard": 2000.0,
        "regex (last of 100)": 30000.0,
        "no match (default)": 4000.0,
    },
}

RUN = {
    "mode": "quick",
    "date": "2026-11-30 10:00 UTC",
    "python": "3.11.7",
    "implementation": "CPython",
    "machine": "Linux x86_64",
    "cpus": 2,
    "seconds": 123.0,
    "loadavg_start": [1.5, 1.25, 1.0],
    "loadavg_end": [2.5, 1.75, 1.125],
    "outcomes": [{"script": "bench_pick.py", "outcome": "ok", "seconds": 3.0}],
}


def _write(folder: Path, results: dict[str, Any], run: dict[str, Any] | None = None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for stem, data in results.items():
        (folder / f"{stem}.json").write_text(json.dumps(data))
    if run is not None:
        (folder / report.RUN_FILE).write_text(json.dumps(run))


def _goal_line(page: str, path: str) -> str:
    lines = [line for line in page.splitlines() if line.startswith(f"| {path}")]
    assert len(lines) == 1, (path, lines)
    return lines[0]


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """The page and figures written once from the canned JSON: (page text, docs folder)."""
    root = tmp_path_factory.mktemp("report")
    _write(root / "json", CANNED, RUN)
    page = report.write(root / "json", root / "docs")
    return page.read_text(), root / "docs"


def _page(folder: Path) -> str:
    """The page alone (no figures) from the JSON in ``folder``."""
    return report.render(report.load_results(folder), {})


def test_every_issue_row_is_on_the_page_with_a_verdict(written: tuple[str, Path]) -> None:
    page, _ = written
    for path in ISSUE_ROWS:
        line = _goal_line(page, path)
        assert "not measured" not in line, line
    assert len(goals.goal_rows(CANNED)) == len(ISSUE_ROWS)


@pytest.mark.parametrize(
    ("path", "mark"),
    [
        ("`pick()`+`done()` round robin, 10 peers", "✓ met"),
        ("`pick()`+`done()` round robin, 1,000 peers", "✓ met"),
        ("`pick()`+`done()` least_conn, 10 peers", "✗ missed"),
        ("`pick()`+`done()` least_conn, 1,000 peers", "✗ missed"),
        ("`pick()`+`done()` hash consistent, 10 peers", "✓ met"),
        ("`pick()`+`done()` hash consistent, 1,000 peers", "✓ met"),
        ("`pick()`+`done()` hash, 10 peers", "✗ missed"),
        ("ring lookup (fast flavour), 100 nodes", "✓ met"),
        ("JumpHash lookup, 100 nodes", "✗ missed"),
        ("libketama flavour lookup, 100 nodes", "✗ missed"),
        ("ring build (fast flavour), 10,000 nodes", "✓ met"),
        ("`Router.match`, exact name among 10,000", "✓ met"),
        ("`Router.match`, trailing wildcard", "✗ missed"),
        ("`Router.match`, no match among 100 regexes", "✓ met"),
        ("memory of a 1,000-peer upstream", "✗ missed"),
        ("memory of a 10,000-node ring", "✓ met"),
    ],
)
def test_verdicts_follow_the_goals(written: tuple[str, Path], path: str, mark: str) -> None:
    assert _goal_line(written[0], path).endswith(f"| {mark} |")


def test_ratios_to_floor_and_peer_are_shown(written: tuple[str, Path]) -> None:
    line = _goal_line(written[0], "`pick()`+`done()` round robin, 10 peers")
    assert "`random.choice`: 150 ns (lbkit 6.00x)" in line
    assert "`SmoothSchedule.next()`: 30 ns (lbkit 30.00x)" in line
    ring = _goal_line(written[0], "ring lookup (fast flavour), 100 nodes")
    for peer in ("uhashring", "libketama C", "jump-consistent-hash"):
        assert peer in ring


def test_the_page_says_how_the_run_was_made(written: tuple[str, Path]) -> None:
    page, _ = written
    assert "**quick** run on 2026-11-30 10:00 UTC, Python 3.11.7" in page
    assert "at the start 1.50 / 1.25 / 1.00, at the end 2.50 / 1.75 / 1.12" in page
    assert "| bench_pick.py | ok | 3.0 |" in page


def test_the_thread_safe_floor_is_set_beside_the_hash_lookup(written: tuple[str, Path]) -> None:
    page = written[0]
    assert "| hash: a minimal thread-safe pick+done around that lookup | 600 ns | 3.00x |" in page
    assert "| hash: lbkit pick(key) + done() | 1.00 µs | 5.00x |" in page
    assert "The minimal thread-safe pick+done is 3.0x the lookup it wraps" in page
    assert "lbkit's costs 1.67x that minimum." in page
    assert "does not come near the 1.5x goal of the hash rows" in page
    without = {**CANNED, "bench_pick_parts": {**CANNED["bench_pick_parts"]}}
    del without["bench_pick_parts"]["thread_safe_floor_ns"]
    assert "thread-safe pick+done costs" not in report.render(without, {})


def test_figures_are_written_and_deterministic(written: tuple[str, Path], tmp_path: Path) -> None:
    _, docs = written
    first = {name: (docs / "img" / name).read_bytes() for name in FIGURES}
    _write(tmp_path / "json", CANNED, RUN)
    again = report.write(tmp_path / "json", tmp_path / "again").parent
    for name, data in first.items():
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        assert (again / "img" / name).read_bytes() == data, name


def test_a_missing_script_leaves_its_rows_listed_as_not_measured(tmp_path: Path) -> None:
    partial = {k: v for k, v in CANNED.items() if k != "bench_routing"}
    _write(tmp_path / "json", partial)
    page = _page(tmp_path / "json")
    for path in ISSUE_ROWS:
        line = _goal_line(page, path)
        assert ("not measured" in line) == path.startswith("`Router.match`"), line


def _run(script: str, *args: str, json_dir: Path) -> None:
    out = json_dir / f"{script}.json"
    subprocess.run(
        [sys.executable, str(BENCH / f"{script}.py"), *args, "--json", str(out)],
        check=True,
        capture_output=True,
        timeout=120,
    )


def test_the_scripts_json_is_what_the_report_reads(tmp_path: Path) -> None:
    """The real scripts in a tiny mode: their rows reach the page with a number."""
    folder = tmp_path / "json"
    folder.mkdir()
    tiny = ("--repeats", "1")
    _run("bench_pick", *tiny, "--picks", "20", json_dir=folder)
    _run("bench_footprint", *tiny, json_dir=folder)
    _run("bench_pick_parts", *tiny, "--ops", "20", json_dir=folder)
    _run("bench_routing", "--quick", *tiny, json_dir=folder)
    page = _page(folder)
    measured = [
        p for p in ISSUE_ROWS if p.startswith(("`pick()`", "fixed", "`Router", "memory of a 1,000"))
    ]
    for path in measured:
        line = _goal_line(page, path)
        assert "not measured" not in line, line
        assert "a figure is missing" not in line, line


def test_a_spent_budget_skips_the_scripts_left(tmp_path: Path) -> None:
    import run_all

    scripts = run_all.discover(["bench_pick_parts"])
    assert [s.name for s in scripts] == ["bench_pick_parts.py"]
    outcomes = run_all.run_scripts(scripts, True, tmp_path, timeout=None, budget=0.0)
    assert [(o.script, o.outcome, o.ok) for o in outcomes] == [
        ("bench_pick_parts.py", "skipped", False)
    ]
    assert not list(tmp_path.iterdir())


def test_state_rows_set_each_state_beside_the_base_of_its_method() -> None:
    pick_us = {"least_conn": {"in-process": 4.0, "zone": 10.0}, "big": {"zone": 9.0}}
    assert report.state_rows(pick_us, "in-process") == [
        ["least_conn", "in-process", "4.00 µs", "1.00x"],
        ["least_conn", "zone", "10.00 µs", "2.50x"],
        ["big", "zone", "9.00 µs", "—"],
    ]


SERVER_SCRIPT = """
import subprocess, sys, time
server = subprocess.Popen(["sleep", "300"])
open(sys.argv[1], "w").write(str(server.pid))
try:
    time.sleep(300)
finally:
    server.terminate()
    server.wait()
"""

STUBBORN_SCRIPT = """
import signal, subprocess, sys, time
signal.signal(signal.SIGINT, signal.SIG_IGN)
server = subprocess.Popen(["sleep", "300"])
open(sys.argv[1], "w").write(str(server.pid))
time.sleep(300)
"""


def _alive(pid: int) -> bool:
    state = Path(f"/proc/{pid}/stat")
    return state.exists() and state.read_text().split(") ")[1][0] != "Z"


@pytest.mark.parametrize("body", [SERVER_SCRIPT, STUBBORN_SCRIPT], ids=["cleans up", "ignores"])
def test_a_timed_out_script_leaves_no_server_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str
) -> None:
    """Interrupted, the script stops what it started; ignoring that, its group is killed."""
    import run_all

    monkeypatch.setattr(run_all, "GRACE", 2.0)
    script = tmp_path / "bench_server.py"
    script.write_text(body)
    pid_file = tmp_path / "pid"
    outcome, _ = run_all.run_one(script, [str(pid_file)], timeout=3.0)
    assert outcome == "timeout"
    # SIGKILL is delivered, not awaited: on a loaded machine the server dies a little later
    server = int(pid_file.read_text())
    wait_until(lambda: not _alive(server), timeout=30, what=f"server {server} to be gone")
