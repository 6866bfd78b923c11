"""``zone``: upstream state shared by processes of the host, crash-safe (kill -9)."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import lbkit
from lbkit.balancers import LeastConn, LeastTime
from lbkit.nginx import parse_upstream
from lbkit.upstream import Zone, ZoneSessions, open_zone
from lbkit.upstream._zone import zone_size_for

SERVERS = ["a:1", "b:1", "c:1"]


@pytest.fixture(autouse=True)
def zone_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LBKIT_ZONE_DIR", str(tmp_path))
    return tmp_path


def fresh_name() -> str:
    return "t" + uuid.uuid4().hex[:12]


def upstream(zone: str | None, method: Any = None, servers: list[str] = SERVERS) -> lbkit.Upstream:
    return lbkit.Upstream(
        [_server(s) for s in servers],
        method,
        name="backend",
        zone=zone,
    )


def _server(text: str) -> lbkit.Server:
    from lbkit.upstream import parse_server_line

    return parse_server_line(text)


def test_two_upstreams_of_one_zone_share_round_robin_and_connections() -> None:
    name = fresh_name()
    one, two = upstream(name), upstream(name)
    picks = [one.pick().name, two.pick().name, one.pick().name, two.pick().name]
    assert picks == ["a:1", "b:1", "c:1", "a:1"]  # one round-robin cycle between them
    lc1, lc2 = upstream(name + "x", LeastConn()), upstream(name + "x", LeastConn())
    alone = upstream(None, LeastConn())
    held = [lc1.pick(), lc2.pick(), lc1.pick()]
    ref = [alone.pick() for _ in range(3)]
    assert [p.name for p in held] == [p.name for p in ref] == SERVERS
    for p in held[::2]:
        lc1.done(p)
    lc2.done(held[1])
    for p in ref:
        alone.done(p)
    # counts are back to 0 in both, and both go on exactly as one upstream would
    got = [lc2.pick().name, lc1.pick().name, lc2.pick().name]
    assert got == [alone.pick().name for _ in range(3)]


def test_failures_and_drain_are_shared() -> None:
    name = fresh_name()
    servers = ["a:1 max_fails=1 fail_timeout=30s", "b:1"]
    one, two = upstream(name, servers=servers), upstream(name, servers=servers)
    peer = one.pick()
    assert peer.name == "a:1"
    one.done(peer, failed=True)
    assert [two.pick().name for _ in range(3)] == ["b:1"] * 3
    one.drain("b:1")
    with pytest.raises(lbkit.NoLiveUpstreams):
        two.pick()


def test_zone_from_nginx_text_and_python_are_the_same_zone() -> None:
    name = fresh_name()
    servers = " ".join(f"server {s};" for s in SERVERS)
    text = f"upstream backend {{ zone {name} 64k; least_conn; {servers} }}"
    parsed = parse_upstream(text)
    built = upstream(name, LeastConn())
    assert parsed.zone == built.zone == name
    first = parsed.pick()
    assert built.pick().name != first.name


def test_zone_bounds_and_names(zone_dir: Path) -> None:
    with pytest.raises(lbkit.ConfigError, match="invalid zone name"):
        Zone("../etc")
    with pytest.raises(lbkit.ConfigError, match=r'zone ".*" is too small: size 100'):
        Zone(fresh_name(), 100)
    with pytest.raises(lbkit.ConfigError, match="invalid zone size"):
        parse_upstream("upstream u { zone z lots; server a:1; }")
    zone = open_zone(fresh_name())
    assert oct(zone.path.stat().st_mode & 0o777) == "0o600"


_NO_ROOM = """
import resource, signal, sys
import lbkit
from lbkit.upstream import Zone
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # (over the limit: EFBIG, not a kill)
resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))
try:
    Zone(sys.argv[1], 1 << 20)
except lbkit.ConfigError as exc:
    print(exc)
