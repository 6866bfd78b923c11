"""DnsSource against a real dnsmasq whose records change: nginx's ``server NAME resolve``."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lbkit.discovery import DnsSource, UpstreamSink
from lbkit.discovery.dns import srv_name
from lbkit.errors import ConfigError, DiscoveryError
from lbkit.routing import Resolver
from tests.conformance.servers import Dnsmasq, free_port

from .helpers import RecordingSink, UpdateRecorder

TTL = 1
SRV = "_http._tcp.svc.priv"


def start_dnsmasq(workdir: Path, port: int, hosts: str, srv: tuple[str, ...] = ()) -> Dnsmasq:
    workdir.mkdir(exist_ok=True)
    (workdir / "hosts").write_text(hosts)
    return Dnsmasq(workdir, port, [], ttl=TTL, extra=tuple(f"--srv-host={s}" for s in srv))


@pytest.fixture
def dnsmasq(tmp_path: Path) -> Iterator[Dnsmasq]:
    server = start_dnsmasq(
        tmp_path,
        free_port(),
        "10.9.0.2 app.svc.priv\n10.9.0.1 app.svc.priv\nfd00::5 app.svc.priv\n",
    )
    try:
        yield server
    finally:
        server.stop()


def source(dnsmasq: Dnsmasq, name: str = "app.svc.priv", **kw: object) -> DnsSource:
    return DnsSource(name, nameservers=[f"127.0.0.1:{dnsmasq.port}"], timeout=1.0, **kw)  # type: ignore[arg-type]


def test_a_and_aaaa_records_become_peers_on_the_server_port(dnsmasq: Dnsmasq) -> None:
    sink = RecordingSink()
    src = source(dnsmasq, port=8080, params="max_fails=3")
    src.add_sink(sink)
    assert src.poll() == TTL + 1  # nginx re-resolves at valid - now + 1 s
    assert sink.views == [
        {
            "10.9.0.1:8080": "max_fails=3",
            "10.9.0.2:8080": "max_fails=3",
            "[fd00::5]:8080": "max_fails=3",
        }
    ]


def test_ipv6_off_and_weight(dnsmasq: Dnsmasq) -> None:
    src = source(dnsmasq, ipv6=False, weight=3)
    assert src.view_of(src.lookup()) == {"10.9.0.1:80": "weight=3", "10.9.0.2:80": "weight=3"}


def test_changes_follow_the_records_and_unchanged_answers_are_not_republished(
    dnsmasq: Dnsmasq,
) -> None:
    sink = RecordingSink()
    src = source(dnsmasq, ipv6=False)
    src.add_sink(sink)
    src.poll()
    src.poll()
    assert len(sink.views) == 1
    dnsmasq.write_hosts("10.9.0.1 app.svc.priv\n10.9.0.3 app.svc.priv\n")
    src.poll()  # the answer is still fresh in the resolver's cache: nothing new
    assert len(sink.views) == 1
    time.sleep(TTL)
    src.poll()
    assert sink.views[-1] == {"10.9.0.1:80": "", "10.9.0.3:80": ""}


def test_background_thread_re_resolves_at_the_ttl(dnsmasq: Dnsmasq) -> None:
    sink = RecordingSink()
    recorder = UpdateRecorder()
    with source(dnsmasq, ipv6=False) as src:
        src.add_sink(sink)
        src.add_sink(UpstreamSink(recorder))
        sink.wait_for({"10.9.0.1:80": "", "10.9.0.2:80": ""})
        dnsmasq.write_hosts("10.9.0.7 app.svc.priv\n")
        sink.wait_for({"10.9.0.7:80": ""}, timeout=3 * (TTL + 1))
    assert recorder.calls == [["10.9.0.1:80", "10.9.0.2:80"], ["10.9.0.7:80"]]


def test_nxdomain_removes_every_peer(dnsmasq: Dnsmasq) -> None:
    sink = RecordingSink()
    src = source(dnsmasq)
    src.add_sink(sink)
    src.poll()
    dnsmasq.write_hosts("10.9.0.1 other.svc.priv\n")
    time.sleep(TTL)
    src.poll()
    assert sink.views[-1] == {}


def test_server_failure_keeps_the_last_view_and_retries_after_a_second(dnsmasq: Dnsmasq) -> None:
    sink = RecordingSink()
    errors: list[Exception] = []
    src = source(dnsmasq, ipv6=False, on_error=errors.append)
    src.add_sink(sink)
    src.poll()
    dnsmasq.pause()
    time.sleep(TTL)
    try:
        assert src.poll() == 1.0  # max(resolver_timeout, 1 s)
    finally:
        dnsmasq.resume()
    assert src.view == {"10.9.0.1:80": "", "10.9.0.2:80": ""}
    assert len(sink.views) == 1
    assert len(errors) == 1
    assert isinstance(errors[0], DiscoveryError)
    assert "app.svc.priv" in str(errors[0])


def test_valid_overrides_the_ttl(dnsmasq: Dnsmasq) -> None:
    assert source(dnsmasq, valid=30).poll() == 31


def test_a_shared_resolver_answers_from_its_cache(dnsmasq: Dnsmasq) -> None:
    resolver = Resolver([f"127.0.0.1:{dnsmasq.port}"], valid=60, ipv6=False)
    assert resolver.resolve("app.svc.priv") == ["10.9.0.1", "10.9.0.2"]
    dnsmasq.write_hosts("10.9.0.9 app.svc.priv\n")
    src = DnsSource("app.svc.priv", resolver=resolver)
    src.poll()
    assert src.view == {"10.9.0.1:80": "", "10.9.0.2:80": ""}  # cached for valid=60


def test_srv_weights_ports_and_backup(tmp_path: Path) -> None:
    port = free_port()
    hosts = "10.8.0.1 a.svc.priv\n10.8.0.2 b.svc.priv\n10.8.0.3 c.svc.priv\n"
    srv = (f"{SRV},a.svc.priv,8081,1,5", f"{SRV},b.svc.priv,8082,1,0", f"{SRV},c.svc.priv,8083,2,7")
    server = start_dnsmasq(tmp_path / "d1", port, hosts, srv)
    try:
        sink = RecordingSink()
        src = source(server, "svc.priv", service="http", ipv6=False)
        src.add_sink(sink)
        src.poll()
        # SRV weight 0 reads as 1; priority 2 > lowest 1 makes a backup
        assert sink.views[-1] == {
            "10.8.0.1:8081": "weight=5",
            "10.8.0.2:8082": "",
            "10.8.0.3:8083": "weight=7 backup",
        }
        # a weight on the server line other than 1 wins over the SRV weights
        fixed = source(server, "svc.priv", service="http", ipv6=False, weight=2)
        assert set(fixed.view_of(fixed.lookup()).values()) == {"weight=2", "weight=2 backup"}
    finally:
        server.stop()
    # the records change (dnsmasq restarted with new SRV records on the same port)
    server = start_dnsmasq(tmp_path / "d2", port, hosts, (f"{SRV},c.svc.priv,9000,1,1",))
    try:
        src.poll()
        assert sink.views[-1] == {"10.8.0.3:9000": ""}
    finally:
        server.stop()


def test_srv_names_as_nginx_builds_them() -> None:
    assert srv_name("backend.example.com", "http") == "_http._tcp.backend.example.com"
    assert srv_name("backend.example.com", "_http._tcp") == "_http._tcp.backend.example.com"
    assert srv_name("example.com", "server1.backend") == "server1.backend.example.com"


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"port": 0}, "port"),
        ({"port": 70000}, "port"),
        ({"weight": 0}, "weight"),
        ({"weight": 1001}, "weight"),
        ({"params": "weight=2"}, "params"),
        ({"params": "down;"}, "params"),
        ({"resolver": object(), "valid": 3}, "not both"),
        ({"valid": -1}, "valid"),
        ({"timeout": -1}, "timeout"),
        ({"service": ""}, "service"),
        ({"nameservers": ["127.0.0.1:0"]}, "nameserver"),
    ],
)
def test_bad_arguments_are_refused(kw: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        DnsSource("app.example", **kw)  # type: ignore[arg-type]
