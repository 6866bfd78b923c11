"""Discovery sources driving a real Upstream.update(): DNS (dnsmasq), ZooKeeper and a file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from kazoo.client import KazooClient

from lbkit.discovery import DnsSource, FileSource, UpstreamSink, ZooKeeperSource
from lbkit.nginx import parse_upstream
from lbkit.upstream import Upstream
from tests.conformance.servers import Dnsmasq, free_port

from .helpers import wait_until
from .zookeeper_server import ZooKeeper


def addresses(up: Upstream) -> list[str]:
    return [s.address for s in up.servers]


def test_resolve_follows_dnsmasq_and_keeps_the_survivors_state(tmp_path: Path) -> None:
    (tmp_path / "hosts").write_text("10.9.0.1 app.svc.priv\n10.9.0.2 app.svc.priv\n")
    dnsmasq = Dnsmasq(tmp_path, free_port(), [], ttl=1)
    try:
        up = parse_upstream("upstream app { least_conn; server 10.255.0.1:8080; }")
        errors: list[Exception] = []
        source = DnsSource(
            "app.svc.priv",
            [UpstreamSink(up)],
            nameservers=[f"127.0.0.1:{dnsmasq.port}"],
            port=8080,
            params="max_fails=2",
            ipv6=False,
            on_error=errors.append,
        )
        source.poll()
        assert addresses(up) == ["10.9.0.1:8080", "10.9.0.2:8080"]
        held = up.pick()  # a connection stays open on one survivor
        assert held.name == "10.9.0.1:8080"
        dnsmasq.write_hosts("10.9.0.1 app.svc.priv\n10.9.0.3 app.svc.priv\n")
        with source:
            wait_until(lambda: addresses(up) == ["10.9.0.1:8080", "10.9.0.3:8080"], 10)
        assert up.peer_state("10.9.0.1:8080").conns == 1  # kept across the update
        assert {up.pick().name for _ in range(4)} <= {"10.9.0.1:8080", "10.9.0.3:8080"}
        assert up.servers[0].max_fails == 2
        up.done(held)
        assert errors == []
    finally:
        dnsmasq.stop()


def test_zookeeper_children_become_servers(zookeeper: ZooKeeper) -> None:
    writer = KazooClient(hosts=zookeeper.hosts, timeout=5)
    writer.start(timeout=15)
    try:
        writer.create("/svc/app/10.0.0.1:80", b"weight=3", makepath=True)
        up = parse_upstream("upstream app { server 10.255.0.1:80; }")
        with ZooKeeperSource("/svc/app", [UpstreamSink(up)], hosts=zookeeper.hosts, timeout=5):
            wait_until(lambda: addresses(up) == ["10.0.0.1:80"])
            assert up.servers[0].weight == 3
            writer.create("/svc/app/10.0.0.2:80", b"")
            wait_until(lambda: addresses(up) == ["10.0.0.1:80", "10.0.0.2:80"])
            writer.set("/svc/app/10.0.0.1:80", b"weight=5 max_fails=0")
            wait_until(lambda: up.servers[0].weight == 5)
    finally:
        writer.stop()
        writer.close()


def test_a_file_the_upstream_refuses_leaves_it_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "servers"
    path.write_text("10.0.0.1:80\n10.0.0.2:80 weight=2\n")
    up = parse_upstream("upstream app { server 10.255.0.1:80; }")
    errors: list[Exception] = []
    source = FileSource(path, [UpstreamSink(up)], on_error=errors.append)
    source.poll()
    assert addresses(up) == ["10.0.0.1:80", "10.0.0.2:80"]
    (tmp_path / "new").write_text("10.0.0.3:80 weight=0\n")  # nginx refuses weight=0
    os.replace(tmp_path / "new", path)
    source.poll()
    assert addresses(up) == ["10.0.0.1:80", "10.0.0.2:80"]
    assert len(errors) == 1
    assert "weight" in str(errors[0])


@pytest.mark.parametrize("n", [1, 3])
def test_parts_feed_one_upstream(tmp_path: Path, n: int) -> None:
    up = parse_upstream("upstream app { server 10.255.0.1:80; }")
    feed = UpstreamSink(up, static=["10.0.9.9:80 backup"])
    sources = []
    for i in range(n):
        path = tmp_path / f"part{i}"
        path.write_text(f"10.0.{i}.1:80\n")
        sources.append(FileSource(path, [feed.part(f"p{i}")]))
    for s in sources:
        s.poll()
    assert addresses(up) == ["10.0.9.9:80", *(f"10.0.{i}.1:80" for i in range(n))]
