"""HostsFileSink: atomic, change-only writes; a real dnsmasq answers after a ZooKeeper change."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from kazoo.client import KazooClient

from lbkit.discovery import HostsFileSink, RegistrySink, ZooKeeperSource, render_hosts
from lbkit.errors import ConfigError, DiscoveryError, ResolutionError
from lbkit.routing import Resolver, RouteRegistry, parse_hosts
from tests.conformance.servers import Dnsmasq, free_port

from .helpers import RecordingSink, wait_until
from .zookeeper_server import ZooKeeper


def test_writes_sorted_lines_and_skips_wildcards(tmp_path: Path) -> None:
    sink = HostsFileSink(tmp_path / "hosts")
    sink.apply({"b.example": "10.0.0.2", "A.example": "10.0.0.1", "*.wild.example": "10.0.0.9"})
    text = (tmp_path / "hosts").read_text()
    assert text.splitlines()[1:] == ["10.0.0.1 a.example", "10.0.0.2 b.example"]
    assert parse_hosts(text) == {"a.example": "10.0.0.1", "b.example": "10.0.0.2"}
    assert stat.S_IMODE(os.stat(tmp_path / "hosts").st_mode) == 0o644


def test_only_a_change_rewrites_and_the_write_is_a_rename(tmp_path: Path) -> None:
    path = tmp_path / "hosts"
    sink = HostsFileSink(path, mode=0o600)
    sink.apply({"a.example": "10.0.0.1"})
    first = os.stat(path)
    sink.apply({"a.example": "10.0.0.1"})
    assert sink.writes == 1
    assert os.stat(path).st_mtime_ns == first.st_mtime_ns
    sink.apply({"a.example": "10.0.0.2"})
    assert sink.writes == 2
    assert os.stat(path).st_ino != first.st_ino  # a new file renamed over the old one
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hosts"]  # no temporary left


@pytest.mark.parametrize(
    "view", [{"a.example": "not-an-ip"}, {"bad name": "10.0.0.1"}, {"a.example": "10.0.0.1/8"}]
)
def test_bad_entry_is_refused_before_writing(tmp_path: Path, view: dict[str, str]) -> None:
    path = tmp_path / "hosts"
    sink = HostsFileSink(path)
    sink.apply({"ok.example": "10.0.0.1"})
    before = path.read_text()
    with pytest.raises(ConfigError):
        sink.apply(view)
    assert path.read_text() == before


def test_failed_reload_is_retried_on_the_next_view(tmp_path: Path) -> None:
    pid_file = tmp_path / "dnsmasq.pid"
    sink = HostsFileSink(tmp_path / "hosts", pid_file=pid_file)
    with pytest.raises(DiscoveryError, match="pid"):
        sink.apply({"a.example": "10.0.0.1"})
    assert sink.writes == 1
    assert sink.reloads == 0
    pid_file.write_text(f"{os.getpid()}\n")  # our own pid: SIGHUP is ignored below
    import signal

    old = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        sink.apply({"a.example": "10.0.0.1"})  # same view: no write, but the reload is due
    finally:
        signal.signal(signal.SIGHUP, old)
    assert sink.writes == 1
    assert sink.reloads == 1


@pytest.mark.parametrize(
    "kw", [{"pid": 0}, {"pid": True}, {"mode": 0o1000}, {"pid": 5, "pid_file": "x"}]
)
def test_bad_arguments(tmp_path: Path, kw: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        HostsFileSink(tmp_path / "hosts", **kw)  # type: ignore[arg-type]


names = st.from_regex(r"[a-z][a-z0-9-]{0,10}[a-z0-9]\.(example|test)", fullmatch=True)
addresses = st.ip_addresses().map(str)


@given(st.dictionaries(names, addresses, max_size=20))
def test_render_round_trips_through_the_hosts_parser(view: dict[str, str]) -> None:
    import ipaddress

    parsed = parse_hosts(render_hosts(view))
    assert parsed == {k: str(ipaddress.ip_address(v)) for k, v in view.items()}


def test_dnsmasq_answers_a_name_added_in_zookeeper(tmp_path: Path, zookeeper: ZooKeeper) -> None:
    (tmp_path / "dns").mkdir()
    dnsmasq = Dnsmasq(tmp_path / "dns", free_port(), [], ttl=1)
    writer = KazooClient(hosts=zookeeper.hosts, timeout=5)
    writer.start(timeout=15)
    try:
        writer.create("/routes/shop.tenants.priv", b"10.7.0.1", makepath=True)
        registry = RouteRegistry()
        hosts = HostsFileSink(dnsmasq.hosts, pid=dnsmasq.pid)
        seen = RecordingSink()
        resolver = Resolver([f"127.0.0.1:{dnsmasq.port}"], timeout=1.0, valid=0)
        source = ZooKeeperSource(
            "/routes", [RegistrySink(registry), hosts, seen], hosts=zookeeper.hosts, timeout=5
        )
        with source:
            seen.wait_for({"shop.tenants.priv": "10.7.0.1"})
            wait_until(lambda: _answers(resolver, "shop.tenants.priv") == ["10.7.0.1"])
            with pytest.raises(ResolutionError):
                resolver.resolve("blog.tenants.priv")
            writer.create("/routes/blog.tenants.priv", b"10.7.0.2")
            seen.wait_for({"shop.tenants.priv": "10.7.0.1", "blog.tenants.priv": "10.7.0.2"})
            wait_until(lambda: _answers(resolver, "blog.tenants.priv") == ["10.7.0.2"])
            assert registry.lookup("blog.tenants.priv") == "10.7.0.2"
        assert hosts.writes == 2
        assert hosts.reloads == 2
    finally:
        writer.stop()
        writer.close()
        dnsmasq.stop()


def _answers(resolver: Resolver, name: str) -> list[str] | None:
    try:
        return resolver.resolve(name)
    except ResolutionError:
        return None
