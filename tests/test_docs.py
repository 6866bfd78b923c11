"""The documentation runs as written.

- Every ```python block in docs/ and README.md runs (a page's blocks in order, in one
  namespace). None is skipped: ```python no-run is refused.
- A block that talks to a server is fenced ```{.python needs=redis} (attribute style, so
  mkdocs still renders it as Python; several: ``needs="dnsmasq zookeeper"``). Before the
  page runs, the test starts each real server its blocks need on a free 127.0.0.1 port and
  puts its address in an environment variable the block reads, as an application reads its
  settings: ``os.environ["REDIS_URL"]`` (``redis://127.0.0.1:PORT/0``),
  ``os.environ["DNS_SERVER"]`` (``127.0.0.1:PORT``, a dnsmasq answering the names in
  ``DOCS_DNS`` below, its hosts file in ``DNSMASQ_HOSTS`` and PID file in
  ``DNSMASQ_PID_FILE``), ``os.environ["ZK_HOSTS"]`` (``127.0.0.1:PORT``, an empty
  ZooKeeper). A server that is not installed fails the test saying what to install.
- Every ```console block runs: each ``$ `` line is a shell command run from the repository
  root with this Python's scripts first on PATH, and the lines after it, up to the next
  ``$ `` line, are its output (stdout and stderr together), compared exactly. A block that
  starts a server that runs until stopped is fenced ```{.console .no-run}: a named test in
  ``LONG_RUNNING`` runs its command lines (the page's ports replaced by free ones, the server
  in the background, stopped by its PID), and the page names that test.
- The algorithm pictures are drawn by docs/draw_pictures.py; every image a page shows exists.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conformance.servers import Dnsmasq, free_port, wait_for_port
from tests.conformance.stores import Process, redis_server
from tests.discovery.zookeeper_server import ZooKeeper

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.glob("*.md"))
README = ROOT / "README.md"
BLOCK = re.compile(r"```(?:python|\{\.python( needs=[^}\n]*)\})\n(.*?)```", re.S)
PYTHON_FENCE = re.compile(r"^```(?:python|\{\.python)[^\n]*$", re.M)
NEEDS = re.compile(r'needs=(?:"([^"]*)"|(\S+))')
SERVERS = ("redis", "dnsmasq", "zookeeper")
# the names the DNS examples resolve: wildcard, A records, an SRV record with its target
DOCS_DNS = (
    "--address=/jira.example/10.8.0.17",
    "--host-record=app.internal,10.0.0.1",
    "--host-record=api1.internal,10.0.1.1",
    "--srv-host=_http._tcp.api.internal,api1.internal,8080,0,5",
    "--local=/internal/",
    "--local=/example/",
)
CONSOLE = re.compile(r"```console\n(.*?)```", re.S)
NO_RUN_CONSOLE = re.compile(r"```\{\.console \.no-run\}\n(.*?)```", re.S)
IMAGE = re.compile(r"!\[[^\]]*\]\(([^)]+)\)")


def test_every_page_is_linked_from_the_index() -> None:
    index = (DOCS / "index.md").read_text()
    missing = [p.name for p in PAGES if p.name != "index.md" and f"({p.name})" not in index]
    assert missing == []


def test_every_page_is_in_the_site_navigation() -> None:
    nav = (ROOT / "mkdocs.yml").read_text()
    missing = [p.name for p in PAGES if f": {p.name}" not in nav]
    assert missing == []


def _needs(attributes: str) -> set[str]:
    """The servers named by a fence's ``needs=`` attribute."""
    match = NEEDS.search(attributes)
    return set((match.group(1) or match.group(2)).replace(",", " ").split()) if match else set()


def _fence_runs(fence: str) -> bool:
    """True for a fence this test runs, or one a test of its own runs (``file=NAME``: the
    app files that tests/integrations and tests/php serve under real app servers)."""
    if fence == "```python":
        return True
    attributes = fence.removeprefix("```{.python").removesuffix("}")
    if not fence.startswith("```{.python") or not fence.endswith("}"):
        return False
    return bool(re.fullmatch(r" file=[\w.]+", attributes)) or (
        "needs=" in attributes and _needs(attributes) <= set(SERVERS)
    )


