"""Run every ``bench_*.py`` in this folder, one after the other (``tox -e bench``).

``--quick`` is passed through to every script (``tox -e bench -- --quick`` for a short run);
``--json-dir DIR`` gives each script ``--json DIR/<script name>.json``. Each script runs in
its own process with the same interpreter; a script that exits non-zero, dies, or outlives
``--timeout`` counts as failed, the others still run, and the exit status is 1 when any
failed (0 otherwise).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent


def discover(only: Sequence[str] = ()) -> list[Path]:
    """The ``bench_*.py`` scripts next to this file, sorted; ``only`` filters by substring."""
    scripts = sorted(HERE.glob("bench_*.py"))
    if only:
        scripts = [s for s in scripts if any(word in s.name for word in only)]
    return scripts


def run_one(script: Path, args: list[str], timeout: float | None) -> tuple[str, float]:
    """Run ``script``; return its outcome ("ok", "exit N" or "timeout") and seconds taken."""
    started = time.perf_counter()
    try:
        code = subprocess.call([sys.executable, str(script), *args], timeout=timeout)
    except subprocess.TimeoutExpired:
        return "timeout", time.perf_counter() - started
    outcome = "ok" if code == 0 else f"exit {code}"
    return outcome, time.perf_counter() - started


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="run every benchmarks/bench_*.py")
    parser.add_argument("--quick", action="store_true", help="pass --quick to every script")
    parser.add_argument(
        "--json-dir",
        type=Path,
        metavar="DIR",
        help="pass --json DIR/<script>.json to every script",
    )
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="WORD",
        help="run only scripts whose file name contains WORD (repeatable)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="fail a script that runs longer than this (default: no limit)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    scripts = discover(args.only)
    if not scripts:
        print(f"no bench_*.py matching {args.only} in {HERE}", file=sys.stderr)
        return 1
    outcomes: list[tuple[str, str, float]] = []
    for script in scripts:
        script_args = ["--quick"] if args.quick else []
        if args.json_dir is not None:
            args.json_dir.mkdir(parents=True, exist_ok=True)
            script_args += ["--json", str(args.json_dir.resolve() / f"{script.stem}.json")]
        print(f"\n===== {script.name} {' '.join(script_args)}".rstrip(), flush=True)
        outcome, seconds = run_one(script, script_args, args.timeout)
        outcomes.append((script.name, outcome, seconds))
    print("\n===== summary")
    width = max(len(name) for name, _, _ in outcomes)
    for name, outcome, seconds in outcomes:
        print(f"  {name:<{width}}  {outcome:<8} {seconds:7.1f} s")
    failed = [name for name, outcome, _ in outcomes if outcome != "ok"]
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
