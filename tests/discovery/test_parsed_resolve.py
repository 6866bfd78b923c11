"""``server NAME resolve`` through parse_upstream, kept in step with a real dnsmasq."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import pytest

import lbkit
from lbkit.discovery import ResolvingUpstream
from lbkit.nginx import parse_upstream, render_upstream
from lbkit.routing import Resolver
from tests.conformance.servers import Dnsmasq, free_port

from .helpers import wait_until

_zones = itertools.count(os.getpid() * 100)


def zone() -> str:
    return f"h2resolve{next(_zones)}"  # each upstream its own shared state


def start_dnsmasq(workdir: Path, hosts: str, srv: tuple[str, ...] = (), port: int = 0) -> Dnsmasq:
    workdir.mkdir(exist_ok=True)
    (workdir / "hosts").write_text(hosts)
    extra = tuple(f"--srv-host={s}" for s in srv)
    return Dnsmasq(workdir, port or free_port(), [], ttl=1, extra=extra)


def test_parsed_upstream_follows_dns_and_keeps_the_state_of_peers_that_stay(
    tmp_path: Path,
) -> None:
    dnsmasq = start_dnsmasq(tmp_path, "10.9.3.1 app.svc.priv\n")
    try:
        up = parse_upstream(
            f"upstream app {{ zone {zone()} 64k; resolver 127.0.0.1:{dnsmasq.port} ipv6=off;"
            " server app.svc.priv:8080 weight=2 max_fails=3 resolve; server 10.0.9.9:80 backup; }"
        )
        assert [s.address for s in up.servers] == ["10.0.9.9:80"]  # no peer before DNS
        assert up.pick().name == "10.0.9.9:80"  # only the backup until then, as nginx
        errors: list[Exception] = []
        with ResolvingUpstream(up, on_error=errors.append):
            assert [(s.address, s.weight, s.max_fails) for s in up.servers] == [
                ("10.0.9.9:80", 1, 1),
                ("10.9.3.1:8080", 2, 3),
            ]
            held = up.pick()
            assert held.name == "10.9.3.1:8080"
            state = up.peer_state("10.9.3.1:8080")
            dnsmasq.write_hosts("10.9.3.1 app.svc.priv\n10.9.3.2 app.svc.priv\n")
            wait_until(lambda: len(up.servers) == 3, 10, "the second address")
            assert up.peer_state("10.9.3.1:8080") is state  # same peer, still one conn
            assert state.conns == 1
            dnsmasq.write_hosts("10.9.3.2 app.svc.priv\n")
            wait_until(lambda: "10.9.3.1:8080" not in {s.address for s in up.servers}, 10)
            up.done(held)  # a request running on a removed peer is still reported
            assert {up.pick().name for _ in range(4)} == {"10.9.3.2:8080"}
            # the configuration renders as written, not as resolved
            assert "server app.svc.priv:8080 weight=2 max_fails=3 resolve;" in render_upstream(up)
        assert errors == []
    finally:
        dnsmasq.stop()


def test_service_takes_ports_and_weights_from_srv_records(tmp_path: Path) -> None:
    srv = "_http._tcp.svc.priv"
    hosts = "10.8.1.1 a.svc.priv\n10.8.1.2 b.svc.priv\n"
    dnsmasq = start_dnsmasq(
        tmp_path / "d1", hosts, (f"{srv},a.svc.priv,8081,1,5", f"{srv},b.svc.priv,8082,2,0")
    )
    port = dnsmasq.port
    try:
        up = parse_upstream(
            f"upstream u {{ zone {zone()}; least_conn; resolver 127.0.0.1:{port} ipv6=off;"
            " server svc.priv service=http resolve max_fails=2; }"
        )
        feed = ResolvingUpstream(up)
        feed.poll()
        got = [(s.address, s.weight, s.backup, s.max_fails) for s in up.servers]
        assert got == [("10.8.1.1:8081", 5, False, 2), ("10.8.1.2:8082", 1, True, 2)]
    finally:
        dnsmasq.stop()
    dnsmasq = start_dnsmasq(tmp_path / "d2", hosts, (f"{srv},b.svc.priv,9000,1,3",), port)
    try:
        feed.poll()
        got = [(s.address, s.weight, s.backup) for s in up.servers]
        assert got == [("10.8.1.2:9000", 3, False)]
    finally:
        dnsmasq.stop()


def test_resolve_needs_a_zone_and_a_resolver_as_in_nginx() -> None:
    with pytest.raises(lbkit.ConfigError, match='requires upstream "u" to be in shared memory'):
        parse_upstream("upstream u { server backend.example resolve; }")
    up = parse_upstream(f"upstream u {{ zone {zone()}; server backend.example resolve; }}")
    with pytest.raises(lbkit.ConfigError, match="no resolver defined to resolve names"):
        ResolvingUpstream(up)
    ResolvingUpstream(up, resolver=Resolver(["127.0.0.1:53"]))  # or one passed in
    # an address with resolve is a fixed server; no zone needed (nginx resolves nothing)
    fixed = parse_upstream("upstream u { server 10.0.0.1:80 resolve; }")
    assert [s.address for s in fixed.servers] == ["10.0.0.1:80"]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("server app.example service=http;", 'service upstream "app.example" requires "resolve"'),
        ("server app.example:80 service=http resolve;", "may not have port"),
        ("server 10.0.0.1 service=http resolve;", "requires domain name"),
        ("server app.example service= resolve;", "service is empty"),
    ],
)
def test_service_lines_nginx_refuses(line: str, message: str) -> None:
    with pytest.raises(lbkit.ConfigError, match=message):
        parse_upstream(f"upstream u {{ zone {zone()}; resolver 127.0.0.1; {line} }}")


def test_update_refuses_names_to_resolve() -> None:
    up = parse_upstream(f"upstream u {{ zone {zone()}; server backend.example resolve; }}")
    up.update(["10.0.0.1:80"])
    assert [s.address for s in up.servers] == ["10.0.0.1:80"]
    with pytest.raises(lbkit.ConfigError, match="update"):
        up.update(["other.example resolve"])
    up.update([])  # every name gone from DNS: no peer, as nginx (502 until one comes back)
    with pytest.raises(lbkit.NoLiveUpstreams):
        up.pick()


@pytest.mark.parametrize("param", ["drain", "route=blue"])
def test_route_and_drain_on_a_resolve_server_are_refused_not_misapplied(param: str) -> None:
    with pytest.raises(lbkit.ConfigError, match="not supported by lbkit"):
        parse_upstream(
            f"upstream u {{ zone {zone()}; sticky cookie s; server a.example resolve {param}; }}"
        )


def test_picks_from_16_threads_while_the_answer_changes(tmp_path: Path) -> None:
    import threading

    dnsmasq = start_dnsmasq(tmp_path, "10.9.5.1 app.svc.priv\n")
    try:
        up = parse_upstream(
            f"upstream app {{ zone {zone()}; least_conn; resolver 127.0.0.1:{dnsmasq.port};"
            " server app.svc.priv resolve; server 10.0.9.9:80 backup; }"
        )
        errors: list[BaseException] = []
        seen: set[str] = set()
        stop = threading.Event()

        def worker() -> None:
            try:
                while not stop.is_set():
                    with up.request() as peer:
                        seen.add(peer.name)
            except BaseException as exc:  # any escape fails the test
                errors.append(exc)

        with ResolvingUpstream(up, on_error=errors.append):
            threads = [threading.Thread(target=worker) for _ in range(16)]
            for t in threads:
                t.start()
            for hosts in (
                "10.9.5.1 app.svc.priv\n10.9.5.2 app.svc.priv\n",
                "10.9.5.3 app.svc.priv\n",
            ):
                dnsmasq.write_hosts(hosts)
                last = hosts.split()[-2]
                wait_until(lambda last=last: f"{last}:80" in {s.address for s in up.servers}, 10)
            stop.set()
            for t in threads:
                t.join(30)
        assert errors == []
        assert {"10.9.5.1:80", "10.9.5.3:80"} <= seen
        assert [s.address for s in up.servers] == ["10.0.9.9:80", "10.9.5.3:80"]
        assert all(p.conns == 0 for p in up.peers)
    finally:
        dnsmasq.stop()


def test_parse_servers_gives_upstreams_and_servers_the_http_resolver() -> None:
    from lbkit.nginx import parse_servers

    router = parse_servers(
        "http {\n resolver 127.0.0.1:5353 ipv6=off;\n"
        f" upstream app {{ zone {zone()}; server app.example resolve; }}\n"
        " server { listen 80; server_name a.example; location / { proxy_pass http://app; } }\n"
        "}"
    )
    assert router.upstreams["app"].resolver == ("127.0.0.1:5353", "ipv6=off")
    with pytest.raises(lbkit.ConfigError, match=r'no resolver defined .* upstream "app"'):
        parse_servers(
            f"upstream app {{ zone {zone()}; server app.example resolve; }}\n"
            "server { listen 80; location / { proxy_pass http://app; } }"
        )
