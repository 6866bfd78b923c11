"""The resolver against a real dnsmasq: TTL caching, reloads, NXDOMAIN, stale answers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import lbkit
from lbkit.routing import AsyncResolver, Resolver

from .servers import Dnsmasq, free_port

TTL = 2


@pytest.fixture
def dnsmasq(tmp_path: Path) -> Iterator[Dnsmasq]:
    (tmp_path / "hosts").write_text("10.9.0.1 app.tenants.priv\n10.9.0.2 db.tenants.priv\n")
    server = Dnsmasq(
        tmp_path,
        free_port(),
        ["/test.priv/127.0.0.1", "/wild.priv/10.20.30.40"],
        ttl=TTL,
    )
    try:
        yield server
    finally:
        server.stop()


def test_wildcard_records_and_hosts_file(dnsmasq: Dnsmasq) -> None:
    r = Resolver([f"127.0.0.1:{dnsmasq.port}"], timeout=2.0)
    assert r.resolve("user-01.test.priv") == ["127.0.0.1"]
    assert r.resolve("a.b.wild.priv") == ["10.20.30.40"]
    assert r.resolve("app.tenants.priv") == ["10.9.0.1"]
    assert r.resolve("APP.tenants.priv.") == ["10.9.0.1"]


def test_answers_are_cached_for_their_ttl_then_refreshed(dnsmasq: Dnsmasq) -> None:
    r = Resolver([f"127.0.0.1:{dnsmasq.port}"])
    assert r.resolve("app.tenants.priv") == ["10.9.0.1"]
    entry = r.cached("app.tenants.priv")
    assert entry is not None
    assert entry.expires - entry.fetched == pytest.approx(TTL)
    dnsmasq.write_hosts("10.9.9.9 app.tenants.priv\n")
    assert r.resolve("app.tenants.priv") == ["10.9.0.1"]  # still cached
    time.sleep(TTL + 0.3)
    assert r.resolve("app.tenants.priv") == ["10.9.9.9"]  # the change, after the TTL


def test_valid_overrides_ttl(dnsmasq: Dnsmasq) -> None:
    r = Resolver([f"127.0.0.1:{dnsmasq.port}"], valid=60)
    r.resolve("db.tenants.priv")
    entry = r.cached("db.tenants.priv")
    assert entry is not None
    assert entry.expires - entry.fetched == pytest.approx(60)


def test_unknown_name_is_resolution_error(dnsmasq: Dnsmasq) -> None:
    r = Resolver([f"127.0.0.1:{dnsmasq.port}"])
    with pytest.raises(lbkit.ResolutionError, match="does not exist"):
        r.resolve("nope.tenants.priv")
    with pytest.raises(lbkit.ResolutionError, match="invalid name"):
        r.resolve("bad name with spaces")


def test_stale_answer_while_server_is_down_then_error(dnsmasq: Dnsmasq) -> None:
    now = [1000.0]
    r = Resolver([f"127.0.0.1:{dnsmasq.port}"], timeout=0.5, stale_for=10.0, clock=lambda: now[0])
    assert r.resolve("app.tenants.priv") == ["10.9.0.1"]
    dnsmasq.pause()
    try:
        now[0] += TTL + 1  # expired: the server is asked and does not answer
        started = time.monotonic()
        assert r.resolve("app.tenants.priv") == ["10.9.0.1"]
        assert time.monotonic() - started < 2.0  # bounded by the timeout
        now[0] += 10  # past stale_for
        with pytest.raises(lbkit.ResolutionError, match="failed"):
            r.resolve("app.tenants.priv")
    finally:
        dnsmasq.resume()
    assert r.resolve("app.tenants.priv") == ["10.9.0.1"]


def test_cache_is_bounded(dnsmasq: Dnsmasq) -> None:
    r = Resolver([f"127.0.0.1:{dnsmasq.port}"], max_entries=3)
    for i in range(6):
        r.resolve(f"n{i}.test.priv")
    assert r.cached("n0.test.priv") is None
    assert r.cached("n5.test.priv") is not None


def test_async_resolver(dnsmasq: Dnsmasq) -> None:
    async def main() -> list[list[str]]:
        r = AsyncResolver([f"127.0.0.1:{dnsmasq.port}"])
        got = await asyncio.gather(r.resolve("x.test.priv"), r.resolve("app.tenants.priv"))
        with pytest.raises(lbkit.ResolutionError):
            await r.resolve("missing.tenants.priv")
        return list(got)

    assert asyncio.run(main()) == [["127.0.0.1"], ["10.9.0.1"]]
