"""Port text in ``listen``, upstream ``server``, ``proxy_pass`` and ``resolver``: as nginx.

nginx reads them all with ``ngx_parse_url`` (``ngx_atoi``, then 1..65535), so leading
zeros are fine and a value that overflows is not; ``nginx -t`` on each config is the judge.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

import lbkit
from lbkit.nginx import load_config
from lbkit.routing import Request, plan_route

from .servers import find_nginx, free_port

FREE = free_port()
# (port text, whether it names a port) for each context; listen ports are free ones
CASES = [
    (str(FREE), True),
    (f"0{FREE}", True),
    (f"000{FREE}", True),
    ("0" * 40 + str(FREE), True),
    ("65536", False),
    ("0", False),
    ("000", False),
    ("9" * 20, False),
    ("0" * 40 + "65536", False),
    ("8o", False),
    ("²", False),
    ("", False),
]
PROXY_ONLY = [("065535", True), ("00001", True), ("00065535", True)]


def _nginx_accepts(tmp_path: Path, http: str) -> bool:
    (tmp_path / "logs").mkdir(exist_ok=True)
    conf = tmp_path / "nginx.conf"
    conf.write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/logs/error.log;\nevents {{ }}\n"
        f"http {{\naccess_log off;\n{http}\n}}\n"
    )
    check = subprocess.run(
        [find_nginx(), "-t", "-p", str(tmp_path), "-c", str(conf), "-e", str(tmp_path / "e.log")],
        capture_output=True,
        text=True,
        check=False,
    )
    if check.returncode != 0:
        assert "invalid port" in (tmp_path / "e.log").read_text(), check.stderr
    return check.returncode == 0


def _lbkit_accepts(tmp_path: Path, http: str) -> bool:
    conf = tmp_path / "lbkit.conf"
    conf.write_text(f"http {{\n{http}\n}}\n")
    try:
        router = load_config(conf).router
        assert router is not None
        route = plan_route(router, Request("a.test", "/"))
        if route.peer is not None:
            route.done()
    except (lbkit.ConfigError, lbkit.RequestError):
        return False
    return True


@pytest.mark.parametrize(("port", "valid"), CASES)
def test_listen_ports_as_nginx(tmp_path: Path, port: str, valid: bool) -> None:
    http = f"server {{ listen 127.0.0.1:{port}; server_name a.test; return 204; }}"
    assert _nginx_accepts(tmp_path, http) is valid
    assert _lbkit_accepts(tmp_path, http) is valid


@pytest.mark.parametrize(("port", "valid"), CASES)
def test_upstream_server_ports_as_nginx(tmp_path: Path, port: str, valid: bool) -> None:
    http = (
        f"upstream u {{ server 127.0.0.1:{port}; }}\n"
        f"server {{ listen 127.0.0.1:{FREE}; server_name a.test; "
        "location / { proxy_pass http://u; } }"
    )
    assert _nginx_accepts(tmp_path, http) is valid
    assert _lbkit_accepts(tmp_path, http) is valid


@pytest.mark.parametrize(("port", "valid"), CASES + PROXY_ONLY)
def test_proxy_pass_ports_as_nginx(tmp_path: Path, port: str, valid: bool) -> None:
    http = (
        f"server {{ listen 127.0.0.1:{FREE}; server_name a.test; "
        f"location / {{ proxy_pass http://127.0.0.1:{port}; }} }}"
    )
    assert _nginx_accepts(tmp_path, http) is valid
    assert _lbkit_accepts(tmp_path, http) is valid


@pytest.mark.parametrize(("port", "valid"), CASES + PROXY_ONLY)
def test_resolver_ports_as_nginx(tmp_path: Path, port: str, valid: bool) -> None:
    http = (
        f"resolver 127.0.0.1:{port};\n"
        f"server {{ listen 127.0.0.1:{FREE}; server_name a.test; return 204; }}"
    )
    assert _nginx_accepts(tmp_path, http) is valid
    assert _lbkit_accepts(tmp_path, http) is valid


def test_the_port_is_the_number_nginx_reads(tmp_path: Path) -> None:
    http = (
        f"upstream u {{ server 127.0.0.1:000081; }}\n"
        f"server {{ listen 127.0.0.1:000{FREE}; server_name a.test; "
        f"location / {{ proxy_pass http://127.0.0.1:0000082; }} }}"
    )
    assert _nginx_accepts(tmp_path, http)
    conf = tmp_path / "lbkit.conf"
    conf.write_text(f"http {{\n{http}\n}}\n")
    config = load_config(conf)
    router = config.router
    assert router is not None
    assert router.sockets == [f"127.0.0.1:{FREE}"]
    assert config.upstreams["u"].pick().name.endswith(":000081")  # the name as written
    route = plan_route(router, Request("a.test", "/"))
    assert (route.host, route.port) == ("127.0.0.1", 82)
