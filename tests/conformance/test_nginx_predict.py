"""``lbkit predict`` against a real nginx: the same nginx.conf, the same requests in the same
order, the same server block and peer (nginx tells which through ``$upstream_addr``)."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

from tests.conformance.http_client import get_with_headers
from tests.conformance.servers import Nginx, free_ports

pytestmark = pytest.mark.nginx


@attrs.frozen
class Front:
    nginx: Nginx
    port: int
    backends: list[str]


@pytest.fixture(scope="module")
def front(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Front]:
    workdir: Path = tmp_path_factory.mktemp("nginx-predict")
    *backend_ports, port = free_ports(6)
    b = [f"127.0.0.1:{p}" for p in backend_ports]
    backends = "".join(
        f'    server {{ listen {name}; location / {{ return 200 "{name}"; }} }}\n' for name in b
    )
    body = (
        backends
        + f"""
    upstream byuser {{
        hash $arg_user consistent;
        server {b[0]};
        server {b[1]} weight=2;
        server {b[2]};
    }}
    upstream rr {{
        server {b[3]} weight=3;
        server {b[4]};
    }}
    upstream bycookie {{
        hash $cookie_sid;
        server {b[0]};
        server {b[3]};
        server {b[4]};
    }}
    server {{
        listen 127.0.0.1:{port} default_server;
        location / {{ return 200 "default"; }}
    }}
    server {{
        listen 127.0.0.1:{port};
        server_name api.test;
        add_header X-Upstream-Addr $upstream_addr always;
        location / {{ proxy_pass http://byuser; }}
        location /static/ {{ proxy_pass http://rr; }}
    }}
    server {{
        listen 127.0.0.1:{port};
        server_name *.rr.test;
        location / {{ proxy_pass http://rr; }}
    }}
    server {{
        listen 127.0.0.1:{port};
        server_name ~^(?<tenant>[a-z]+)\\.c\\.test$;
        location / {{ proxy_pass http://bycookie; }}
    }}
"""
    )
    nginx = Nginx(workdir, body, [*backend_ports, port])
    try:
        yield Front(nginx, port, b)
    finally:
        nginx.stop()


def _send(port: int, host: str, uri: str, headers: dict[str, str]) -> str:
    status, body = get_with_headers(port, uri, [("Host", host), *headers.items()])
    assert status == 200, (status, body)
    return body


def test_predict_matches_nginx_request_by_request(front: Front) -> None:
    rng = random.Random(5)
    requests = []
    for i in range(300):
        kind = rng.randrange(5)
        if kind == 0:
            req = {"host": "api.test", "uri": f"/v1/cart?user=u{rng.randrange(50)}&x={i}"}
        elif kind == 1:
            req = {"host": "API.test", "uri": f"/static/{i}.css?user=u{i}"}
        elif kind == 2:
            req = {"host": f"h{rng.randrange(9)}.rr.test", "uri": "/"}
        elif kind == 3:
            sid = f"s{rng.randrange(40)}"
            req = {"host": "shop.c.test", "uri": "/", "headers": {"Cookie": f"a=1; sid={sid}"}}
        else:
            req = {"host": rng.choice(["other.test", "c.test", "x.y.c.test"]), "uri": "/"}
        requests.append({**req, "port": front.port})

    served = [
        _send(front.port, r["host"], r["uri"], r.get("headers", {}))  # type: ignore[arg-type]
        for r in requests
    ]
    proc = subprocess.run(
        [sys.executable, "-m", "lbkit", "predict", str(front.nginx.conf), "--json"],
        input="".join(json.dumps(r) + "\n" for r in requests),
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    predicted = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(predicted) == len(requests)
    ours = [p["peer"] if p["peer"] is not None else "default" for p in predicted]
    mismatches = [
        (r, theirs, mine)
        for r, theirs, mine in zip(requests, served, ours, strict=True)
        if theirs != mine
    ]
    assert mismatches == []
    assert set(served) == {"default", *front.backends}  # every block and backend was reached
