"""lbkit against a real nginx: the same config and input must choose the same backend.

One nginx serves every scenario below from its own ``upstream`` block (so each starts fresh)
behind its own ``location``. Instant backends are nginx ``return 200 NAME`` servers, a dead
port has nothing listening, and hold backends (Python) keep requests open so that connection
counts matter. nginx reports the peers it tried in ``$upstream_addr``.
"""

from __future__ import annotations

import ipaddress
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import attrs
import pytest

import lbkit
from lbkit.nginx import parse_upstream

from .http_client import Reply, get
from .servers import HoldBackend, Nginx, free_ports, hold_backends

pytestmark = pytest.mark.nginx

N_INSTANT = 6


@attrs.define
class World:
    """Everything the scenarios share: nginx, its ports and the backends' names."""

    nginx: Nginx
    front: int
    instant: list[str]
    dead: str
    holds: list[HoldBackend]
    upstreams: dict[str, str]

    def upstream(self, name: str, clock: Callable[[], float] | None = None) -> lbkit.Upstream:
        """The lbkit twin of the nginx upstream ``name``, from the same text."""
        return parse_upstream(self.upstreams[name], clock=clock)

    def request(self, name: str, **kwargs: object) -> Reply:
        """One request through nginx to upstream ``name``."""
        query = kwargs.pop("query", "")
        return get(self.front, f"/{name}{query}", **kwargs)  # type: ignore[arg-type]


