"""A whole nginx.conf and its locations against a real nginx.

The same files are loaded by ``lbkit.nginx.load_config`` and run by nginx (``-c``): an
``include`` with a glob, ``map``, ``if`` with a quoted regex, comments and escapes. Every
(host, URI) pair gets the same server block and location from both, with the same
captures; proxied requests reach a backend with the URI nginx's ``proxy_pass`` rewriting
gives, and lbkit's :func:`~lbkit.routing.rewrite_uri` gives the same.
"""

from __future__ import annotations

import http.server
import random
import socket
import subprocess
import threading
from collections.abc import Iterator

import pytest

import lbkit
from lbkit.errors import RequestError
from lbkit.nginx import load_config
from lbkit.nginx.config import NginxConfig
from lbkit.routing import normalize_uri, rewrite_uri

from .servers import find_nginx, free_ports, wait_for_port

pytestmark = pytest.mark.nginx

LOCATIONS = [
    ("=", "/"),
    ("", "/"),
    ("", "/a"),
    ("", "/a/b"),
    ("^~", "/a/b/c"),
    ("=", "/a/b"),
    ("~", r"^/a/(b|x)/"),
    ("~*", r"\.(PNG|jpg)$"),
    ("", "/img/"),
    ("~", r"/img/(?<name>\w+)\.png$"),
    ("^~", "/static/"),
    ("~", r"^/static/(.*)\.css$"),
]
NESTED = """
    location /n/ {
        return 200 "L-n|$1";
        location ~ ^/n/(\\d+)$ { return 200 "L-n-digits|$1"; }
        location /n/deep/ { return 200 "L-n-deep|$1"; }
    }
    location ~ ^/r/ {
        return 200 "L-r|$1";
        location ~ ^/r/(x+)$ { return 200 "L-r-x|$1"; }
    }
    location @named { return 200 "L-named|"; }
"""


def _server(index: int, name: str, port: int, backend: int) -> str:
    body = [f"server {{\n    listen 127.0.0.1:{port};\n    server_name {name};"]
    body.append('    # a comment with "quotes" and { braces }')
    for i, (modifier, path) in enumerate(LOCATIONS):
        quoted = f'"{path}"' if "{" in path or ";" in path else path
        body.append(f'    location {modifier} {quoted} {{ return 200 "L{i}|$1"; }}')
    body.append(NESTED)
    body.append(
        f"    location /p/ {{ proxy_pass http://127.0.0.1:{backend}/v1/; }}\n"
        f"    location /q {{ proxy_pass http://127.0.0.1:{backend}; }}\n"
        f"    location = /e {{ proxy_pass http://127.0.0.1:{backend}/exact; }}\n"
        f"    location /w/ {{ proxy_pass http://127.0.0.1:{backend}/; }}\n"
    )
    body.append("}\n")
    return "\n".join(body)


