"""Dense generated configs against a real nginx: conflicts, listen sockets, captures, hosts.

Each config is built from a small alphabet of names (``a.x``, ``*.x``, ``.x``, ``x``,
``x.*``, regexes...) so that names collide in every way nginx resolves: exact duplicates,
``*.x`` against ``.x``, ``.x`` claiming ``x``. Blocks listen on a few sockets (a specific
address, ``*:port`` beside a specific address on the same port, several listens per block,
``default_server`` per socket). Every Host of a generated list is sent to every socket, and
lbkit must agree with nginx on the status, the block, ``$1``..``$3``, a named capture and
``$host`` -- and on the "conflicting server name" warnings nginx logs.
"""

from __future__ import annotations

import random
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import lbkit
from lbkit.nginx import parse_servers

from .servers import Nginx, find_nginx, free_ports

pytestmark = pytest.mark.nginx

NAMES = [
    "x",
    "a.x",
    "b.a.x",
    "*.x",
    ".x",
    "*.a.x",
    ".a.x",
    "x.*",
    "a.*",
    "a.x.*",
    "A.X",
    '""',
    "_",
    r"~^(a)\.(x)$",
    r"~^([ab])\.",
    r"~^(?<nm>[ab]+)\.x$",
    r"~^b",
    r"~^(\w+)\.p5$ ~^zzz$",
    r"~^\Qa.b\E(\d)?$",
    r'"~^\p{L}(\p{N})\.x$"',  # a "{" ends an unquoted word, as in nginx
    r"~^(?:(a)|(b))\.y$",
    "$hostname",
    "a/b.x",  # nginx warns: suspicious symbols
    "café.x",  # UTF-8 in the file: nginx compares its bytes
    '"~^((?:é)+)\\.(x)$"',
]

HOST_LABELS = ["a", "b", "x", "y", "ab", "p5", "zzz", "A", "q1"]


def _hosts(rng: random.Random) -> list[bytes]:
    out: set[bytes] = {b"", b"x", b"a.x", b"A.X.", b"zzz", b"q.p5", b"a.b", b"a.b7", b"a1.x"}
    out.add(socket.gethostname().encode())  # $hostname
    out.update({"café.x".encode(), "CAFÉ.x".encode(), "éé.x".encode(), b"caf\xe9.x"})
    for _ in range(90):
        labels = [rng.choice(HOST_LABELS) for _ in range(rng.randrange(1, 4))]
        host = ".".join(labels)
        r = rng.random()
        if r < 0.1:
            host += "."
        elif r < 0.2:
            host += f":{rng.randrange(1, 9999)}"
        elif r < 0.25:
            host = " " + host + "  "
        elif r < 0.3:
            host = host + "\t"
        elif r < 0.33:
            host = "\t" + host
        out.add(host.encode())
    return sorted(out)


# Host values around nginx's header-line bound (8192 bytes with "Host: " and CRLF)
LONG_HOSTS = [
    b"a" * 1100 + b".x",
    b"b" * 8180 + b".x",  # 8182 bytes: the line is 8190
    b"b" * 8182 + b".x",  # line of 8192: the largest nginx takes
    b"b" * 8183 + b".x",  # line of 8193: 400
    b"a" * 9000,
]


def _config(rng: random.Random, ports: list[int]) -> tuple[str, list[tuple[str, int]]]:
    p1, p2 = ports
    sockets = [f"127.0.0.1:{p1}", f"*:{p2}", f"127.0.0.2:{p2}"]
    blocks = []
    defaults: set[str] = set()
    for i in range(rng.randrange(8, 16)):
        listens = rng.sample(sockets, rng.randrange(1, 3))
        lines = []
        for sock in listens:
            default = ""
            if sock not in defaults and rng.random() < 0.15:
                defaults.add(sock)
                default = " default_server"
            lines.append(f"    listen {sock}{default};")
        names = " ".join(rng.sample(NAMES, rng.randrange(1, 4)))
        blocks.append(
            "server {\n"
            + "\n".join(lines)
            + f"\n    server_name {names};\n"
            + f'    location / {{ return 200 "{i}|$1|$2|$3|$host|$nm"; }}\n'
            + "}\n"
        )
    # a block that defines $nm for every config, listening everywhere
    blocks.append(
        "server {\n"
        + "".join(f"    listen {s};\n" for s in sockets)
        + "    server_name ~^(?<nm>q[0-9]+)\\.nm$;\n"
        + f'    location / {{ return 200 "{len(blocks)}|$1|$2|$3|$host|$nm"; }}\n'
        + "}\n"
    )
    targets = [("127.0.0.1", p1), ("127.0.0.1", p2), ("127.0.0.2", p2)]
    return "".join(blocks), targets


def _raw(addr: str, port: int, host: bytes) -> tuple[int, bytes]:
    head = b"GET / HTTP/1.0\r\nHost: " + host + b"\r\n\r\n"
    with socket.create_connection((addr, port), timeout=10) as s:
        s.sendall(head)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    if not data:
        return 0, b""  # connection closed without an answer
    status = int(data.split(b" ", 2)[1])
    if status != 200:
        return status, b""
    return status, data.partition(b"\r\n\r\n")[2]


