"""Host routing against a real nginx: same block, captures and $host for every Host header.

nginx runs one listen socket with the server blocks below, each answering
``<index>|$1|$2|$3|$host``; requests are written byte by byte so that Host headers can carry
any bytes. An invalid Host is nginx's 400 and lbkit's InvalidHostError.
"""

from __future__ import annotations

import random
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

import lbkit
from lbkit.nginx import parse_servers

from .servers import Nginx, free_port

pytestmark = pytest.mark.nginx

SERVER_NAMES = [
    "_",  # 0, listen default_server
    "example.com www.example.com",
    "*.example.com",
    ".example.org",
    "www.example.*",
    r"~^(\w+)_(\w+)_(\d+)\.test\.org$",
    r'"~^(?<user>[a-z0-9-]+)\.jira\.example$"',
    '""',
    "*.b.example.com",
    "www.*",
    r'"~^(?P<tenant>[a-z]+)\.(?P<env>dev|prod)\.corp$"',
    r"~^API\.(.+)$",
    "xn--bcher-kva.example",
    r"~^(\d+)\.(\d+)\.(\d+)\.(\d+)$",
    "*.example.com",  # conflicts with block 2: ignored
    "localhost 127.0.0.1",
    r"~\.regex-first\.test$ first.regex-first.test",
    r"~^a",
    ".example.net",
    "[::1]",
    r'"~^(www\.)?(?<domain>.+)\.shop$"',
    "mail.example.*",
    r"~(.*)\.multi\.test",
    r"~^(?<sub>[^.]+)\.(?<sub2>[^.]+)\.deep\.test$",
]


def _config(port: int) -> str:
    blocks = []
    for i, names in enumerate(SERVER_NAMES):
        listen = f"127.0.0.1:{port}" + (" default_server" if i == 0 else "")
        extra = "|$user" if i == 6 else "|$domain" if i == 20 else ""
        blocks.append(
            f"server {{\n    listen {listen};\n    server_name {names};\n"
            f'    location / {{ return 200 "{i}|$1|$2|$3|$host{extra}"; }}\n}}\n'
        )
    return "".join(blocks)


@pytest.fixture(scope="module")
def nginx_router(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, lbkit.Router]]:
    workdir: Path = tmp_path_factory.mktemp("nginx-routing")
    port = free_port()
    text = _config(port)
    router = parse_servers(text)
    nginx = Nginx(workdir, text, [port])
    try:
        yield port, router
    finally:
        nginx.stop()


def _raw(port: int, host: bytes | None) -> tuple[int, bytes]:
    head = b"GET / HTTP/1.0\r\n"
    if host is not None:
        head += b"Host: " + host + b"\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(head + b"\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    status = int(data.split(b" ", 2)[1])
    if status != 200:
        return status, b""  # nginx's error page: only the status is compared
    return status, data.partition(b"\r\n\r\n")[2]


def _ours(router: lbkit.Router, host: bytes | None) -> tuple[int, bytes]:
    try:
        m = router.match(host)
    except lbkit.InvalidHostError:
        return 400, b""
    caps = [*(m.captures[:3]), "", "", ""][:3]
    body = f"{m.index}|{caps[0]}|{caps[1]}|{caps[2]}|{m.host}"
    if m.index == 6:
        body += "|" + m.named.get("user", "")
    if m.index == 20:
        body += "|" + m.named.get("domain", "")
    return 200, body.encode("latin-1")


EDGE_HOSTS: list[bytes | None] = [
    None,
    b"example.com",
    b"EXAMPLE.COM",
    b"Example.Com.",
    b"example.com:8080",
    b"example.com:",
    b"example.com:80:90",
    b"www.example.com",
    b"a.example.com",
    b"A.B.EXAMPLE.COM",
    b"x.b.example.com",
    b"b.example.com",
    b"example.org",
    b"sub.example.org",
    b"deep.sub.example.org.",
    b"www.example.net",
    b"www.example.co.uk",
    b"www.other.io",
    b"www",
    b"www.",
    b"mail.example.de",
    b"wordpress_c001_01.test.org",
    b"WordPress_C001_01.Test.Org",
    b"a_b_c.test.org",
    b"a_b_1.test.org.",
    b"user-01.jira.example",
    b"USER-02.JIRA.EXAMPLE:443",
    b"acme.dev.corp",
    b"acme.stage.corp",
    b"api.something",
    b"API.Something.Else",
    b"xn--bcher-kva.example",
    b"10.1.2.3",
    b"10.1.2.3:8080",
    b"localhost",
    b"127.0.0.1",
    b"[::1]",
    b"[::1]:8080",
    b"[2001:db8::1]:443",
    b"[::1",
    b"first.regex-first.test",
    b"second.regex-first.test",
    b"alpha.nomatch",
    b"beta.nomatch",
    b"www.shop.shop",
    b"store.shop",
    b"x.multi.test.more",
    b"one.two.deep.test",
    b"one.two.three.deep.test",
    b".example.com",
    b".leading.dot",
    b"a..b",
    b"a/b",
    b"a\\b",
    b"",
    b"   ",
    b"  example.com  ",
    b"exa mple.com",
    b"example.com\x7f",
    b"example.com\x01",
    b"caf\xc3\xa9.example.com",
    b"\xe9t\xe9.test",
    b"\xe9t\xe9_a_1.test.org",
    b"a_b_\xd9\xa3.test.org",
    b"_.example.com",
    b"under_score",
    b"-dash-.example.org",
    b"*.example.com",
    b"~regex",
    b"a" * 300 + b".example.com",
    b"1.2.3.4.5",
    b"::1",
    b":8080",
    b"[]",
    b"%41.example.com",
]


def _random_hosts(n: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    labels = ["www", "a", "b", "api", "mail", "user-7", "x_y_9", "shop", "deep", "dev", "corp"]
    suffixes = [
        "example.com",
        "example.org",
        "example.net",
        "b.example.com",
        "test.org",
        "jira.example",
        "multi.test",
        "deep.test",
        "dev.corp",
        "shop",
        "regex-first.test",
        "nomatch",
        "example.co.uk",
    ]
    out = []
    for _ in range(n):
        parts = [rng.choice(labels) for _ in range(rng.randrange(0, 3))]
        host = ".".join([*parts, rng.choice(suffixes)])
        if rng.random() < 0.3:
            host = "".join(c.upper() if rng.random() < 0.5 else c for c in host)
        if rng.random() < 0.2:
            host += "."
        if rng.random() < 0.2:
            host += f":{rng.randrange(1, 65536)}"
        out.append(host.encode())
    return out


@pytest.mark.parametrize("host", EDGE_HOSTS, ids=lambda h: repr(h)[:40])
def test_edge_hosts_match_nginx(nginx_router: tuple[int, lbkit.Router], host: bytes | None) -> None:
    port, router = nginx_router
    assert _ours(router, host) == _raw(port, host)


def test_random_hosts_match_nginx(nginx_router: tuple[int, lbkit.Router]) -> None:
    port, router = nginx_router
    mismatches = [
        (h, _ours(router, h), _raw(port, h))
        for h in _random_hosts(600, seed=9)
        if _ours(router, h) != _raw(port, h)
    ]
    assert mismatches == []
