"""RouteRegistry and HostsFileSource."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

import lbkit
from lbkit.routing import HostsFileSource, RouteRegistry, parse_hosts


def test_set_remove_lookup_with_wildcards() -> None:
    reg = RouteRegistry({"a.example.com": "10.0.0.1", "*.example.com": "10.0.0.9"})
    assert reg.lookup("A.example.com:443") == "10.0.0.1"
    assert reg.lookup("z.example.com") == "10.0.0.9"
    reg.set("z.example.com", "10.0.0.2")
    assert reg.lookup("z.example.com") == "10.0.0.2"
    assert reg.remove("*.example.com")
    assert reg.lookup("y.example.com") is None
    assert not reg.remove("*.example.com")
    with pytest.raises(lbkit.InvalidHostError):
        reg.set("bad/name", "x")


def test_readers_never_see_a_half_updated_table() -> None:
    old = {f"t{i}.example": "old" for i in range(2000)}
    new = {f"t{i}.example": "new" for i in range(2000)}
    reg = RouteRegistry(old)
    stop = threading.Event()
    mixed = []

    def reader() -> None:
        while not stop.is_set():
            seen = {reg.lookup("t0.example"), reg.lookup("t1999.example")}
            snap = set(reg.snapshot().values())
            if len(snap) != 1:
                mixed.append(snap)
            del seen

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for t in threads:
        t.start()
    for _ in range(50):
        reg.replace(new)
        reg.replace(old)
    stop.set()
    for t in threads:
        t.join()
    assert mixed == []


def test_parse_hosts() -> None:
    routes = parse_hosts("# tenants\n10.0.0.1 a.test b.test  # two names\n\n10.0.0.2 a.test\n")
    assert routes == {"a.test": "10.0.0.1", "b.test": "10.0.0.1"}
    with pytest.raises(lbkit.ConfigError, match="line 1"):
        parse_hosts("10.0.0.1\n")


def test_hosts_file_source_picks_up_changes(tmp_path: Path) -> None:
    path = tmp_path / "tenants"
    path.write_text("10.0.0.1 user-01.jira.example\n")
    reg = RouteRegistry()
    errors: list[Exception] = []
    src = HostsFileSource(path, reg, interval=0.05, on_error=errors.append)
    assert src.poll()
    assert not src.poll()
    assert reg.lookup("user-01.jira.example") == "10.0.0.1"
    path.write_text("10.0.0.2 user-01.jira.example\n10.0.0.3 user-02.jira.example\n")
    os.utime(path, ns=(1, 10**18))
    assert src.poll()
    assert reg.lookup("user-02.jira.example") == "10.0.0.3"
    path.write_text("garbage\n")
    os.utime(path, ns=(1, 2 * 10**18))
    assert not src.poll()
    assert errors
    assert reg.lookup("user-02.jira.example") == "10.0.0.3"  # the bad file changed nothing


def test_hosts_file_source_thread(tmp_path: Path) -> None:
    path = tmp_path / "tenants"
    path.write_text("10.0.0.1 a.test\n")
    reg = RouteRegistry()
    src = HostsFileSource(path, reg, interval=0.02)
    src.start()
    try:
        path.write_text("10.0.0.7 a.test\n")
        os.utime(path, ns=(1, 10**18))
        deadline = threading.Event()
        for _ in range(200):
            if reg.lookup("a.test") == "10.0.0.7":
                break
            deadline.wait(0.01)
        assert reg.lookup("a.test") == "10.0.0.7"
    finally:
        src.stop()