def _scenarios(b: list[str], dead: str, h: list[str]) -> dict[str, str]:
    def up(name: str, *lines: str) -> str:
        body = "\n".join(f"    {line}" for line in lines)
        return f"upstream {name} {{\n{body}\n}}\n"

    return {
        "rr_weighted": up(
            "rr_weighted",
            f"server {b[0]} weight=5;",
            f"server {b[1]};",
            f"server {b[2]} weight=3;",
            f"server {b[3]} down;",
            f"server {b[4]} weight=2 max_fails=3 fail_timeout=30s;",
            f"server {b[5]} backup;",
        ),
        "rr_equal": up("rr_equal", *(f"server {x};" for x in b[:4])),
        "least_conn_seq": up(
            "least_conn_seq",
            "least_conn;",
            f"server {b[0]} weight=3;",
            f"server {b[1]};",
            f"server {b[2]} weight=2;",
            f"server {b[3]} down;",
        ),
        "least_conn_hold": up(
            "least_conn_hold",
            "least_conn;",
            f"server {h[0]} weight=2;",
            f"server {b[0]};",
            f"server {h[1]};",
            f"server {b[1]} weight=3;",
        ),
        "least_conn_allhold": up(
            "least_conn_allhold",
            "least_conn;",
            f"server {h[0]} weight=3;",
            f"server {h[1]};",
            f"server {h[2]} weight=2;",
        ),
        "rr_max_conns": up(
            "rr_max_conns",
            f"server {h[0]} weight=3 max_conns=2;",
            f"server {h[1]} max_conns=1;",
            f"server {b[0]};",
            f"server {b[1]} weight=2;",
        ),
        "ip_hash": up(
            "ip_hash",
            "ip_hash;",
            f"server {b[0]};",
            f"server {b[1]} weight=2;",
            f"server {b[2]};",
            f"server {b[3]} down;",
            f"server {b[4]} weight=3;",
        ),
        "ip_hash_bind": up("ip_hash_bind", "ip_hash;", *(f"server {x};" for x in b[:4])),
        "ip_hash_mostly_down": up(
            "ip_hash_mostly_down",
            "ip_hash;",
            f"server {b[0]} weight=40 down;",
            f"server {b[1]};",
            f"server {b[2]};",
        ),
        "hash": up(
            "hash",
            "hash $arg_k;",
            f"server {b[0]} weight=2;",
            f"server {b[1]};",
            f"server {b[2]} down;",
            f"server {b[3]} weight=3;",
            f"server {b[4]};",
        ),
        "hash_mostly_down": up(
            "hash_mostly_down",
            "hash $arg_k;",
            f"server {b[0]} weight=30 down;",
            f"server {b[1]};",
            f"server {b[2]} weight=2;",
        ),
        "chash": up(
            "chash",
            "hash $arg_k consistent;",
            f"server {b[0]} weight=2;",
            f"server {b[1]};",
            f"server {b[2]} down;",
            f"server {b[3]};",
            f"server {b[4]} weight=3;",
        ),
        "chash_mostly_down": up(
            "chash_mostly_down",
            "hash $arg_k consistent;",
            f"server {b[0]} weight=10 down;",
            f"server {b[1]};",
            f"server {b[2]};",
        ),
        "random": up(
            "random",
            "random;",
            f"server {b[0]};",
            f"server {b[1]} weight=2;",
            f"server {b[2]} weight=3;",
            f"server {b[3]} down;",
        ),
        "random_two": up(
            "random_two",
            "random two least_conn;",
            f"server {h[0]};",
            f"server {b[0]};",
            f"server {b[1]};",
        ),
        # Failure scenarios: a dead port refuses connections (proxy_next_upstream error).
        "rr_fail": up(
            "rr_fail",
            f"server {b[0]};",
            f"server {dead} max_fails=2 fail_timeout=1s;",
            f"server {b[1]} weight=2;",
        ),
        "rr_fail_backup": up(
            "rr_fail_backup",
            f"server {dead} max_fails=1 fail_timeout=1s;",
            f"server {b[0]} down;",
            f"server {b[1]} backup;",
            f"server {b[2]} backup weight=2;",
        ),
        "least_conn_fail": up(
            "least_conn_fail",
            "least_conn;",
            f"server {dead} weight=2 max_fails=3 fail_timeout=1s;",
            f"server {b[0]};",
            f"server {b[1]};",
        ),
        "ip_hash_fail": up(
            "ip_hash_fail",
            "ip_hash;",
            f"server {b[0]};",
            f"server {dead} max_fails=1 fail_timeout=1s;",
            f"server {b[1]};",
        ),
        "hash_fail": up(
            "hash_fail",
            "hash $arg_k;",
            f"server {dead} weight=2 max_fails=2 fail_timeout=1s;",
            f"server {b[0]};",
            f"server {b[1]};",
        ),
        "chash_fail": up(
            "chash_fail",
            "hash $arg_k consistent;",
            f"server {b[0]};",
            f"server {dead} max_fails=1 fail_timeout=1s;",
            f"server {b[1]};",
        ),
        "random_fail": up(
            "random_fail",
            "random;",
            f"server {dead} max_fails=1 fail_timeout=30s;",
            f"server {b[0]};",
        ),
        "all_dead": up(
            "all_dead",
            f"server {dead} max_fails=1 fail_timeout=30s;",
            f"server {b[0]} down;",
        ),
        "single_dead": up("single_dead", f"server {dead};"),
    }


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    workdir: Path = tmp_path_factory.mktemp("nginx")
    ports = free_ports(N_INSTANT + 5)
    instant_ports, dead_port, front, hold_ports = (
        ports[:N_INSTANT],
        ports[N_INSTANT],
        ports[N_INSTANT + 1],
        ports[N_INSTANT + 2 :],
    )
    instant = [f"127.0.0.1:{p}" for p in instant_ports]
    dead = f"127.0.0.1:{dead_port}"
    with hold_backends(hold_ports) as holds:
        upstreams = _scenarios(instant, dead, [h.name for h in holds])
        backends = "\n".join(
            f'    server {{ listen {name}; location / {{ return 200 "{name}"; }} }}'
            for name in instant
        )
        locations = "\n".join(
            f"""        location /{name} {{
            set_real_ip_from 127.0.0.0/8;
            real_ip_header X-Real-IP;
            proxy_pass http://{name};
            proxy_connect_timeout 5s;
            add_header X-Upstream-Addr $upstream_addr always;
        }}"""
            for name in upstreams
        )
        body = (
            backends
            + "\n"
            + "".join(upstreams.values())
            + f"    server {{\n        listen 127.0.0.1:{front};\n{locations}\n    }}\n"
        )
        nginx = Nginx(workdir, body, [*instant_ports, front])
        try:
            yield World(nginx, front, instant, dead, holds, upstreams)
        finally:
            nginx.stop()


def _served_by(reply: Reply) -> str:
    assert reply.status == 200, (reply.status, reply.body)
    return reply.body.decode()


def test_fixture_stops_nginx_by_pid(world: World) -> None:
    assert world.nginx.proc.poll() is None
    pid_file = (world.nginx.workdir / "nginx.pid").read_text().strip()
    assert int(pid_file) == world.nginx.pid


@pytest.mark.parametrize("name", ["rr_weighted", "rr_equal", "least_conn_seq"])
def test_first_100_picks_match(world: World, name: str) -> None:
    up = world.upstream(name)
    ours = []
    for _ in range(100):
        peer = up.pick()
        ours.append(peer.name)
        up.done(peer)
    theirs = [_served_by(world.request(name)) for _ in range(100)]
    assert ours == theirs
    assert len(set(theirs)) > 1


