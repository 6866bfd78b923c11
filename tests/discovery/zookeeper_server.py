"""A real ZooKeeper (Debian's ``zookeeper`` package) run by the tests: standalone, in the
foreground on a free 127.0.0.1 port with a temporary dataDir, stopped by its PID."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

ZK_HINT = (
    "install the Debian package zookeeper (apt-get install -y zookeeper) or run .ci/install-deps"
)
ZK_JAR = Path("/usr/share/java/zookeeper.jar")
MAIN = "org.apache.zookeeper.server.ZooKeeperServerMain"
LOG4J = """log4j.rootLogger=WARN, CONSOLE
log4j.appender.CONSOLE=org.apache.log4j.ConsoleAppender
log4j.appender.CONSOLE.layout=org.apache.log4j.PatternLayout
log4j.appender.CONSOLE.layout.ConversionPattern=%d %p %m%n
"""


def find_java() -> str:
    """The java binary and ZooKeeper's jar, or fail the test saying what to install."""
    java = shutil.which("java")
    if java is None or not ZK_JAR.exists():
        pytest.fail(f"java or {ZK_JAR} not found: {ZK_HINT}")
    return java


class ZooKeeper:
    """One standalone ZooKeeper server; ``restart()`` keeps its data (same dataDir, port)."""

    def __init__(self, workdir: Path, port: int, tick_ms: int = 200) -> None:
        self.workdir = workdir
        self.port = port
        self.hosts = f"127.0.0.1:{port}"
        (workdir / "data").mkdir(parents=True, exist_ok=True)
        (workdir / "log4j.properties").write_text(LOG4J)
        self.conf = workdir / "zoo.cfg"
        self.conf.write_text(
            f"tickTime={tick_ms}\n"
            f"dataDir={workdir / 'data'}\n"
            f"clientPort={port}\n"
            "clientPortAddress=127.0.0.1\n"
            "maxClientCnxns=0\n"
            "admin.enableServer=false\n"
            "4lw.commands.whitelist=ruok\n"
        )
        self.java = find_java()
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        """Start the server and wait until it answers ``ruok`` with ``imok``."""
        log = open(self.workdir / "zookeeper.out", "ab")  # noqa: SIM115 - closed in stop()
        self._log = log
        self.proc = subprocess.Popen(
            [self.java, "-Xmx128m", "-cp", f"{self.workdir}:{ZK_JAR}", MAIN, str(self.conf)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"zookeeper exited with {self.proc.returncode}: "
                    f"{(self.workdir / 'zookeeper.out').read_text()[-2000:]}"
                )
            if self._ruok():
                return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"zookeeper did not answer on {self.hosts} within 30 s")

    def _ruok(self) -> bool:
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", self.port), 0.5) as s,
        ):
            s.sendall(b"ruok")
            return s.recv(16) == b"imok"
        return False

    @property
    def pid(self) -> int:
        """The java process id."""
        assert self.proc is not None
        return self.proc.pid

    def stop(self) -> None:
        """Stop the server by its PID (TERM, then KILL after 10 s)."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.proc = None
        self._log.close()

    def restart(self) -> None:
        """Stop and start again on the same port with the same data."""
        self.stop()
        self.start()
