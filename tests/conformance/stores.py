"""Real store servers for the session tests: redis-server, memcached, sharedance, a cluster."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .servers import free_port, free_ports, wait_for_port


def _binary(name: str, package: str) -> str:
    path = shutil.which(name) or (
        f"/usr/bin/{name}" if os.path.exists(f"/usr/bin/{name}") else None
    )
    if path is None:
        pytest.fail(f"{name} not found: install the Debian package {package} (or run .ci/run)")
    return path


class Process:
    """A server process started by a test and stopped by its PID."""

    def __init__(
        self,
        args: list[str],
        port: int,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.args = args
        self.port = port
        self.env = env
        self.cwd = cwd
        self.timeout = timeout
        self.proc = self._spawn()

    def _spawn(self) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            self.args,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=self.env,
            cwd=self.cwd,
        )
        try:
            wait_for_port(self.port, proc, self.timeout)
        except Exception:
            proc.kill()
            raise
        return proc

    @property
    def pid(self) -> int:
        return self.proc.pid

    def kill(self) -> None:
        """SIGKILL, as a crash."""
        if self.proc.poll() is None:
            os.kill(self.pid, signal.SIGKILL)
            self.proc.wait(10)

    def restart(self) -> None:
        """Start again on the same port."""
        self.kill()
        self.proc = self._spawn()

    def stop(self) -> None:
        """SIGTERM by PID, then SIGKILL."""
        if self.proc.poll() is None:
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


def redis_server(workdir: Path, port: int | None = None, *extra: str) -> Process:
    port = port or free_port()
    args = [
        _binary("redis-server", "redis-server"),
        "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
        "--daemonize", "no", "--dir", str(workdir), "--protected-mode", "no", *extra,
    ]  # fmt: skip
    return Process(args, port)


def memcached_server(port: int | None = None, *extra: str) -> Process:
    port = port or free_port()
    args = [_binary("memcached", "memcached"), "-p", str(port), "-l", "127.0.0.1", "-U", "0"]
    if os.geteuid() == 0:
        args += ["-u", "root"]
    return Process([*args, *extra], port)


def sharedance_server(directory: Path, port: int | None = None, expiration: int = 600) -> Process:
    port = port or free_port()
    args = [
        sys.executable, "-m", "lbkit.sharedance", "--ip", "127.0.0.1", "--port", str(port),
        "--directory", str(directory), "--expiration", str(expiration), "--timeout", "5",
    ]  # fmt: skip
    return Process(args, port)


class RedisCluster:
    """Three redis-server nodes joined with ``redis-cli --cluster create``."""

    def __init__(self, workdir: Path) -> None:
        self.nodes: list[Process] = []
        # each node also listens on port + 10000 (the cluster bus): stay below 55536
        ports = free_ports(3)
        while max(ports) >= 55536:
            ports = free_ports(3)
        for port in ports:
            d = workdir / str(port)
            d.mkdir()
            self.nodes.append(
                redis_server(
                    d,
                    port,
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    str(d / "nodes.conf"),
                    "--cluster-node-timeout",
                    "2000",
                )
            )
        cli = _binary("redis-cli", "redis-server")
        out = subprocess.run(
            [cli, "--cluster", "create", *(f"127.0.0.1:{p}" for p in ports),
             "--cluster-replicas", "0", "--cluster-yes"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        if out.returncode != 0:
            self.stop()
            raise RuntimeError(f"redis-cli --cluster create failed: {out.stdout}{out.stderr}")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            info = subprocess.run(
                [cli, "-p", str(ports[0]), "cluster", "info"], capture_output=True, text=True,
                check=False,
            )  # fmt: skip
            if "cluster_state:ok" in info.stdout:
                break
            time.sleep(0.2)
        else:
            self.stop()
            raise RuntimeError("the redis cluster did not reach cluster_state:ok")
        self.url = f"redis://127.0.0.1:{ports[0]}/0"

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