def _ours(router: lbkit.Router, addr: str, port: int, host: bytes) -> tuple[int, bytes]:
    try:
        m = router.match(host, listen=(addr, port))
    except lbkit.InvalidHostError:
        return 400, b""
    except lbkit.RegexLimitError:
        return 0, b""
    caps = [*(m.captures[:3]), "", "", ""][:3]
    nm = m.named.get("nm", "")
    body = f"{m.index}|{caps[0]}|{caps[1]}|{caps[2]}|{m.host}|{nm}"
    return 200, body.encode("latin-1")


def _warnings(log: str) -> set[str]:
    found = re.findall(r"\[warn\] \d+#\d+: (.*?)(?: in /\S+:\d+)?\n", log)
    return {w for w in found if "server name" in w}


@pytest.fixture(scope="module", params=range(10))
def generated(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[lbkit.Router, Nginx, list[tuple[str, int]], random.Random]]:
    rng = random.Random(1000 + request.param)
    workdir: Path = tmp_path_factory.mktemp(f"nginx-names-{request.param}")
    ports = free_ports(2)
    text, targets = _config(rng, ports)
    router = parse_servers(text)  # $hostname: this machine's name, as nginx
    nginx = Nginx(workdir, text, ports)
    try:
        yield router, nginx, targets, rng
    finally:
        nginx.stop()


def test_generated_configs_match_nginx(
    generated: tuple[lbkit.Router, Nginx, list[tuple[str, int]], random.Random],
) -> None:
    router, nginx, targets, rng = generated
    hosts = _hosts(rng)
    mismatches = []
    for addr, port in targets:
        for host in hosts:
            ours, theirs = _ours(router, addr, port, host), _raw(addr, port, host)
            if ours != theirs:
                mismatches.append((addr, port, host, ours, theirs))
    assert mismatches == []
    theirs = _warnings(nginx.error_log())
    ours = {w.rsplit(" (line", 1)[0] for w in router.warnings}
    assert ours == theirs
    assert theirs, "the generated config should collide somewhere"


def test_long_hosts_and_the_header_line_bound(
    generated: tuple[lbkit.Router, Nginx, list[tuple[str, int]], random.Random],
) -> None:
    router, _, targets, _ = generated
    addr, port = targets[0]
    for host in LONG_HOSTS:
        assert _ours(router, addr, port, host) == _raw(addr, port, host), len(host)


HOSTILE = r"~^([a-z0-9]+\.?)+\.example\.com$"


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[lbkit.Router, int]]:
    port = free_ports(1)[0]
    text = (
        f'server {{ listen 127.0.0.1:{port}; server_name _; return 200 "0|$1|$2|$3|$host|"; }}\n'
        f"server {{ listen 127.0.0.1:{port}; server_name {HOSTILE};\n"
        f'    return 200 "1|$1|$2|$3|$host|"; }}\n'
    )
    router = parse_servers(text)
    nginx = Nginx(tmp_path_factory.mktemp("nginx-hostile"), text, [port])
    try:
        yield router, port
    finally:
        nginx.stop()


@pytest.mark.parametrize(
    "host",
    [b"a" * 24 + b"!", b"a" * 1000 + b"!", b"ab" * 400 + b".example.co", b"ab.cd.example.com"],
    ids=["25-bytes", "1001-bytes", "match-limit", "matches"],
)
def test_hostile_hosts_are_bounded_like_nginx(
    hostile: tuple[lbkit.Router, int], host: bytes
) -> None:
    router, port = hostile
    started = time.perf_counter()
    ours = _ours(router, "127.0.0.1", port, host)
    assert time.perf_counter() - started < 0.5
    assert ours == _raw("127.0.0.1", port, host)  # (0, b"") where nginx closes the connection


def test_method_redefined_warns_like_nginx(tmp_path: Path) -> None:
    body = "upstream u {\n    least_conn;\n    hash $uri;\n    server 127.0.0.1:1;\n}\n"
    (tmp_path / "logs").mkdir()
    conf = tmp_path / "nginx.conf"
    conf.write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/logs/error.log warn;\n"
        f"events {{ }}\nhttp {{\n{body}}}\n"
    )
    check = subprocess.run(
        [find_nginx(), "-t", "-p", str(tmp_path), "-c", str(conf), "-e", str(tmp_path / "e.log")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stderr
    log = (tmp_path / "e.log").read_text()
    theirs = re.findall(r"\d+: (load balancing method redefined) in \S+:(\d+)", log)
    ours = parse_servers(body + "server { }").warnings
    assert theirs == [("load balancing method redefined", "7")]  # line 3 of body, in http
    assert ours == ["load balancing method redefined in line 3"]


def test_re_fallback_agrees_with_nginx_where_it_can_compile(
    generated: tuple[lbkit.Router, Nginx, list[tuple[str, int]], random.Random],
) -> None:
    _, nginx, targets, _ = generated
    text = nginx.conf.read_text()
    body = text.split("scgi_temp_path", 1)[1].split("\n", 1)[1].rsplit("}", 1)[0]
    if "\\p{" in text:  # the fallback cannot express it, and says what to install
        with pytest.raises(lbkit.ConfigError, match=r"lbkit\[pcre\]"):
            parse_servers(body, regex_engine="re")
        return
    fallback = parse_servers(body, regex_engine="re")
    hosts = _hosts(random.Random(7))
    mismatches = [
        (addr, port, host)
        for addr, port in targets
        for host in hosts
        if _ours(fallback, addr, port, host) != _raw(addr, port, host)
    ]
    assert mismatches == []