class _Echo(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # the URI the backend got, as the body
        data = self.path.encode("latin-1")
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[NginxConfig, int]]:
    root = tmp_path_factory.mktemp("nginx-conf")
    port, backend = free_ports(2)
    echo = http.server.ThreadingHTTPServer(("127.0.0.1", backend), _Echo)
    thread = threading.Thread(target=echo.serve_forever, daemon=True)
    thread.start()
    for sub in ("logs", "tmp", "conf.d"):
        (root / sub).mkdir()
    (root / "nginx.conf").write_text(
        f"""# generated: a main file including its servers
worker_processes 1;
daemon off;
pid {root}/nginx.pid;
error_log {root}/logs/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {root}/tmp; proxy_temp_path {root}/tmp;
    fastcgi_temp_path {root}/tmp; uwsgi_temp_path {root}/tmp; scgi_temp_path {root}/tmp;
    map $http_x_kind $kind {{ default plain; ~^w web; "a b" 'spaced'; }}
    include conf.d/*.conf;
}}
"""
    )
    (root / "conf.d" / "00-default.conf").write_text(
        f"server {{ listen 127.0.0.1:{port} default_server; server_name _;\n"
        '  if ($http_cookie ~* "id=([^;]+)(?:;|$)") { set $sid $1; }\n'
        '  return 200 "default|"; }\n'
    )
    (root / "conf.d" / "10-site.conf").write_text(_server(1, "site.test", port, backend))
    binary = find_nginx()
    check = subprocess.run(
        [binary, "-t", "-p", str(root), "-c", str(root / "nginx.conf")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stderr
    proc = subprocess.Popen(
        [binary, "-p", str(root), "-c", str(root / "nginx.conf")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, proc)
        yield load_config(root / "nginx.conf"), port
    finally:
        proc.terminate()
        proc.wait(10)
        echo.shutdown()
        echo.server_close()


def _get(port: int, host: str, uri: str) -> tuple[int, str]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(f"GET {uri} HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    status = int(data.split(b" ", 2)[1])
    return status, data.partition(b"\r\n\r\n")[2].decode("latin-1") if status == 200 else ""


def _ours(config: NginxConfig, port: int, host: str, uri: str) -> tuple[int, str]:
    assert config.router is not None
    try:
        path, args = normalize_uri(uri)
    except RequestError:
        return 400, ""
    m = config.router.match(host, listen=("127.0.0.1", port))
    if m.server.locations is None:
        return 200, "default|"
    found = m.server.locations.find(path)  # type: ignore[attr-defined]
    if found is None:
        return 404, ""
    if found.redirect:
        return 301, ""
    loc = found.location
    if loc.proxy_pass is not None:
        return 200, rewrite_uri(loc, loc.proxy_pass, path, uri, args)
    assert loc.return_ is not None
    text = loc.return_[1] or ""
    return loc.return_[0], text.replace("$1", found.captures[0] if found.captures else "")


URIS = [
    "/",
    "/a",
    "/ab",
    "/a/b",
    "/a/b/",
    "/a/b/c",
    "/a/b/c/d.png",
    "/a/x/",
    "/a/x/y.JPG",
    "/img/",
    "/img/cat.png",
    "/img/Cat.PNG",
    "/static/site.css",
    "/static/x.png",
    "/n/",
    "/n/42",
    "/n/deep/1",
    "/n/deep/1.png",
    "/r/xx",
    "/r/y",
    "/@named",
    "/p/x?y=1",
    "/p/",
    "/p",
    "/q/a?b",
    "/qq",
    "/e",
    "/w/deep/path?k=v",
    "/w",
    "/zzz.jpg",
    "/a//b",
    "/a/./b/c",
    "/a/x/../b/",
    "/%61/b",
    "/img/c%61t.png",
    "/p/a%20b?x",
    "/p/x/..%2Fy",
    "/a/b/%2e%2e/c",
    "/n/../n/5",
    "/..",
    "/a/%2",
    "/p//q/./r?a#b",
    "/w/%7euser",
    "/p/%25",
]


def test_whole_config_and_locations_match_nginx(setup: tuple[NginxConfig, int]) -> None:
    config, port = setup
    assert [f.name for f in config.files] == ["nginx.conf", "00-default.conf", "10-site.conf"]
    assert config.maps["kind"].lookup("web") == "web"
    assert config.maps["kind"].lookup("a b") == "spaced"
    rng = random.Random(5)
    uris = URIS + [
        "/"
        + "/".join(
            rng.choice(["a", "b", "c", "x", "img", "n", "r", "x.png", "1"])
            for _ in range(rng.randrange(1, 4))
        )
        for _ in range(150)
    ]
    mismatches = []
    for host in ("site.test", "other.test"):
        for uri in uris:
            ours, theirs = _ours(config, port, host, uri), _get(port, host, uri)
            if ours != theirs:
                mismatches.append((host, uri, ours, theirs))
    assert mismatches == []


def test_unknown_if_is_listed(setup: tuple[NginxConfig, int]) -> None:
    config, _ = setup
    (cond,) = [u for u in config.unknown if u.name == "if"]
    assert cond.where.endswith("00-default.conf:2:3")
    assert isinstance(config.router, lbkit.Router)


def test_locations_are_really_told_apart(setup: tuple[NginxConfig, int]) -> None:
    _, port = setup
    bodies = {_get(port, "site.test", uri)[1] for uri in URIS}
    assert len(bodies) > 20  # the URIs reach many different locations
    assert _get(port, "site.test", "/p/x?y=1") == (200, "/v1/x?y=1")
    assert _get(port, "site.test", "/img/cat.png") == (200, "L7|png")  # regexes in order