"""


def test_a_zone_without_room_is_refused_and_leaves_no_half_zone(zone_dir: Path) -> None:
    """A zone whose memory cannot be had (here: a file size limit under its size, as a
    full /dev/shm) is a ConfigError naming the size and the directory, not a SIGBUS at
    its first write; the file is left empty, so the next process starts it afresh."""
    import subprocess
    import sys

    name = fresh_name()
    out = subprocess.run(
        [sys.executable, "-c", _NO_ROOM, name], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert f'zone "{name}" of 1048576 bytes does not fit in {zone_dir}' in out.stdout
    assert "LBKIT_ZONE_DIR" in out.stdout
    assert (zone_dir / f"lbkit-zone-{name}").stat().st_size == 0
    zone = Zone(name, 1 << 20)  # no limit here: made afresh at its size
    assert zone.size == 1 << 20
    assert zone.path.stat().st_blocks * 512 >= 1 << 20  # its memory taken at once
    zone.close()


def test_zone_size_bounds_the_peers_and_is_checked_before_anything_is_made(
    zone_dir: Path,
) -> None:
    many = [f"10.0.{i // 250}.{i % 250}:80" for i in range(1000)]
    name = fresh_name()
    need = f"{-(-zone_size_for(1000) // 1024)}k"
    too_small = f'zone "{name}" is too small for 1000 peers.*{need}'
    with pytest.raises(lbkit.ConfigError, match=too_small):
        lbkit.Upstream([_server(s) for s in many], name="b", zone=name, zone_size=1 << 20)
    assert not list(zone_dir.glob(f"*{name}*"))  # refused before the file was made
    text = " ".join(f"server {s};" for s in many)
    up = parse_upstream(f"upstream b {{ zone {name} {need}; least_conn; {text} }}")
    held = [up.pick() for _ in range(1500)]
    assert sorted({p.conns for p in up.peers}) == [1, 2]
    for p in held:
        up.done(p)
    # a membership the zone cannot hold is refused as a whole: the upstream is unchanged
    with pytest.raises(lbkit.ConfigError, match="is too small"):
        up.update([*many, "10.9.9.9:80"])
    assert [s.address for s in up.servers] == many
    up.update(many[:10])  # removed peers free their records for new ones
    up.update(many[:10] + [f"10.8.{i // 250}.{i % 250}:80" for i in range(990)])
    assert len(up.peers) == 1000


def test_sessions_in_a_zone() -> None:
    now = [0.0]
    sessions = ZoneSessions(open_zone(fresh_name()), timeout=10, clock=lambda: now[0])
    other = ZoneSessions(open_zone(sessions.zone.name), timeout=10, clock=lambda: now[0])
    sessions.learn("s1", "0123456789abcdef0123456789abcdef")
    assert other.lookup("s1") == "0123456789abcdef0123456789abcdef"
    other.learn("s2", "x", only_known=True)
    assert sessions.lookup("s2") is None
    now[0] = 11.0
    assert sessions.lookup("s1") is None
    assert len(sessions) == 0


def test_sixteen_threads_on_a_zone() -> None:
    up = upstream(fresh_name(), LeastConn())
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(200):
                up.done(up.pick())
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    probe = up.pick()
    assert sum(p.conns for p in up.peers) == 1
    up.done(probe)


def hold(zone: str, picks: int, ready: Any, names: Any, release: Any) -> None:
    """Worker process: take ``picks`` connections with least_conn and hold them."""
    up = lbkit.Upstream([_server(s) for s in SERVERS], LeastConn(), name="backend", zone=zone)
    held = []
    ready.wait()
    for _ in range(picks):
        held.append(up.pick())
    names.put([p.name for p in held])
    # Poll a file rather than wait on an Event: a worker killed inside Event.wait()
    # would leave the Event's condition waiting for its acknowledgement.
    while not os.path.exists(release):
        time.sleep(0.02)
    for p in held:
        up.done(p)


class Release:
    """A file whose creation tells the workers to let go (picklable: a path)."""

    def __init__(self) -> None:
        self.path = os.path.join(os.environ["LBKIT_ZONE_DIR"], "release-" + uuid.uuid4().hex)

    def __fspath__(self) -> str:
        return self.path

    def set(self) -> None:
        Path(self.path).touch()


def spread(zone: str | None, workers: int = 4, picks: int = 2) -> tuple[Counter[str], list[Any]]:
    ctx = multiprocessing.get_context("spawn")
    ready, names = ctx.Event(), ctx.Queue()
    release = Release()
    procs = [
        # without a shared zone, every worker has its own: as if there were none
        ctx.Process(
            target=hold,
            args=(zone or fresh_name() + str(i), picks, ready, names, release),
            daemon=True,
        )
        for i in range(workers)
    ]
    for p in procs:
        p.start()
    ready.set()
    try:
        got = [names.get(timeout=60) for _ in procs]
    except BaseException:
        release.set()
        for p in procs:
            p.kill()
            p.join(10)
        raise
    return Counter(n for g in got for n in g), [procs, release]


def test_four_processes_spread_as_one_and_kill_9_releases_counts() -> None:
    name = fresh_name()
    counts, (procs, release) = spread(name)
    try:
        # one process taking 8 connections with least_conn: 3, 3, 2
        alone = upstream(fresh_name(), LeastConn())
        one = Counter(alone.pick().name for _ in range(8))
        assert sorted(counts.values()) == sorted(one.values()) == [2, 3, 3]
        victim = procs[0]
        os.kill(victim.pid, signal.SIGKILL)
        victim.join(30)
        watcher = upstream(name, LeastConn())
        probe = watcher.pick()
        assert sum(p.conns for p in watcher.peers) == 8 - 2 + 1
        watcher.done(probe)
    finally:
        release.set()
        for p in procs:
            p.join(30)
    watcher = upstream(name, LeastConn())
    probe = watcher.pick()
    assert sum(p.conns for p in watcher.peers) == 1
    watcher.done(probe)


def test_without_a_zone_four_processes_pile_up() -> None:
    counts, (procs, release) = spread(None)
    release.set()
    for p in procs:
        p.join(30)
    assert sorted(counts.values()) == [4, 4]  # every worker chose a then b


def test_a_probe_ended_by_a_process_that_never_saw_a_failure_starts_the_ramp_now() -> None:
    # a process whose peer never failed here ends an attempt after another process's
    # probe: the success clears the zone's failures and starts the slow start at the
    # clock's second (it used to start it at second 0: no ramp at all)
    name = fresh_name()
    now = [100.0]
    servers = [lbkit.Server("a:1", slow_start=10), lbkit.Server("b:1")]
    here, there = (
        lbkit.Upstream(servers, name="ss", zone=name, clock=lambda: now[0]) for _ in range(2)
    )
    held = []
    while (late := there.pick()).name != "a:1":
        held.append(late)
    while (peer := here.pick()).name != "a:1":
        here.done(peer)
    here.done(peer, failed=True)
    now[0] += 11  # fail_timeout (10 s) over: the next pick of a probes it
    while (probe := here.pick()).name != "a:1":
        here.done(probe)
    there.done(late)  # a success after the probe started, from the other process
    assert here.peer_state("a:1").fails == 0
    assert there.peer_state("a:1").ramp_start == 111
    for peer in [*held, probe]:
        (there if peer.owner is there else here).done(peer)


def test_least_time_averages_slow_start_and_response_times_are_shared() -> None:
    name = fresh_name()
    method = LeastTime("last_byte", inflight=True)
    now = [100.0]
    one, two = (
        lbkit.Upstream(
            [_server(s) for s in SERVERS], method, name="backend", zone=name, clock=lambda: now[0]
        )
        for _ in range(2)
    )
    peer = one.pick()
    held = two.pick()  # in flight in the other process: counted in the zone's account
    assert held.name != peer.name
    inflight = two.peer_state(held.name).times
    assert inflight is not None
    assert inflight.inflight_reqs == 1
    now[0] += 0.5
    one.done(peer, elapsed=0.5)
    times = two.peer_state(peer.name).times
    assert times is not None
    assert times.response_time == 500
    assert two.peer_state(peer.name).response_time == 0.5
    assert two.peer_state(peer.name).requests == 1
    two.done(held)
    # slow start: a recovering peer ramps in every process
    servers = ["a:1 max_fails=1 fail_timeout=1s slow_start=10s", "b:1"]
    rr1, rr2 = (
        lbkit.Upstream(
            [_server(s) for s in servers], name="ss", zone=name + "s", clock=lambda: now[0]
        )
        for _ in range(2)
    )
    first = rr1.pick()
    assert first.name == "a:1"
    rr1.done(first, failed=True)
    now[0] += 2  # fail_timeout over: the next pick of a probes it
    probe = rr1.pick()
    while probe.name != "a:1":
        rr1.done(probe)
        probe = rr1.pick()
    now[0] += 1
    rr1.done(probe)  # success after the probe: a ramps up over 10 s
    assert rr2.peer_state("a:1").ramp_start is not None
    rr2.pick()  # applies the ramp in the other process
    assert rr2.peer_state("a:1").ramp_start is not None
