"""Real servers for the framework tests: redis-server, and the docs' apps under gunicorn or
uvicorn (two processes each, sharing the store)."""

from __future__ import annotations

import os
import re
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conformance.servers import free_port, wait_for_port
from tests.conformance.stores import Process
from tests.sessions.conftest import redis_proc

__all__ = ["AppServer", "docs_file", "gunicorn", "redis_proc", "uvicorn"]

DOCS = Path(__file__).resolve().parents[2] / "docs"


def docs_file(page: str, name: str) -> str:
    """The ```{.python file=<name>} block of a docs page, as written there."""
    text = (DOCS / page).read_text()
    m = re.search(rf"```\{{\.python file={re.escape(name)}\}}\n(.*?)```", text, re.S)
    assert m, f"docs/{page} has no ```{{.python file={name}}} block"
    return m.group(1)


class AppServer:
    """One app server process (gunicorn or uvicorn) on a free port, stopped by its PID."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        argv = [a.replace("{port}", str(self.port)) for a in args]
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                argv, cwd=cwd, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT
            )
        try:
            wait_for_port(self.port, self.proc, timeout=30)
        except Exception:
            self.stop()
            raise RuntimeError(f"{argv} did not start:\n{log.read_text()}") from None

    def stop(self) -> None:
        """SIGTERM by PID, then SIGKILL."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)


def gunicorn(module: str) -> list[str]:
    """Args for gunicorn with one worker of 4 threads on {port}."""
    return [
        sys.executable, "-m", "gunicorn", "--bind", "127.0.0.1:{port}", "--workers", "1",
        "--threads", "4", "--graceful-timeout", "2", module,
    ]  # fmt: skip


def uvicorn(module: str) -> list[str]:
    """Args for uvicorn on {port}."""
    return [
        sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--port", "{port}",
        "--log-level", "warning", module,
    ]  # fmt: skip


@pytest.fixture
def redis_url(redis_proc: Process) -> str:
    return f"redis://127.0.0.1:{redis_proc.port}/0"


@pytest.fixture
def session_secret() -> str:
    return secrets.token_urlsafe(32)


@pytest.fixture
def start_apps(tmp_path: Path) -> Iterator[object]:
    """start_apps(args, env, n=2) -> n AppServers running in tmp_path; all stopped after."""
    started: list[AppServer] = []

    def start(args: list[str], env: dict[str, str], n: int = 2) -> list[AppServer]:
        servers = []
        for _ in range(n):
            server = AppServer(args, env, tmp_path, tmp_path / f"server{len(started)}.log")
            started.append(server)
            servers.append(server)
        return servers

    yield start
    for server in started:
        server.stop()
