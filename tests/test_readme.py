"""README.md's two commands stay true: CI runs the same test command, the demo works."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    return re.findall(r"```sh\n(.+?)\n```", text)


def test_readme_shows_two_commands() -> None:
    demo, tests = _commands()[:2]
    assert "lbkit demo" in demo
    assert "pytest" in tests


def test_ci_runs_exactly_the_readme_test_command() -> None:
    tests = _commands()[1]
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert tests in ci


def test_demo_runs_and_shows_each_method() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "lbkit", "demo", "--requests", "1000"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for label in ("round robin", "least_conn", "ip_hash", "hash consistent", "random"):
        assert label in out
    assert "10.0.0.2:8080 failed" in out
    # consistent methods move nothing but the failed backend's requests
    assert "0.0% of those on healthy backends" in out


def test_cli_pick_and_errors(tmp_path: Path) -> None:
    conf = tmp_path / "up.conf"
    conf.write_text("upstream u { server a:1 weight=5; server b:1; server c:1; }")
    out = subprocess.run(
        [sys.executable, "-m", "lbkit", "pick", "--config", str(conf), "--count", "7"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert out == ["a:1", "a:1", "b:1", "a:1", "c:1", "a:1", "a:1"]
    conf.write_text("upstream u { server a:1 weight=0; }")
    bad = subprocess.run(
        [sys.executable, "-m", "lbkit", "pick", "--config", str(conf)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 2
    assert 'invalid parameter "weight=0"' in bad.stderr