def test_every_python_fence_runs_and_renders() -> None:
    """No python fence is skipped, each names only servers the test can start, and each is
    one mkdocs renders as code (``python WORD`` is not: it becomes a paragraph)."""
    bad = [
        (page.name, fence)
        for page in [*PAGES, README]
        for fence in PYTHON_FENCE.findall(page.read_text())
        if not _fence_runs(fence)
    ]
    assert bad == []


@contextlib.contextmanager
def _servers(needs: set[str], workdir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Start every server in ``needs``, put its address in the environment, stop it after."""
    with contextlib.ExitStack() as stack:
        if "redis" in needs:
            (workdir / "redis").mkdir()
            redis = redis_server(workdir / "redis")
            stack.callback(redis.stop)
            monkeypatch.setenv("REDIS_URL", f"redis://127.0.0.1:{redis.port}/0")
        if "dnsmasq" in needs:
            (workdir / "dns").mkdir()
            dns = Dnsmasq(workdir / "dns", free_port(), [], ttl=1, extra=DOCS_DNS)
            stack.callback(dns.stop)
            (workdir / "dns" / "dnsmasq.pid").write_text(f"{dns.pid}\n")
            monkeypatch.setenv("DNS_SERVER", f"127.0.0.1:{dns.port}")
            monkeypatch.setenv("DNSMASQ_HOSTS", str(dns.hosts))
            monkeypatch.setenv("DNSMASQ_PID_FILE", str(workdir / "dns" / "dnsmasq.pid"))
        if "zookeeper" in needs:
            zk = ZooKeeper(workdir / "zk", free_port())
            stack.callback(zk.stop)
            monkeypatch.setenv("ZK_HOSTS", zk.hosts)
        yield


@pytest.mark.parametrize("page", [*PAGES, README], ids=lambda p: p.name)
def test_examples_run(
    page: Path,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    blocks = BLOCK.findall(page.read_text())
    needs = set().union(*(_needs(attributes) for attributes, _ in blocks))
    namespace: dict[str, object] = {"__name__": f"docs_{page.stem}"}
    with _servers(needs, tmp_path, monkeypatch):
        for _, block in blocks:
            exec(compile(block, str(page), "exec"), namespace)


def _sessions(page: Path) -> list[tuple[str, str]]:
    """(command, expected output) for every ``$ `` line of the page's console blocks."""
    out: list[tuple[str, str]] = []
    for block in CONSOLE.findall(page.read_text()):
        for chunk in ("\n" + block).split("\n$ ")[1:]:
            command, _, expected = chunk.partition("\n")
            out.append((command, expected))
    return out


CONSOLE_PAGES = [p for p in [*PAGES, README] if _sessions(p)]


@pytest.mark.parametrize("page", CONSOLE_PAGES, ids=lambda p: p.name)
def test_console_sessions_print_what_the_page_shows(page: Path) -> None:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    for command, expected in _sessions(page):
        result = subprocess.run(
            ["bash", "-c", command],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.stdout == expected, command


def test_the_cli_page_has_console_sessions() -> None:
    commands = [c for c, _ in _sessions(DOCS / "cli.md")]
    for name in ("route", "predict", "simulate", "reshard"):
        assert any(c.split("|")[-1].strip().startswith(f"lbkit {name}") for c in commands), name


def test_every_image_a_page_shows_exists() -> None:
    missing = [
        (page.name, src)
        for page in PAGES
        for src in IMAGE.findall(page.read_text())
        if not src.startswith("http") and not (DOCS / src).is_file()
    ]
    assert missing == []


def test_draw_pictures_draws_every_algorithm(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(DOCS / "draw_pictures.py"), str(tmp_path)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    drawn = sorted(p.name for p in tmp_path.glob("*.png"))
    shipped = sorted(p.name for p in (DOCS / "img" / "algorithms").glob("*.png"))
    assert drawn == shipped
    assert len(drawn) >= 10
    for png in tmp_path.glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ```{.console .no-run} blocks: page -> the tests below that run their command lines
LONG_RUNNING = {
    "proxy.md": [
        "test_the_proxy_page_serves_http_as_shown",
        "test_the_proxy_page_serves_tcp_as_shown",
    ],
}
ECHO = """import asyncio, sys
async def echo(reader, writer):
    writer.write(await reader.read())
    await writer.drain()
    writer.close()
async def main():
    server = await asyncio.start_server(echo, "127.0.0.1", int(sys.argv[1]))
    await server.serve_forever()
asyncio.run(main())
"""


def _long_running(page: str, index: int) -> list[str]:
    """The ``$ `` command lines of the page's ``index``-th ```{.console .no-run} block."""
    block = NO_RUN_CONSOLE.findall((DOCS / page).read_text())[index]
    return [line[2:] for line in block.splitlines() if line.startswith("$ ")]


def _on_ports(command: str, ports: dict[str, int]) -> str:
    """``command`` with each port number the page shows replaced by a free port."""
    return re.sub(r"\b\d{4,5}\b", lambda m: str(ports.get(m.group(0), m.group(0))), command)


@contextlib.contextmanager
def _background(command: str, cwd: Path, port: int) -> Iterator[None]:
    """Run a page's long-running command line until the block ends; stop it by its PID."""
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    env["PYTHONPATH"] = str(ROOT)
    proc = subprocess.Popen(["bash", "-c", f"exec {command}"], cwd=cwd, env=env)
    try:
        wait_for_port(port, proc, timeout=30)
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def test_every_long_running_console_block_has_a_test() -> None:
    pages = [*PAGES, README]
    counted = {p.name: len(NO_RUN_CONSOLE.findall(p.read_text())) for p in pages}
    assert {name: n for name, n in counted.items() if n} == {
        name: len(tests) for name, tests in LONG_RUNNING.items()
    }
    for name, tests in LONG_RUNNING.items():
        text = (DOCS / name).read_text()
        assert all(f"tests/test_docs.py::{t}" in text for t in tests), name


def test_the_proxy_page_serves_http_as_shown(tmp_path: Path) -> None:
    """proxy.md's ``python -m examples.proxy`` line serves examples/proxy/nginx.conf (its
    backends on free ports), and its two ``curl`` lines get the tenant's backend and the
    admin page."""
    import httpx

    proxy_line, *curl_lines = _long_running("proxy.md", 0)
    ports = {str(p): free_port() for p in (8080, 8081, 8082, 8083)}
    conf = tmp_path / "nginx.conf"
    conf.write_text(_on_ports((ROOT / "examples/proxy/nginx.conf").read_text(), ports))
    backends = []
    for n, port in enumerate(ports.values()):
        if n:
            (tmp_path / f"www{n}").mkdir()
            (tmp_path / f"www{n}" / "index.html").write_text(f"backend {n}\n")
            args = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"]
            backends.append(Process([*args, "--directory", str(tmp_path / f"www{n}")], port))
    command = _on_ports(proxy_line, ports).replace("examples/proxy/nginx.conf", str(conf))
    assert command.startswith("python -m examples.proxy ")
    try:
        with _background(command, ROOT, ports["8080"]):
            answers = []
            for line in curl_lines:
                args = shlex.split(_on_ports(line, ports))
                assert args[0] == "curl", line
                headers = dict(h.split(": ", 1) for h in args[2:-1:2] if args[1] == "-H")
                answers.append(httpx.get(args[-1], headers=headers, timeout=10))
    finally:
        for backend in backends:
            backend.stop()
    tenant, admin = answers
    assert (tenant.status_code, tenant.text) == (200, "backend 1\n")  # host_01: 8081
    assert sorted(admin.json()["upstreams"]) == ["app", "cache", "host_01", "host_02"]
    assert [p["requests"] for p in admin.json()["upstreams"]["host_01"]] == [1]


def test_the_proxy_page_serves_tcp_as_shown(tmp_path: Path) -> None:
    """proxy.md's ``printf ... > db.conf`` and ``python examples/tcp_proxy.py`` lines, in a
    scratch folder with echo backends on free ports: bytes come back through the proxy."""
    printf_line, proxy_line = _long_running("proxy.md", 1)
    ports = {str(p): free_port() for p in (5433, 5434, 9000)}
    backends = [Process([sys.executable, "-c", ECHO, str(ports[p])], ports[p]) for p in ports]
    subprocess.run(["bash", "-c", _on_ports(printf_line, ports)], cwd=tmp_path, check=True)
    command = _on_ports(proxy_line, ports).replace("examples/", f"{ROOT}/examples/")
    try:
        with (
            _background(command, tmp_path, ports["9000"]),
            socket.create_connection(("127.0.0.1", ports["9000"]), timeout=10) as conn,
        ):
            conn.sendall(b"ping")
            conn.shutdown(socket.SHUT_WR)
            assert conn.recv(100) == b"ping"
    finally:
        for backend in backends:
            backend.stop()
