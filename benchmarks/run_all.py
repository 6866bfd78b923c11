"""Run every ``bench_*.py`` in this folder, one after the other (``tox -e bench``).

``--quick`` is passed through to every script (``tox -e bench -- --quick`` for a short run);
``--json-dir DIR`` gives each script ``--json DIR/<script name>.json``. Each script runs in
its own process (and process group) with the same interpreter; a script that exits
non-zero, dies, or outlives ``--timeout`` (then it is interrupted, so that it stops the
servers it started, and killed if it lingers) counts as failed, the others still run, and
the exit status is 1 when any failed (0 otherwise). ``--report`` then regenerates
docs/benchmarks.md and its figures from the JSON (as ``python benchmarks/report.py`` does).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent

#: Seconds a timed-out script has to stop its servers after SIGINT before it is killed.
GRACE = 60.0


@dataclass(frozen=True)
class Outcome:
    """How one script's run ended: "ok", "exit N" or "timeout", and the seconds it took."""

    script: str
    outcome: str
    seconds: float

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"


def discover(only: Sequence[str] = ()) -> list[Path]:
    """The ``bench_*.py`` scripts next to this file, sorted; ``only`` filters by substring."""
    scripts = sorted(HERE.glob("bench_*.py"))
    if only:
        scripts = [s for s in scripts if any(word in s.name for word in only)]
    return scripts


def stop(proc: subprocess.Popen[bytes], grace: float | None = None) -> None:
    """Stop a script and everything in its process group.

    SIGINT first, as Ctrl-C would: the script's ``finally`` blocks and context managers
    stop the servers it started (a database left running would outlive the run). What is
    still there after ``grace`` seconds is killed.
    """
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGINT)
    try:
        proc.wait(GRACE if grace is None else grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def run_one(script: Path, args: list[str], timeout: float | None) -> tuple[str, float]:
    """Run ``script``; return its outcome ("ok", "exit N" or "timeout") and seconds taken.

    The script runs in its own process group, stopped with :func:`stop` when it outlives
    ``timeout`` or when this run is interrupted.
    """
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, str(script), *args], start_new_session=True)
    try:
        code = proc.wait(timeout)
    except subprocess.TimeoutExpired:
        stop(proc)
        return "timeout", time.perf_counter() - started
    except BaseException:
        stop(proc)
        raise
    outcome = "ok" if code == 0 else f"exit {code}"
    return outcome, time.perf_counter() - started


def run_scripts(
    scripts: Sequence[Path],
    quick: bool,
    json_dir: Path | None,
    timeout: float | None,
    budget: float | None = None,
) -> list[Outcome]:
    """Run each script in turn (``--quick`` and ``--json`` passed on); their outcomes.

    ``timeout`` bounds each script; ``budget`` bounds the whole run: a script gets at most
    what is left of it, and once it is spent the remaining scripts are "skipped".
    """
    outcomes: list[Outcome] = []
    deadline = None if budget is None else time.monotonic() + budget
    for script in scripts:
        limit = timeout
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                outcomes.append(Outcome(script.name, "skipped", 0.0))
                continue
            limit = left if limit is None else min(limit, left)
        script_args = ["--quick"] if quick else []
        if json_dir is not None:
            json_dir.mkdir(parents=True, exist_ok=True)
            script_args += ["--json", str(json_dir.resolve() / f"{script.stem}.json")]
        print(f"\n===== {script.name} {' '.join(script_args)}".rstrip(), flush=True)
        outcome, seconds = run_one(script, script_args, limit)
        outcomes.append(Outcome(script.name, outcome, seconds))
    return outcomes


def print_summary(outcomes: Sequence[Outcome]) -> None:
    print("\n===== summary")
    width = max(len(o.script) for o in outcomes)
    for o in outcomes:
        print(f"  {o.script:<{width}}  {o.outcome:<8} {o.seconds:7.1f} s")
    failed = [o.script for o in outcomes if not o.ok]
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)


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
    parser.add_argument(
        "--budget",
        type=float,
        default=None,
        metavar="SECONDS",
        help="bound the whole run: later scripts get what is left, then are skipped",
    )
    parser.add_argument(
        "--report",
        action="store_true",
        help="then regenerate docs/benchmarks.md and its figures (python benchmarks/report.py)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.report:
        import report

        forward = ["--quick"] if args.quick else []
        forward += [f"--only={word}" for word in args.only]
        if args.json_dir is not None:
            forward += ["--json-dir", str(args.json_dir)]
        if args.timeout is not None:
            forward += ["--timeout", str(args.timeout)]
        if args.budget is not None:
            forward += ["--budget", str(args.budget)]
        return report.main(forward)
    scripts = discover(args.only)
    if not scripts:
        print(f"no bench_*.py matching {args.only} in {HERE}", file=sys.stderr)
        return 1
    outcomes = run_scripts(scripts, args.quick, args.json_dir, args.timeout, args.budget)
    print_summary(outcomes)
    return 0 if all(o.ok for o in outcomes) else 1


if __name__ == "__main__":
    raise SystemExit(main())
