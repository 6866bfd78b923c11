"""ResolvingUpstream: an upstream's `server NAME resolve` lines against a real dnsmasq."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lbkit.discovery import ResolvingUpstream
from lbkit.discovery.resolve import split_host_port
from lbkit.errors import ConfigError
from lbkit.nginx import parse_upstream
from lbkit.routing import Resolver
from tests.conformance.servers import Dnsmasq, free_port

from .helpers import UpdateRecorder, wait_until


def test_two_names_and_a_fixed_backup_follow_dns(tmp_path: Path) -> None:
    (tmp_path / "hosts").write_text("10.9.1.1 a.svc.priv\n10.9.2.1 b.svc.priv\n")
    dnsmasq = Dnsmasq(tmp_path, free_port(), [], ttl=1)
    try:
        up = parse_upstream("upstream app { server 10.255.0.1:80; }")
        resolver = Resolver([f"127.0.0.1:{dnsmasq.port}"], ipv6=False)
        errors: list[Exception] = []
        lines = [
            "a.svc.priv:8080 weight=2 resolve max_fails=3",
            "10.0.9.9:80 backup",
            "b.svc.priv resolve",
            "10.0.9.8:81 resolve",  # an address: a fixed server
        ]
        with ResolvingUpstream(up, lines, resolver=resolver, on_error=errors.append):
            names = [s.address for s in up.servers]
            assert names == ["10.0.9.9:80", "10.0.9.8:81", "10.9.1.1:8080", "10.9.2.1:80"]
            assert up.servers[2].weight == 2
            assert up.servers[2].max_fails == 3
            dnsmasq.write_hosts("10.9.1.1 a.svc.priv\n10.9.1.2 a.svc.priv\n10.9.2.7 b.svc.priv\n")
            wait_until(
                lambda: (
                    [s.address for s in up.servers]
                    == [
                        "10.0.9.9:80",
                        "10.0.9.8:81",
                        "10.9.1.1:8080",
                        "10.9.1.2:8080",
                        "10.9.2.7:80",
                    ]
                ),
                10,
            )
        assert errors == []
        time.sleep(0.1)
    finally:
        dnsmasq.stop()


@pytest.mark.parametrize(
    ("line", "match"),
    [
        ("app.example service=http", 'requires "resolve"'),
        ("app.example:80 service=http resolve", "may not have port"),
        ("10.0.0.1 service=http resolve", "requires domain name"),
        ("app.example weight=x resolve", "weight=x"),
        ("app.example:0 resolve", "port"),
        ("", "server line"),
    ],
)
def test_lines_nginx_refuses(line: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        ResolvingUpstream(UpdateRecorder(), [line], resolver=Resolver(["127.0.0.1:53"]))


def test_split_host_port() -> None:
    assert split_host_port("a.example:8080") == ("a.example", 8080)
    assert split_host_port("a.example") == ("a.example", None)
    assert split_host_port("[fd00::1]:81") == ("fd00::1", 81)
    assert split_host_port("[fd00::1]") == ("fd00::1", None)
    with pytest.raises(ConfigError):
        split_host_port("a.example:99999")
    with pytest.raises(ConfigError, match=r"expected 1\.\.65535"):
        split_host_port("a.example:" + "9" * 5000)  # not Python's int() digit limit
    assert split_host_port("a.example:000080") == ("a.example", 80)


@given(st.lists(st.text(max_size=40), max_size=4))
def test_any_server_lines_raise_only_config_error(lines: list[str]) -> None:
    with contextlib.suppress(ConfigError):
        ResolvingUpstream(UpdateRecorder(), lines, resolver=_RESOLVER)


@given(st.text(max_size=60))
def test_split_host_port_raises_only_config_error(text: str) -> None:
    try:
        _host, port = split_host_port(text)
    except ConfigError:
        return
    assert port is None or 1 <= port <= 65535


_RESOLVER = Resolver(["127.0.0.1:53"])