def _client_addresses(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        if i % 3 == 2:
            out.append(str(ipaddress.IPv6Address(rng.getrandbits(128))))
        else:
            out.append(str(ipaddress.IPv4Address(rng.getrandbits(32))))
    return out


@pytest.mark.parametrize(("name", "n"), [("ip_hash", 2000), ("ip_hash_mostly_down", 600)])
def test_ip_hash_matches_for_many_clients(world: World, name: str, n: int) -> None:
    up = world.upstream(name)
    mismatches = []
    for addr in _client_addresses(n, seed=len(name)):
        peer = up.pick(client_addr=addr)
        up.done(peer)
        theirs = _served_by(world.request(name, headers={"X-Real-IP": addr}))
        if peer.name != theirs:
            mismatches.append((addr, peer.name, theirs))
    assert mismatches == []


def test_ip_hash_with_bound_client_sockets(world: World) -> None:
    """Real client addresses: the socket is bound to 127.x.y.1 before connecting."""
    up = world.upstream("ip_hash_bind")
    rng = random.Random(7)
    seen = Counter()
    for _ in range(300):
        addr = f"127.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        peer = up.pick(client_addr=addr)
        up.done(peer)
        theirs = _served_by(world.request("ip_hash_bind", source=addr))
        assert (addr, peer.name) == (addr, theirs)
        seen[theirs] += 1
    assert len(seen) == 4


def _keys(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~"
    return ["".join(rng.choices(alphabet, k=rng.randrange(1, 40))) for _ in range(n)]


@pytest.mark.parametrize(
    ("name", "n"),
    [("hash", 3000), ("hash_mostly_down", 800), ("chash", 3000), ("chash_mostly_down", 800)],
)
def test_hash_matches_for_many_keys(world: World, name: str, n: int) -> None:
    up = world.upstream(name)
    mismatches = []
    keys = _keys(n, seed=len(name))
    keys[::97] = [""] * len(keys[::97])  # empty keys fall back to round robin
    for key in keys:
        peer = up.pick(key=key)
        up.done(peer)
        theirs = _served_by(world.request(name, query=f"?k={key}"))
        if peer.name != theirs:
            mismatches.append((key, peer.name, theirs))
    assert mismatches == []


def _wait(cond: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.002)
    return cond()


def _hold_sequence(world: World, name: str, n: int) -> None:
    """Requests one at a time; those landing on a hold backend stay open, shaping conns."""
    up = world.upstream(name)
    holds = {h.name: h for h in world.holds}
    for h in world.holds:
        h.release_all()
    held_peers: list[lbkit.Peer] = []
    threads = []
    ours: list[str] = []
    theirs: list[str] = []
    try:
        for _ in range(n):
            peer = up.pick()
            ours.append(peer.name)
            if peer.name in holds:
                held_peers.append(peer)
            else:
                up.done(peer)
            before = {h.name: h.accepted for h in world.holds}
            result: list[Reply] = []

            def send(result: list[Reply] = result) -> None:
                result.append(world.request(name))

            t = threading.Thread(target=send)
            t.start()
            threads.append(t)
            moved: list[str] = []

            def settled(
                result: list[Reply] = result,
                before: dict[str, int] = before,
                moved: list[str] = moved,
            ) -> bool:
                moved[:] = [h for h, b in holds.items() if b.accepted > before[h]]
                return bool(result) or bool(moved)

            assert _wait(settled), "nginx neither answered nor reached a hold backend"
            if result:
                theirs.append(_served_by(result[0]))
            else:
                assert len(moved) == 1
                theirs.append(moved[0])
    finally:
        for h in world.holds:
            h.release_all()
        for t in threads:
            t.join(10)
        for peer in held_peers:
            up.done(peer)
    assert ours == theirs
    assert all(p.conns == 0 for p in up.peers)


def test_least_conn_with_open_connections(world: World) -> None:
    _hold_sequence(world, "least_conn_hold", 40)


def test_least_conn_weighs_connections(world: World) -> None:
    _hold_sequence(world, "least_conn_allhold", 30)


def test_round_robin_respects_max_conns(world: World) -> None:
    _hold_sequence(world, "rr_max_conns", 40)


def test_random_two_least_conn_avoids_the_busier_peer(world: World) -> None:
    """nginx's draws cannot be reproduced; the rule can: with the hold backend busy,
    neither nginx nor lbkit ever picks it while an idle peer was drawn beside it."""
    hold = world.holds[0]
    hold.release_all()
    base = hold.accepted
    first = threading.Thread(target=lambda: world.request("random_two"))
    # Drive nginx until the hold backend has one open request.
    threads = []
    for _ in range(50):
        t = threading.Thread(target=lambda: world.request("random_two"))
        t.start()
        threads.append(t)
        if _wait(lambda: hold.accepted > base, 0.3):
            break
    assert hold.accepted == base + 1
    served = Counter(_served_by(world.request("random_two")) for _ in range(300))
    assert hold.name not in served
    hold.release_all()
    for t in threads:
        t.join(10)
    del first

    up = world.upstream("random_two")
    busy = up.pick()
    while busy.name != hold.name:
        up.done(busy)
        busy = up.pick()
    ours = Counter()
    for _ in range(300):
        peer = up.pick()
        ours[peer.name] += 1
        up.done(peer)
    assert hold.name not in ours
    assert set(ours) == set(served)


def test_random_shares_follow_weights(world: World) -> None:
    n = 3000
    theirs = Counter(_served_by(world.request("random")) for _ in range(n))
    up = world.upstream("random")
    ours = Counter()
    for _ in range(n):
        peer = up.pick()
        ours[peer.name] += 1
        up.done(peer)
    b = world.instant
    expected = {b[0]: 1 / 6, b[1]: 2 / 6, b[2]: 3 / 6}
    for counts in (theirs, ours):
        assert b[3] not in counts  # down
        for name, share in expected.items():
            sigma = (n * share * (1 - share)) ** 0.5
            assert abs(counts[name] - n * share) < 5 * sigma, (name, counts)


class SyncedClock:
    """lbkit's clock for failure scenarios: the wall-clock second nginx's ngx_time() sees."""

    def __init__(self) -> None:
        self.now = int(time.time())

    def __call__(self) -> float:
        return self.now

    def start_phase(self) -> None:
        """Sleep to just after a second boundary, so a short burst stays in one second."""
        frac = time.time() % 1
        time.sleep((1.03 - frac) % 1 if frac > 0.35 or frac < 0.03 else 0)
        self.now = int(time.time())

    def check_phase(self) -> None:
        """The burst must not have crossed into the next second."""
        assert int(time.time()) == self.now, "phase crossed a second boundary; machine too slow"


def _lbkit_attempts(up: lbkit.Upstream, dead: str, **kw: str) -> tuple[int, list[str]]:
    tried: list[str] = []
    try:
        for peer in up.attempts(**kw):
            tried.append(peer.name)
            up.done(peer, failed=peer.name == dead)
            if peer.name != dead:
                return 200, tried
    except lbkit.TriesExhausted:
        return 502, tried
    except lbkit.NoLiveUpstreams:
        return 502, [*tried, up.name]
    raise AssertionError("attempts() ended without success or error")


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("rr_fail", "none"),
        ("rr_fail_backup", "none"),
        ("least_conn_fail", "none"),
        ("ip_hash_fail", "addr"),
        ("hash_fail", "key"),
        ("chash_fail", "key"),
        ("all_dead", "none"),
        ("single_dead", "none"),
    ],
)
def test_retries_and_passive_health_match(world: World, name: str, kind: str) -> None:
    """Which peers nginx tries for each request, when max_fails takes the dead one out and
    when fail_timeout lets it be tried again: three bursts, the last after fail_timeout."""
    clock = SyncedClock()
    up = world.upstream(name, clock=clock)
    rng = random.Random(11)
    inputs = [
        {"client_addr": f"10.{rng.randrange(256)}.{rng.randrange(256)}.9"}
        if kind == "addr"
        else {"key": "".join(rng.choices("abcdefgh", k=6))}
        if kind == "key"
        else {}
        for _ in range(36)
    ]
    ours: list[tuple[int, list[str]]] = []
    theirs: list[tuple[int, list[str]]] = []
    for burst in (inputs[:12], inputs[12:24], inputs[24:]):
        clock.start_phase()
        for kw in burst:
            ours.append(_lbkit_attempts(up, world.dead, **kw))
            headers = {"X-Real-IP": kw["client_addr"]} if "client_addr" in kw else None
            query = f"?k={kw['key']}" if "key" in kw else ""
            reply = world.request(name, headers=headers, query=query)
            theirs.append((reply.status, reply.upstream_addrs))
        clock.check_phase()
        time.sleep(1.2)
    assert ours == theirs
    if name != "single_dead":
        assert any(world.dead in tried for _, tried in theirs)


def test_random_retries_and_passive_health(world: World) -> None:
    """nginx's random draws cannot be reproduced, so compare the rules: a refused peer is
    retried on the other one, and after max_fails=1 it stays out for fail_timeout=30s."""
    up = world.upstream("random_fail")
    ours = [_lbkit_attempts(up, world.dead) for _ in range(40)]
    replies = [world.request("random_fail") for _ in range(40)]
    theirs = [(r.status, r.upstream_addrs) for r in replies]
    for outcome in (ours, theirs):
        assert all(status == 200 for status, _ in outcome)
        with_dead = [i for i, (_, tried) in enumerate(outcome) if world.dead in tried]
        assert len(with_dead) <= 1
        for _, tried in outcome:
            assert tried[-1] == world.instant[0]
            assert len(tried) == len(set(tried))
