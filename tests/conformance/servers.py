"""Helpers that run real programs for the conformance suites: free ports, nginx, hold backends."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

NGINX_HINT = "install the Debian package nginx (apt-get install -y nginx) or run .ci/run"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_ports(n: int) -> list[int]:
    """``n`` distinct free ports (held open together so they differ)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


def find_nginx() -> str:
    """Path of the nginx binary, or fail the test saying what to install."""
    path = shutil.which("nginx") or (
        "/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None
    )
    if path is None:
        pytest.fail(f"nginx not found on PATH or in /usr/sbin: {NGINX_HINT}")
    return path


def wait_for_port(
    port: int, proc: subprocess.Popen[bytes] | None = None, timeout: float = 10.0
) -> None:
    """Wait until 127.0.0.1:port accepts connections (fail early if ``proc`` exits)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with status {proc.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.02)
    raise RuntimeError(f"nothing answered on 127.0.0.1:{port} within {timeout}s")


class Nginx:
    """A real nginx started in the foreground from a generated config, stopped by its PID."""

    def __init__(
        self, workdir: Path, http_body: str, ports: list[int], binary: str | None = None
    ) -> None:
        self.workdir = workdir
        self.ports = ports
        for sub in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi", "logs"):
            (workdir / sub).mkdir(parents=True, exist_ok=True)
        conf = f"""
worker_processes 1;
daemon off;
master_process on;
pid {workdir}/nginx.pid;
error_log {workdir}/logs/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {workdir}/client_body;
    proxy_temp_path {workdir}/proxy;
    fastcgi_temp_path {workdir}/fastcgi;
    uwsgi_temp_path {workdir}/uwsgi;
    scgi_temp_path {workdir}/scgi;
{http_body}
}}
"""
        self.conf = workdir / "nginx.conf"
        self.conf.write_text(conf)
        binary = binary or find_nginx()
        test = subprocess.run(
            [
                binary,
                "-t",
                "-p",
                str(workdir),
                "-c",
                str(self.conf),
                "-e",
                str(workdir / "logs/error.log"),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if test.returncode != 0:
            raise RuntimeError(f"nginx rejected the generated config:\n{test.stderr}\n{conf}")
        self.proc = subprocess.Popen(
            [
                binary,
                "-p",
                str(workdir),
                "-c",
                str(self.conf),
                "-e",
                str(workdir / "logs/error.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            for port in ports:
                wait_for_port(port, self.proc)
        except Exception:
            self.stop()
            raise

    @property
    def pid(self) -> int:
        """The master process id."""
        return self.proc.pid

    def error_log(self) -> str:
        """The error log so far."""
        path = self.workdir / "logs/error.log"
        return path.read_text() if path.exists() else ""

    def stop(self) -> None:
        """Stop nginx by its PID (TERM, then KILL after 10 s)."""
        if self.proc.poll() is None:
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.proc.wait(5)


class HoldBackend:
    """An HTTP backend that accepts connections and answers only when released.

    While it holds a request nginx counts an active connection to it, which makes
    least_conn and max_conns behaviour observable from outside.
    """

    def __init__(self, port: int) -> None:
        self.port = port
        self.name = f"127.0.0.1:{port}"
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", port))
        self._sock.listen(128)
        self._held: list[socket.socket] = []
        self._accepted = 0
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            with self._cond:
                self._held.append(conn)
                self._accepted += 1
                self._cond.notify_all()

    @property
    def accepted(self) -> int:
        """Connections accepted so far."""
        with self._cond:
            return self._accepted

    def wait_accepted(self, count: int, timeout: float) -> bool:
        """Wait until ``count`` connections have been accepted."""
        with self._cond:
            return self._cond.wait_for(lambda: self._accepted >= count, timeout)

    def release_all(self) -> int:
        """Answer every held request with 200 and this backend's name; returns how many."""
        with self._cond:
            held, self._held = self._held, []
        body = self.name.encode()
        for conn in held:
            with contextlib.suppress(OSError):
                conn.settimeout(2)
                with contextlib.suppress(OSError):
                    conn.recv(65536)
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
                    % (len(body), body)
                )
            conn.close()
        return len(held)

    def close(self) -> None:
        """Release everything and stop listening."""
        self.release_all()
        self._sock.close()


@contextlib.contextmanager
def hold_backends(ports: list[int]) -> Iterator[list[HoldBackend]]:
    """Start hold backends on ``ports``; close them on exit."""
    backends = [HoldBackend(p) for p in ports]
    try:
        yield backends
    finally:
        for b in backends:
            b.close()


DNSMASQ_HINT = "install the Debian package dnsmasq-base (apt-get install -y dnsmasq-base)"


def find_dnsmasq() -> str:
    """Path of dnsmasq, or fail the test saying what to install."""
    path = shutil.which("dnsmasq") or (
        "/usr/sbin/dnsmasq" if os.path.exists("/usr/sbin/dnsmasq") else None
    )
    if path is None:
        pytest.fail(f"dnsmasq not found on PATH or in /usr/sbin: {DNSMASQ_HINT}")
    return path


class Dnsmasq:
    """A real dnsmasq on 127.0.0.1:port answering from a hosts file and wildcard records."""

    def __init__(
        self,
        workdir: Path,
        port: int,
        addresses: list[str],
        ttl: int,
        extra: tuple[str, ...] = (),
    ) -> None:
        self.port = port
        self.hosts = workdir / "hosts"
        if not self.hosts.exists():
            self.hosts.write_text("")
        args = [
            find_dnsmasq(),
            "--keep-in-foreground",
            "--conf-file=/dev/null",
            f"--port={port}",
            "--listen-address=127.0.0.1",
            "--bind-interfaces",
            "--no-resolv",
            "--no-hosts",
            f"--addn-hosts={self.hosts}",
            f"--local-ttl={ttl}",
            "--user=root",
            "--pid-file=",
            "--log-facility=-",
            # answer NXDOMAIN (not REFUSED) for unknown names in the test domain
            "--local=/priv/",
            *(f"--address={a}" for a in addresses),
            *extra,
        ]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self._wait_ready()

    def _wait_ready(self, timeout: float = 10.0) -> None:
        # a DNS query for the root zone: any reply means dnsmasq is up
        query = bytes.fromhex("abcd01000001000000000000") + b"\x00\x00\x01\x00\x01"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                raise RuntimeError(f"dnsmasq exited with {self.proc.returncode}: {err}")
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.settimeout(0.2)
                try:
                    s.sendto(query, ("127.0.0.1", self.port))
                    s.recvfrom(512)
                    return
                except OSError:
                    time.sleep(0.05)
        raise RuntimeError(f"dnsmasq did not answer on 127.0.0.1:{self.port}")

    @property
    def pid(self) -> int:
        """The dnsmasq process id."""
        return self.proc.pid

    def write_hosts(self, text: str) -> None:
        """Replace the hosts file and make dnsmasq reload it (SIGHUP)."""
        self.hosts.write_text(text)
        os.kill(self.pid, signal.SIGHUP)
        time.sleep(0.2)

    def pause(self) -> None:
        """Stop answering (SIGSTOP) without closing the socket."""
        os.kill(self.pid, signal.SIGSTOP)

    def resume(self) -> None:
        """Answer again (SIGCONT)."""
        os.kill(self.pid, signal.SIGCONT)

    def stop(self) -> None:
        """Stop dnsmasq by its PID."""
        if self.proc.poll() is None:
            os.kill(self.pid, signal.SIGCONT)
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.proc.wait(5)
