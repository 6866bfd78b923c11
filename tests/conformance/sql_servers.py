"""Real PostgreSQL and MariaDB servers for the SQL store tests and benchmarks.

Each server gets a fresh data directory and a free 127.0.0.1 port, runs in the foreground in
its own process group (so ``kill()`` is a crash of the whole server: postmaster and backends),
and is stopped by PID. PostgreSQL refuses to run as root: when the tests run as root the
server runs as the ``postgres`` user Debian's package creates.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from .servers import free_port, wait_for_port


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        pytest.fail(
            f"PostgreSQL's {name} not found in /usr/lib/postgresql/*/bin: install the Debian "
            "package postgresql (apt-get install -y postgresql) or run .ci/install-deps"
        )
    return found[-1]


def _maria_bin(name: str) -> str:
    path = shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if os.path.exists(p)), None
    )
    if path is None:
        pytest.fail(
            f"{name} not found: install the Debian package mariadb-server "
            "(apt-get install -y mariadb-server) or run .ci/install-deps"
        )
    return path


class SqlServer:
    """A database server process: ``kill()`` (SIGKILL to its group), ``restart()``, ``stop()``."""

    url: str

    def __init__(
        self, args: list[str], port: int, user: str | None, workdir: Path, log: Path
    ) -> None:
        self.args = args
        self.port = port
        self.user = user
        self.workdir = workdir
        self.log = log
        self.proc = self._spawn()

    def _spawn(self) -> subprocess.Popen[bytes]:
        with open(self.log, "ab") as log:
            proc = subprocess.Popen(
                self.args,
                stdout=log,
                stderr=subprocess.STDOUT,
                user=self.user,
                start_new_session=True,
                cwd=self.workdir,
            )
        try:
            wait_for_port(self.port, proc, timeout=60)
        except Exception as exc:
            self._kill_group(proc)
            tail = self.log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{self.args[0]} did not start: {exc}\n{tail}") from exc
        return proc

    @property
    def pid(self) -> int:
        return self.proc.pid

    @staticmethod
    def _kill_group(proc: subprocess.Popen[bytes]) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(20)

    def kill(self) -> None:
        """SIGKILL the server and all its processes at once, as a crash."""
        children = _children(self.proc.pid)
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self._kill_group(self.proc)
        # wait until every process is gone, so a restart can bind the port again
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and any(_alive(pid) for pid in children):
            time.sleep(0.02)

    def _signal_all(self, signo: int) -> None:
        # PostgreSQL's backends call setsid(): reach them as the postmaster's children
        for pid in [self.proc.pid, *_children(self.proc.pid)]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signo)

    def pause(self) -> None:
        """SIGSTOP the server and its children: it accepts connections but never answers."""
        self._signal_all(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT after :meth:`pause`."""
        self._signal_all(signal.SIGCONT)

    def restart(self) -> None:
        """Start again on the same port and data directory (crash recovery runs)."""
        if self.proc.poll() is None:
            self.kill()
        self.proc = self._spawn()

    def stop(self) -> None:
        """SIGTERM by PID, then SIGKILL; removes the data directory."""
        if self.proc.poll() is None:
            os.kill(self.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(30)
        self._kill_group(self.proc)
        shutil.rmtree(self.workdir, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _children(pid: int) -> list[int]:
    """PIDs whose parent is ``pid`` (from /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            # the command may hold spaces or parentheses: the fields follow the last ")"
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry))
    return found


def _workdir(prefix: str, owner: str | None) -> Path:
    # not under pytest's tmp_path: that is private to root, and PostgreSQL runs as postgres
    path = Path(tempfile.mkdtemp(prefix=prefix))
    if owner is not None:
        entry = pwd.getpwnam(owner)
        os.chown(path, entry.pw_uid, entry.pw_gid)
    return path


def postgres_server(*, durable: bool = False, max_connections: int = 120) -> SqlServer:
    """A PostgreSQL server; ``durable=False`` skips fsync (a process crash loses nothing)."""
    initdb, postgres = _pg_bin("initdb"), _pg_bin("postgres")
    user = None
    if os.geteuid() == 0:
        user = "postgres"
        try:
            pwd.getpwnam(user)
        except KeyError:
            pytest.fail("user postgres missing: install the Debian package postgresql")
    workdir = _workdir("lbkit-pg-", user)
    data = workdir / "data"
    subprocess.run(
        [initdb, "-D", str(data), "-U", "lbkit", "--auth=trust", "-E", "UTF8", "--no-sync"],
        check=True, user=user, cwd=workdir, capture_output=True,
    )  # fmt: skip
    port = free_port()
    args = [
        postgres, "-D", str(data), "-p", str(port), "-k", str(workdir),
        "-c", "listen_addresses=127.0.0.1", "-c", "shared_buffers=16MB",
        "-c", f"max_connections={max_connections}", "-c", f"fsync={'on' if durable else 'off'}",
        "-c", "log_min_messages=warning", "-c", "deadlock_timeout=1s",
    ]  # fmt: skip
    server = SqlServer(args, port, user, workdir, workdir / "server.log")
    _wait_ready(lambda: _pg_ready(port))
    server.url = f"postgresql://lbkit@127.0.0.1:{port}/postgres"
    return server


def _pg_ready(port: int) -> bool:
    out = subprocess.run(
        [_pg_bin("pg_isready"), "-h", "127.0.0.1", "-p", str(port)],
        capture_output=True, check=False,
    )  # fmt: skip
    return out.returncode == 0


def mariadb_server(*, durable: bool = False, max_connections: int = 120) -> SqlServer:
    """A MariaDB server with a database ``lbkit``, user root without password."""
    install, mariadbd = _maria_bin("mariadb-install-db"), _maria_bin("mariadbd")
    workdir = _workdir("lbkit-maria-", None)
    data = workdir / "data"
    subprocess.run(
        [install, "--no-defaults", f"--datadir={data}", "--auth-root-authentication-method=normal",
         "--skip-test-db", f"--user={pwd.getpwuid(os.geteuid()).pw_name}"],
        check=True, cwd=workdir, capture_output=True,
    )  # fmt: skip
    port = free_port()
    args = [
        mariadbd, "--no-defaults", f"--datadir={data}", f"--socket={workdir / 'sock'}",
        f"--port={port}", "--bind-address=127.0.0.1", f"--pid-file={workdir / 'pid'}",
        "--skip-name-resolve", "--innodb-buffer-pool-size=32M", "--innodb-log-file-size=32M",
        f"--max-connections={max_connections}", "--skip-log-bin",
        f"--innodb-flush-log-at-trx-commit={1 if durable else 2}",
        "--innodb-doublewrite=0" if not durable else "--innodb-doublewrite=1",
        "--innodb-lock-wait-timeout=10", "--performance-schema=0",
    ]  # fmt: skip
    if os.geteuid() == 0:
        args.append("--user=root")
    server = SqlServer(args, port, None, workdir, workdir / "server.log")
    setup = [
        _maria_bin("mariadb"), "--no-defaults", "-uroot", f"--socket={workdir / 'sock'}", "-e",
        "CREATE DATABASE IF NOT EXISTS lbkit; CREATE USER IF NOT EXISTS 'root'@'127.0.0.1'; "
        "GRANT ALL ON *.* TO 'root'@'127.0.0.1'",
    ]  # fmt: skip
    _wait_ready(lambda: subprocess.run(setup, capture_output=True, check=False).returncode == 0)
    server.url = f"mysql://root@127.0.0.1:{port}/lbkit"
    return server


def _wait_ready(ready: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return
        time.sleep(0.1)
    raise RuntimeError(f"database not ready within {timeout}s")
