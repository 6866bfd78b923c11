"""Fixtures for the discovery tests: a real ZooKeeper and a real dnsmasq."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conformance.servers import free_port

from .zookeeper_server import ZooKeeper


@pytest.fixture
def zookeeper(tmp_path: Path) -> Iterator[ZooKeeper]:
    server = ZooKeeper(tmp_path / "zk", free_port())
    try:
        yield server
    finally:
        server.stop()
