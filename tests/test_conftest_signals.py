"""The test run's own hygiene: a run stopped with SIGTERM still stops its servers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PROBE = """
import subprocess
import time

import pytest


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    proc = subprocess.Popen(["sleep", "600"])
    yield proc
    proc.terminate()
    proc.wait()


def test_waits(server):
    with open(PID_FILE, "w") as f:
        f.write(str(server.pid))
    time.sleep(60)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie is not alive
        return f.read().split()[2] != "Z"


def test_sigterm_unwinds_fixtures_so_servers_stop(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    (tmp_path / "test_probe.py").write_text(f"PID_FILE = {str(pid_file)!r}\n{PROBE}")
    run = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "tests.conftest",
         str(tmp_path / "test_probe.py")],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not pid_file.exists() or not pid_file.read_text():
        assert run.poll() is None, run.communicate()[0]
        assert time.monotonic() < deadline, "the probe test never started"
        time.sleep(0.05)
    server = int(pid_file.read_text())
    assert _alive(server)
    run.send_signal(signal.SIGTERM)
    out = run.communicate(timeout=60)[0].decode()
    assert "stopped by signal 15" in out
    deadline = time.monotonic() + 10
    while _alive(server) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(server), "the fixture's process outlived the run"
