"""ZooKeeperSource against a real ZooKeeper: watches, restart, session expiry."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from kazoo.client import KazooClient

from lbkit.discovery import RegistrySink, ZooKeeperSource
from lbkit.errors import ConfigError, DiscoveryError
from lbkit.routing import RouteRegistry

from .helpers import RecordingSink, wait_until
from .tcp_proxy import TcpProxy
from .zookeeper_server import ZooKeeper

PATH = "/services/app"


@pytest.fixture
def writer(zookeeper: ZooKeeper) -> Iterator[KazooClient]:
    client = KazooClient(hosts=zookeeper.hosts, timeout=5)
    client.start(timeout=15)
    try:
        yield client
    finally:
        client.stop()
        client.close()


def put(client: KazooClient, name: str, data: str) -> None:
    path = f"{PATH}/{name}"
    if client.exists(path):
        client.set(path, data.encode())
    else:
        client.create(path, data.encode(), makepath=True)


def test_children_and_data_are_watched(zookeeper: ZooKeeper, writer: KazooClient) -> None:
    put(writer, "10.0.0.1:80", "weight=2")
    put(writer, "10.0.0.2:80", "")
    sink = RecordingSink()
    with ZooKeeperSource(PATH, [sink], hosts=zookeeper.hosts, timeout=5):
        sink.wait_for({"10.0.0.1:80": "weight=2", "10.0.0.2:80": ""})
        put(writer, "10.0.0.3:80", "backup")  # a child added
        sink.wait_for({"10.0.0.1:80": "weight=2", "10.0.0.2:80": "", "10.0.0.3:80": "backup"})
        put(writer, "10.0.0.2:80", "weight=5")  # a child's data changed
        sink.wait_for(
            {"10.0.0.1:80": "weight=2", "10.0.0.2:80": "weight=5", "10.0.0.3:80": "backup"}
        )
        writer.delete(f"{PATH}/10.0.0.1:80")  # a child removed
        sink.wait_for({"10.0.0.2:80": "weight=5", "10.0.0.3:80": "backup"})
        put(writer, "10.0.0.2:80", "weight=5")  # same data written again: no new view
        time.sleep(0.5)
    assert len(sink.views) == 4
    assert sink.views[0] == {"10.0.0.1:80": "weight=2", "10.0.0.2:80": ""}


def test_missing_node_is_empty_until_created(zookeeper: ZooKeeper, writer: KazooClient) -> None:
    sink = RecordingSink()
    with ZooKeeperSource(PATH, [sink], hosts=zookeeper.hosts, timeout=5):
        sink.wait_for({})
        put(writer, "a.example", "10.1.1.1")
        sink.wait_for({"a.example": "10.1.1.1"})


def test_restart_keeps_last_view_then_applies_change(
    zookeeper: ZooKeeper, writer: KazooClient
) -> None:
    put(writer, "10.0.0.1:80", "")
    sink = RecordingSink()
    errors: list[Exception] = []
    source = ZooKeeperSource(PATH, [sink], hosts=zookeeper.hosts, timeout=8, on_error=errors.append)
    with source:
        sink.wait_for({"10.0.0.1:80": ""})
        zookeeper.stop()
        time.sleep(2.0)  # the client notices the loss; nothing may be published meanwhile
        assert sink.views == [{"10.0.0.1:80": ""}]
        assert source.view == {"10.0.0.1:80": ""}
        zookeeper.start()
        wait_until(lambda: writer.connected, what="the writer to reconnect")
        put(writer, "10.0.0.2:80", "weight=3")
        sink.wait_for({"10.0.0.1:80": "", "10.0.0.2:80": "weight=3"}, timeout=30)
    assert all(isinstance(e, DiscoveryError) for e in errors)


def test_session_expiry_rewatches_on_the_new_session(
    zookeeper: ZooKeeper, writer: KazooClient
) -> None:
    put(writer, "10.0.0.1:80", "")
    sink = RecordingSink()
    source = ZooKeeperSource(PATH, [sink], hosts=zookeeper.hosts, timeout=4)
    states: list[str] = []
    source.client.add_listener(states.append)
    with source:
        sink.wait_for({"10.0.0.1:80": ""})
        old_session = source.client.client_id
        # expire the session the standard way: a second client takes over its id and closes
        thief = KazooClient(hosts=zookeeper.hosts, client_id=old_session, timeout=4)
        thief.start(timeout=15)
        thief.stop()
        thief.close()
        put(writer, "10.0.0.2:80", "")  # changed while the session is gone
        sink.wait_for({"10.0.0.1:80": "", "10.0.0.2:80": ""}, timeout=30)
        wait_until(lambda: source.client.connected and source.client.client_id != old_session)
        assert "LOST" in states
        # the watches were set again on the new session: a later change still arrives
        put(writer, "10.0.0.1:80", "weight=9")
        sink.wait_for({"10.0.0.1:80": "weight=9", "10.0.0.2:80": ""}, timeout=30)


def test_feeds_the_route_registry(zookeeper: ZooKeeper, writer: KazooClient) -> None:
    put(writer, "shop.example", "10.2.0.1")
    registry = RouteRegistry()
    sink = RecordingSink()
    with ZooKeeperSource(PATH, [RegistrySink(registry), sink], hosts=zookeeper.hosts, timeout=5):
        sink.wait_for({"shop.example": "10.2.0.1"})
        assert registry.lookup("SHOP.example:8080") == "10.2.0.1"
        put(writer, "blog.example", "10.2.0.2")
        sink.wait_for({"shop.example": "10.2.0.1", "blog.example": "10.2.0.2"})
        assert registry.lookup("blog.example") == "10.2.0.2"


@pytest.mark.parametrize("path", ["", "services", "/a/", "/a//b", 7])
def test_bad_path_is_refused(path: object) -> None:
    with pytest.raises(ConfigError, match="invalid path"):
        ZooKeeperSource(path, hosts="127.0.0.1:1")  # type: ignore[arg-type]


def test_hosts_or_client_not_both() -> None:
    with pytest.raises(ConfigError, match="not both"):
        ZooKeeperSource(PATH)


@pytest.mark.parametrize("partition_s", [1.0, 6.0], ids=["same-session", "session-expired"])
def test_change_made_while_partitioned_is_applied_once_back(
    zookeeper: ZooKeeper, writer: KazooClient, partition_s: float
) -> None:
    """ZooKeeper stays up; only the source is cut off, shorter or longer than its session."""
    put(writer, "10.0.0.1:80", "")
    proxy = TcpProxy(("127.0.0.1", zookeeper.port))
    sink = RecordingSink()
    states: list[str] = []
    source = ZooKeeperSource(PATH, [sink], hosts=f"127.0.0.1:{proxy.port}", timeout=4)
    source.client.add_listener(states.append)
    try:
        with source:
            sink.wait_for({"10.0.0.1:80": ""})
            session = source.client.client_id
            proxy.cut()
            wait_until(lambda: "SUSPENDED" in states, what="the source to notice the cut")
            put(writer, "10.0.0.2:80", "weight=4")  # made while the source cannot see it
            writer.delete(f"{PATH}/10.0.0.1:80")
            time.sleep(partition_s)
            assert sink.views == [{"10.0.0.1:80": ""}]  # the last good view stays
            assert source.view == {"10.0.0.1:80": ""}
            proxy.restore()
            sink.wait_for({"10.0.0.2:80": "weight=4"}, timeout=30)
            expired = source.client.client_id != session
            assert expired == (partition_s > 4), states
            put(writer, "10.0.0.3:80", "")  # and the watches work on afterwards
            sink.wait_for({"10.0.0.2:80": "weight=4", "10.0.0.3:80": ""}, timeout=30)
    finally:
        proxy.close()
