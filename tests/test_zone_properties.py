"""Properties of ``zone``: one process on a zone behaves exactly as no zone; several real
processes doing random work keep the shared counts equal to what they hold, and a worker
killed with -9 gives its counts back."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import random
import signal
import time
import uuid
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

import lbkit
from lbkit.balancers import Hash, LeastConn, LeastTime, RoundRobin
from lbkit.upstream import Peer, parse_server_line, zone_size_for
from lbkit.upstream._zone import _DATA_AT, _STATE_AT, PEER_RECORD_SIZE, open_zone

ADDRESSES = [f"10.0.0.{i}:80" for i in range(6)]


@st.composite
def server_lines(draw: st.DrawFn, backup_ok: bool) -> list[str]:
    chosen = draw(st.lists(st.sampled_from(ADDRESSES), min_size=1, max_size=6, unique=True))
    lines = []
    for address in chosen:
        params = [
            f"weight={draw(st.integers(1, 3))}",
            f"max_fails={draw(st.integers(0, 2))}",
            f"fail_timeout={draw(st.integers(0, 4))}s",
            f"max_conns={draw(st.integers(0, 2))}",
        ]
        if backup_ok:
            params.append(f"slow_start={draw(st.sampled_from([0, 3]))}s")
            if draw(st.integers(0, 4)) == 0:
                params.append("backup")
        if draw(st.integers(0, 6)) == 0:
            params.append("down")
        lines.append(" ".join([address, *params]))
    if all(" backup" in line for line in lines):
        lines[0] = lines[0].replace(" backup", "")
    return lines


OPS = st.one_of(
    st.tuples(st.just("pick"), st.integers(0, 9)),
    st.tuples(st.just("done"), st.integers(0, 50), st.booleans()),
    st.tuples(st.just("give_back"), st.integers(0, 50)),
    st.tuples(st.just("header"), st.integers(0, 50)),
    st.tuples(st.just("clock"), st.integers(0, 6)),
    st.tuples(st.just("drain"), st.sampled_from(ADDRESSES)),
    st.tuples(st.just("update"), st.integers(0, 3)),
)


def fields(up: lbkit.Upstream) -> list[tuple[object, ...]]:
    return [
        (
            p.name,
            p.index,
            p.server,
            p.weight,
            p.effective_weight,
            p.current_weight,
            p.conns,
            p.fails,
            p.accessed,
            p.checked,
            p.requests,
            p.response_time,
            p.ramp_start,
            p.draining,
            p.down,
            p.times,
            p.is_available(0),
        )
        for p in up.peers
    ]


@settings(max_examples=120, deadline=None)
@given(
    data=st.data(),
    method=st.sampled_from(["rr", "least_conn", "hash", "least_time", "least_time last_byte"]),
)
def test_one_process_on_a_zone_chooses_exactly_as_without(data: st.DataObject, method: str) -> None:
    backup_ok = method != "hash"
    first = data.draw(server_lines(backup_ok))
    updates = [data.draw(server_lines(backup_ok)) for _ in range(4)]
    ops = data.draw(st.lists(OPS, max_size=60))
    now = [0.0]

    def make(zone: str | None) -> lbkit.Upstream:
        chosen = {
            "rr": RoundRobin(),
            "least_conn": LeastConn(),
            "hash": Hash("$k"),
            "least_time": LeastTime("header", inflight=True),
            "least_time last_byte": LeastTime("last_byte", inflight=True),
        }[method]
        return lbkit.Upstream(
            [parse_server_line(s) for s in first],
            chosen,
            name="u",
            zone=zone,
            zone_size=64 * 1024,
            clock=lambda: now[0],
        )

    plain, zoned = make(None), make("p" + uuid.uuid4().hex[:16])
    held: list[tuple[Peer, Peer]] = []
    for op in ops:
        kind = op[0]
        if kind == "pick":
            key = f"k{op[1]}" if method == "hash" else None
            results = []
            for up in (plain, zoned):
                try:
                    results.append(up.pick(key=key))
                except lbkit.NoLiveUpstreams:
                    results.append(None)
            a, b = results
            assert (a and a.name) == (b and b.name)
            if a is not None and b is not None:
                held.append((a, b))
        elif kind in ("done", "give_back") and held:
            a, b = held.pop(op[1] % len(held))
            if kind == "done":
                plain.done(a, failed=op[2], elapsed=0.25)
                zoned.done(b, failed=op[2], elapsed=0.25)
            else:
                plain.give_back(a)
                zoned.give_back(b)
        elif kind == "header" and held:
            a, b = held[op[1] % len(held)]
            if a.header_ms is None:
                plain.header(a, 0.125)
                zoned.header(b, 0.125)
        elif kind == "clock":
            now[0] += op[1]
        elif kind == "drain":
            outcomes = []
            for up in (plain, zoned):
                try:
                    up.drain(op[1])
                    outcomes.append("drained")
                except lbkit.UnknownPeerError:
                    outcomes.append("unknown")
            assert outcomes[0] == outcomes[1]
        elif kind == "update":
            plain.update(updates[op[1]])
            zoned.update(updates[op[1]])
        assert fields(plain) == fields(zoned)
    for a, b in held:
        plain.done(a)
        zoned.done(b)
    assert fields(plain) == fields(zoned)
    assert all(p.conns == 0 for p in zoned.peers)


# -- several real processes ------------------------------------------------------------

POOLS = [ADDRESSES[:4], ADDRESSES[2:], ADDRESSES[::2], ADDRESSES]


def zone_conns(name: str) -> int:
    """Every connection the zone counts, on members and on removed peers still in use."""
    zone = open_zone(name)
    q = zone.q
    return sum(
        q[(_DATA_AT + slot * PEER_RECORD_SIZE + _STATE_AT) // 8] for slot in range(zone.capacity)
    )


def worker(zone: str, seed: int, steps: int, out: Any, release: str) -> None:
    """Random picks, dones, failures, drains and membership updates; then hold what it
    holds until ``release`` exists, and give it all back."""
    rng = random.Random(seed)
    up = lbkit.Upstream(
        [parse_server_line(s) for s in ADDRESSES],
        LeastConn(),
        name="backend",
        zone=zone,
        zone_size=zone_size_for(200),  # removed peers stay while connections use them
    )
    held: list[Peer] = []
    for _ in range(steps):
        roll = rng.random()
        if roll < 0.5:
            with contextlib.suppress(lbkit.NoLiveUpstreams):
                held.append(up.pick())
        elif roll < 0.85 and held:
            up.done(held.pop(rng.randrange(len(held))), failed=rng.random() < 0.1)
        elif roll < 0.95:
            up.update(rng.choice(POOLS))
        else:
            up.update(ADDRESSES)
            with contextlib.suppress(lbkit.UnknownPeerError):
                up.drain(rng.choice(ADDRESSES))
    assert all(p.conns >= 0 for p in up.peers)
    out.send((os.getpid(), len(held)))
    while not os.path.exists(release):
        time.sleep(0.02)
    for peer in held:
        up.done(peer)
    out.send((os.getpid(), 0))


def test_processes_doing_random_work_keep_the_counts_and_kill_9_gives_them_back(
    tmp_path: Path,
) -> None:
    name = "m" + uuid.uuid4().hex[:12]
    release = str(tmp_path / "release")
    ctx = multiprocessing.get_context("spawn")
    # A pipe per worker, written synchronously: a worker killed while it held a shared
    # queue's lock would silence the others.
    pipes = [ctx.Pipe(duplex=False) for _ in range(4)]
    procs = [
        ctx.Process(target=worker, args=(name, seed, 300, pipes[seed][1], release), daemon=True)
        for seed in range(4)
    ]
    for p in procs:
        p.start()

    def receive(i: int) -> tuple[int, int]:
        reader = pipes[i][0]
        assert reader.poll(120), f"worker {i} said nothing"
        pid, count = reader.recv()
        return pid, count

    try:
        holding = dict(receive(i) for i in range(4))
        # open only now: the workers made the zone at their size
        assert zone_conns(name) == sum(holding.values())
        victim = procs[0]
        os.kill(victim.pid, signal.SIGKILL)
        victim.join(30)
        watcher = lbkit.Upstream([parse_server_line(ADDRESSES[0])], name="backend", zone=name)
        survivors = sum(n for pid, n in holding.items() if pid != victim.pid)
        deadline = time.monotonic() + 5
        while zone_conns(name) != survivors and time.monotonic() < deadline:
            time.sleep(0.1)
            watcher.peers  # noqa: B018 - takes the lock, which reaps dead processes
        assert zone_conns(name) == survivors
        Path(release).touch()
        for i in range(1, 4):
            receive(i)
        assert zone_conns(name) == 0
        assert all(p.conns == 0 for p in watcher.peers)
    finally:
        Path(release).touch()
        for p in procs:
            p.join(30)
            if p.is_alive():
                p.kill()
