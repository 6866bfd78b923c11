"""``server NAME resolve`` replayed from nginx 1.31.5 (``nginx_resolve.json``) against a real
dnsmasq: the same records, the same re-resolution delay, the same choices after the change.

nginx saw ``app.golden.priv`` at 127.0.0.2, then (records changed at t=0, TTL 2 s) kept
answering from it until its timer, ``valid - now + 1`` = TTL + 1 s after its lookup, fired;
from then on it alternated over 127.0.0.3 and 127.0.0.4 in round robin.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from lbkit.discovery import ResolvingUpstream
from lbkit.nginx import parse_upstream
from tests.conformance.servers import Dnsmasq, free_port

VECTORS = json.loads((Path(__file__).parent / "nginx_resolve.json").read_text())
SCENARIO = VECTORS["scenarios"][0]


def test_lbkit_resolves_and_chooses_as_nginx_did(tmp_path: Path) -> None:
    ttl = SCENARIO["ttl"]
    before = [r["backend"] for r in SCENARIO["before_change"]]
    after = [r["backend"] for r in SCENARIO["after_change"]]
    first_new = SCENARIO["first_new_peer_at_s"]
    (tmp_path / "hosts").write_text("127.0.0.2 app.golden.priv\n")
    dnsmasq = Dnsmasq(tmp_path, free_port(), [], ttl=ttl)
    try:
        # the recorded upstream, with this run's name server and a zone of its own
        port = SCENARIO["upstream"].split("app.golden.priv:")[1].split()[0]
        text = SCENARIO["upstream"].replace("zone u", f"zone h2golden{os.getpid()}")
        text += " " + SCENARIO["resolver"].replace("DNS", str(dnsmasq.port))
        up = parse_upstream(f"upstream u {{ {text} }}")
        feed = ResolvingUpstream(up)
        (source,) = feed.sources
        delay = source.poll()
        name = {f"127.0.0.{n}:{port}": f"x{n}" for n in (2, 3, 4)}

        def choices(count: int) -> list[str]:
            out = []
            for _ in range(count):
                with up.request() as peer:
                    out.append(name[peer.name])
            return out

        assert choices(len(before)) == before
        # nginx looks the name up again TTL + 1 s later; its first answer from a new
        # address came within one request interval (0.25 s) of that
        assert delay == ttl + 1
        assert first_new <= delay + 0.25
        dnsmasq.write_hosts("127.0.0.3 app.golden.priv\n127.0.0.4 app.golden.priv\n")
        changed_at = next(i for i, b in enumerate(after) if b != "x2")
        assert set(after[:changed_at]) == {"x2"}
        assert choices(3) == ["x2"] * 3  # the cached answer holds until the timer
        time.sleep(delay)
        source.poll()  # the timer fires
        assert choices(len(after) - changed_at) == after[changed_at:]
    finally:
        dnsmasq.stop()
