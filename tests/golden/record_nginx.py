"""Record what a real, newer nginx chooses, as golden vectors for lbkit (JSON in this folder).

Usage (from the repository root, with an nginx built from source outside the repository):

    .venv/bin/python -m tests.golden.record_nginx /path/to/nginx [--only sticky,resolve]

(groups: least_time, least_time_health, least_time_sticky, sticky, sticky_methods, resolve)

The nginx binary needs the least_time, sticky and zone modules (built by default since 1.31)
and is started in the foreground on 127.0.0.1 with one worker, in front of small Python
backends whose delays and cookies each scenario sets. A scenario is a list of steps; for
every request the recorder keeps which backend answered (the backend's own name, also the
order in which backends saw requests), nginx's ``$upstream_addr``, ``$upstream_status``,
``$upstream_header_time`` and ``$upstream_response_time`` (the very numbers nginx feeds its
least_time averages), and the ``Set-Cookie`` nginx added. The ``resolve`` scenarios also
start dnsmasq and change its records while nginx runs.

Response times are real, so a re-recording can differ by a millisecond here and there; the
delays are chosen in the middle of nginx's 20 ms least_time buckets so the choices do not.
The replay in tests/golden/ feeds the recorded times, not the nominal delays.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.conformance.servers import Dnsmasq, free_port, free_ports
from tests.conformance.servers import Nginx as ConformanceNginx

HERE = Path(__file__).resolve().parent
LOG_FORMAT = (
    "$request_uri|$upstream_addr|$upstream_status|$upstream_header_time|"
    "$upstream_response_time|$msec"
)


class DeadBackend:
    """A backend address where nothing listens: connecting is refused at once."""

    def __init__(self, name: str, host: str, port: int) -> None:
        self.name = name
        self.host = host
        self.port = port

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def close(self) -> None:
        return


class Backend:
    """One backend: answers after ``header_ms``, sends its body after ``body_ms`` more."""

    def __init__(self, name: str, host: str, port: int, arrivals: list[tuple[str, str]]) -> None:
        self.name = name
        self.host = host
        self.port = port
        self.header_ms = 0
        self.body_ms = 0
        self.set_cookie: str | None = None
        #: Announce more body than is sent, then close: the body breaks off.
        self.break_body = False
        self.count = 0
        backend = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                # no Nagle: a header sent alone must not wait for a delayed ACK (40 ms)
                self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def do_GET(self) -> None:
                arrivals.append((backend.name, self.path))
                backend.count += 1
                time.sleep(backend.header_ms / 1000)
                body = f"{backend.name}\n".encode()
                self.send_response(200)
                self.send_header("X-Backend", backend.name)
                promised = len(body) + (100 if backend.break_body else 0)
                self.send_header("Content-Length", str(promised))
                if backend.set_cookie:
                    cookie = backend.set_cookie.replace("{n}", str(backend.count))
                    self.send_header("Set-Cookie", cookie)
                self.end_headers()
                self.wfile.flush()
                time.sleep(backend.body_ms / 1000)
                self.wfile.write(body)
                if backend.break_body:
                    self.close_connection = True

            def log_message(self, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Nginx(ConformanceNginx):
    """The nginx under test: conformance's runner with another binary and an access log."""

    def __init__(self, binary: str, workdir: Path, port: int, http_body: str) -> None:
        self.port = port
        self.access_log = workdir / "logs" / "access.log"
        body = f"    log_format golden '{LOG_FORMAT}';\n{http_body}"
        body = body.replace("@ACCESS_LOG@", str(self.access_log))
        super().__init__(workdir, body, [port], binary=binary)

    def log_lines(self) -> list[str]:
        return self.access_log.read_text().splitlines() if self.access_log.exists() else []


def nginx_version(binary: str) -> str:
    out = subprocess.run([binary, "-v"], capture_output=True, text=True, check=True).stderr
    found = re.search(r"nginx/(\S+)", out)
    return found.group(1) if found else out.strip()


def request(port: int, uri: str, headers: dict[str, str]) -> dict[str, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", uri, headers={"Connection": "close", **headers})
        resp = conn.getresponse()
        try:
            raw = resp.read()
        except http.client.IncompleteRead as exc:  # the backend broke its body off
            raw = exc.partial
        body = raw.decode(errors="replace").strip()
        return {
            "status": resp.status,
            "backend": resp.getheader("X-Backend") or body or None,
            "set_cookie": resp.getheader("Set-Cookie"),
        }
    finally:
        conn.close()


@contextmanager
def setup(
    binary: str, upstream: str, backends: list[dict[str, Any]], extra_http: str = ""
) -> Iterator[tuple[Nginx, dict[str, Backend], list[tuple[str, str]]]]:
    """Start the backends and an nginx proxying ``/`` to ``upstream u { ... }``."""
    arrivals: list[tuple[str, str]] = []
    started: dict[str, Any] = {}
    ports = free_ports(len(backends) + 1)
    nginx_port = ports[-1]
    with tempfile.TemporaryDirectory(prefix="lbkit-golden-") as tmp:
        try:
            for spec, port in zip(backends, ports, strict=False):
                if spec.get("dead"):
                    host = spec.get("host", "127.0.0.1")
                    started[spec["name"]] = DeadBackend(spec["name"], host, port)
                    continue
                b = Backend(
                    spec["name"], spec.get("host", "127.0.0.1"), spec.get("port", port), arrivals
                )
                b.header_ms = spec.get("header_ms", 0)
                b.body_ms = spec.get("body_ms", 0)
                b.set_cookie = spec.get("set_cookie")
                b.break_body = spec.get("break_body", False)
                started[b.name] = b
            text = upstream
            for b in started.values():
                text = text.replace("{" + b.name + "}", b.address)
            http_body = f"""
{extra_http}
    upstream u {{
{text}
    }}
    server {{
        listen 127.0.0.1:{nginx_port};
        access_log @ACCESS_LOG@ golden;
        location / {{
            proxy_pass http://u;
            proxy_next_upstream error timeout;
            proxy_connect_timeout 1s;
        }}
    }}
"""
            nginx = Nginx(binary, Path(tmp) / "nginx", nginx_port, http_body)
            try:
                yield nginx, started, arrivals
            finally:
                nginx.stop()
        finally:
            for b in started.values():
                b.close()


def sid(address: str) -> str:
    """nginx's server id for sticky: the md5 hex of the peer's printable address."""
    return hashlib.md5(address.encode()).hexdigest()


def expand(headers: dict[str, str], backends: dict[str, Backend]) -> dict[str, str]:
    """Replace ``@sid:NAME`` in header values with that backend's sid."""
    out = {}
    for key, value in headers.items():
        for name, b in backends.items():
            value = value.replace(f"@sid:{name}", sid(b.address))
        out[key] = value
    return out


def _send(port: int, n: int, headers: dict[str, str], out: dict[int, dict[str, Any]]) -> None:
    out[n] = request(port, f"/r{n}", headers)


def run_steps(
    nginx: Nginx, backends: dict[str, Backend], steps: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Run a scenario's steps; returns one record per request, in the order sent."""
    records: list[dict[str, Any]] = []
    n = 0
    for step in steps:
        kind = step["do"]
        if kind == "sleep":
            time.sleep(step["seconds"])
            records.append({"sleep": step["seconds"]})
        elif kind == "set":
            b = backends[step["backend"]]
            b.header_ms = step.get("header_ms", b.header_ms)
            b.body_ms = step.get("body_ms", b.body_ms)
            records.append({"set": step})
        elif kind == "requests":
            for _ in range(step.get("count", 1)):
                n += 1
                headers = expand(step.get("headers", {}), backends)
                rec = request(nginx.port, f"/r{n}{step.get('uri', '')}", headers)
                records.append({"n": n, "headers": headers, **rec})
        elif kind == "concurrent":
            # send ``count`` requests ``spacing`` seconds apart without waiting for answers
            threads = []
            results: dict[int, dict[str, Any]] = {}
            for _ in range(step["count"]):
                n += 1

                headers = expand(step.get("headers", {}), backends)
                t = threading.Thread(target=_send, args=(nginx.port, n, headers, results))
                t.start()
                threads.append(t)
                time.sleep(step.get("spacing", 0.05))
            for t in threads:
                t.join(60)
            for k in sorted(results):
                records.append({"n": k, "headers": step.get("headers", {}), **results[k]})
        else:
            raise ValueError(f"unknown step {kind!r}")
    time.sleep(0.3)  # let nginx write the last access-log lines
    by_uri = {}
    for line in nginx.log_lines():
        uri, addr, status, header_time, response_time, msec = line.split("|")
        by_uri[uri.split("?")[0]] = {
            "upstream_addr": addr,
            "upstream_status": status,
            "upstream_header_time": header_time,
            "upstream_response_time": response_time,
            "msec": msec,
        }
    addr_to_name = {b.address: name for name, b in backends.items()}
    for rec in records:
        if "n" in rec:
            log = by_uri.get(f"/r{rec['n']}", {})
            rec.update(log)
            rec["upstream_names"] = [
                addr_to_name.get(a.strip(), a.strip())
                for a in log.get("upstream_addr", "").split(",")
                if a.strip()
            ]
    return records


def scenario(
    binary: str,
    name: str,
    upstream: str,
    backends: list[dict[str, Any]],
    steps: list[dict[str, Any]],
    note: str,
    extra_http: str = "",
) -> dict[str, Any]:
    print(f"  {name}", file=sys.stderr)
    with setup(binary, upstream, backends, extra_http) as (nginx, started, arrivals):
        records = run_steps(nginx, started, steps)
        order = [backend for backend, _ in arrivals]
    return {
        "name": name,
        "note": note,
        "upstream": upstream.strip(),
        "backends": backends,
        "steps": steps,
        "records": records,
        "arrival_order": order,
    }


def least_time_scenarios(binary: str) -> list[dict[str, Any]]:
    three = [
        {"name": "a", "header_ms": 30},
        {"name": "b", "header_ms": 10},
        {"name": "c", "header_ms": 70},
    ]
    out = []
    for mode in ("header", "last_byte", "header inflight", "last_byte inflight"):
        out.append(
            scenario(
                binary,
                f"least_time {mode}: 3 equal servers, header delays 30/10/70 ms",
                f"least_time {mode};\nserver {{a}};\nserver {{b}};\nserver {{c}};",
                three,
                [{"do": "requests", "count": 40}],
                "sequential requests: every peer is tried once (eta 0 ties, SWRR), then the "
                "fastest bucket wins; the others come back as their EWMA stays",
            )
        )
    split = [
        {"name": "a", "header_ms": 5, "body_ms": 70},
        {"name": "b", "header_ms": 50, "body_ms": 0},
    ]
    for mode in ("header", "last_byte"):
        out.append(
            scenario(
                binary,
                f"least_time {mode}: fast header + slow body vs slow header",
                f"least_time {mode};\nserver {{a}};\nserver {{b}};",
                split,
                [{"do": "requests", "count": 20}],
                "header mode prefers a (5 ms to the header), last_byte prefers b",
            )
        )
    out.append(
        scenario(
            binary,
            "least_time header: weights 2:1, times 30/10 ms tie as eta * weight",
            "least_time header;\nserver {a} weight=2;\nserver {b} weight=1;",
            [{"name": "a", "header_ms": 30}, {"name": "b", "header_ms": 10}],
            [{"do": "requests", "count": 24}],
            "eta_a * weight_b == eta_b * weight_a (40 * 1 == 20 * 2): smooth weighted round "
            "robin among the tied peers",
        )
    )
    out.append(
        scenario(
            binary,
            "least_time header: concurrent requests count conns (eta = rt * (1 + conns))",
            "least_time header;\nserver {a};\nserver {b};",
            [{"name": "a", "header_ms": 30}, {"name": "b", "header_ms": 110}],
            [
                {"do": "requests", "count": 4},
                {"do": "set", "backend": "a", "header_ms": 300},
                {"do": "set", "backend": "b", "header_ms": 300},
                {"do": "concurrent", "count": 8, "spacing": 0.02},
            ],
            "after warm-up a's bucket is 40 and b's 120; with a's connections held, "
            "a gets requests while 40 * (1 + conns_a) < 120 * (1 + conns_b)",
        )
    )
    out.append(
        scenario(
            binary,
            "least_time header inflight: a slowed-down peer is left while it is busy",
            "least_time header inflight;\nserver {a};\nserver {b};",
            [{"name": "a", "header_ms": 10}, {"name": "b", "header_ms": 50}],
            [
                {"do": "requests", "count": 6},
                {"do": "set", "backend": "a", "header_ms": 700},
                {"do": "concurrent", "count": 10, "spacing": 0.1},
            ],
            "inflight time (time spent by requests still running) raises a's estimate",
        )
    )
    out.append(
        scenario(
            binary,
            "least_time header: decay once per fail_timeout gives a slow peer a chance",
            "least_time header;\nserver {a} fail_timeout=1s;\nserver {b} fail_timeout=1s;",
            [{"name": "a", "header_ms": 10}, {"name": "b", "header_ms": 70}],
            [
                {"do": "requests", "count": 6},
                {"do": "sleep", "seconds": 4.2},
                {"do": "requests", "count": 6},
            ],
            "rt >>= (now - checked) / (fail_timeout + 1) when now - checked > fail_timeout",
        )
    )
    return out


def least_time_health_scenarios(binary: str) -> list[dict[str, Any]]:
    """least_time with passive health and backups: refused connections, retries, the
    fail_timeout probe, and the backup group choosing by its own estimates."""
    out = []
    out.append(
        scenario(
            binary,
            "least_time header: a refusing peer fails, is skipped for fail_timeout, probed",
            "least_time header;\nserver {a} max_fails=1 fail_timeout=2s;\n"
            "server {dead} max_fails=1 fail_timeout=2s;\nserver {b} max_fails=2;",
            [
                {"name": "a", "header_ms": 30},
                {"name": "dead", "dead": True},
                {"name": "b", "header_ms": 50},
            ],
            [
                {"do": "requests", "count": 6},
                {"do": "sleep", "seconds": 3.2},
                {"do": "requests", "count": 6},
            ],
            "a failed attempt is not averaged; the request goes on to the next estimate; "
            "the failed peer is out until now - checked > fail_timeout, then probed once",
        )
    )
    for mode in ("header", "last_byte inflight"):
        out.append(
            scenario(
                binary,
                f"least_time {mode}: every primary refuses, the backups share by time",
                f"least_time {mode};\nserver {{d1}} max_fails=1 fail_timeout=3s;\n"
                "server {d2} max_fails=1 fail_timeout=3s;\nserver {y} backup;\n"
                "server {z} backup weight=2;",
                [
                    {"name": "d1", "dead": True},
                    {"name": "d2", "dead": True},
                    {"name": "y", "header_ms": 10, "body_ms": 20},
                    {"name": "z", "header_ms": 30},
                ],
                [
                    {"do": "requests", "count": 8},
                    {"do": "concurrent", "count": 6, "spacing": 0.01},
                    {"do": "sleep", "seconds": 4.2},
                    {"do": "requests", "count": 4},
                ],
                "primaries fail (tried, not averaged), then the backup group is chosen by "
                "least_time with its own ties and weights; after fail_timeout the primaries "
                "are probed again",
            )
        )
    out.append(
        scenario(
            binary,
            "least_time header: max_conns and down",
            "least_time header;\nserver {a} max_conns=1;\nserver {b} down;\nserver {c} weight=3;",
            [
                {"name": "a", "header_ms": 10},
                {"name": "b", "header_ms": 10},
                {"name": "c", "header_ms": 90},
            ],
            [
                {"do": "requests", "count": 4},
                {"do": "concurrent", "count": 6, "spacing": 0.005},
            ],
            "a full peer (max_conns) and a down peer are skipped; weights divide the estimate",
        )
    )
    return out


def least_time_sticky_scenarios(binary: str) -> list[dict[str, Any]]:
    """``sticky cookie`` with least_time: a usable sticky peer wins at once (no weight
    update, counted in flight), a drained one too; the hint is looked up in the backups."""
    cookie = "sticky cookie srv_id;"
    return [
        scenario(
            binary,
            "least_time header inflight + sticky: hints win over estimates, drain included",
            f"least_time header inflight;\n{cookie}\nserver {{a}};\nserver {{b}} drain;\n"
            "server {c} weight=2;",
            [
                {"name": "a", "header_ms": 10},
                {"name": "b", "header_ms": 30},
                {"name": "c", "header_ms": 50},
            ],
            [
                {"do": "requests", "count": 4},
                {"do": "requests", "count": 3, "headers": {"Cookie": "srv_id=@sid:c"}},
                {"do": "requests", "count": 2, "headers": {"Cookie": "srv_id=@sid:b"}},
                {"do": "requests", "count": 2, "headers": {"Cookie": "srv_id=unknown"}},
                {"do": "concurrent", "count": 4, "spacing": 0.005},
                {"do": "requests", "count": 3},
            ],
            "the sticky module's method must come after least_time (a method directive "
            "replaces sticky); a hinted peer is taken as is, even the slow or drained one",
        ),
        scenario(
            binary,
            "least_time last_byte + sticky: the hint is looked up in the backup group too",
            f"least_time last_byte;\n{cookie}\nserver {{d1}} max_fails=1 fail_timeout=5s;\n"
            "server {y} backup;\nserver {z} backup;",
            [
                {"name": "d1", "dead": True},
                {"name": "y", "header_ms": 10},
                {"name": "z", "header_ms": 40},
            ],
            [
                {"do": "requests", "count": 4},
                {"do": "requests", "count": 3, "headers": {"Cookie": "srv_id=@sid:z"}},
                {"do": "requests", "count": 2},
            ],
            "the primary refuses; in the backup group a cookie naming z wins over y's better "
            "estimate",
        ),
    ]


def sticky_scenarios(binary: str) -> list[dict[str, Any]]:
    three = [{"name": "a"}, {"name": "b"}, {"name": "c"}]
    out = []
    cookie = "sticky cookie srv_id expires=1h domain=.example.com path=/;"
    out.append(
        scenario(
            binary,
            "sticky cookie: new clients round-robin, cookies keep their server",
            f"{cookie}\nserver {{a}} weight=2;\nserver {{b}};\nserver {{c}};",
            three,
            [
                {"do": "requests", "count": 8},
                # the sids are md5(hex) of "127.0.0.1:PORT": the recorder fills them in
                {"do": "requests", "count": 3, "headers": {"Cookie": "srv_id=@sid:b"}},
                {"do": "requests", "count": 3, "headers": {"Cookie": "srv_id=@sid:c"}},
                {"do": "requests", "count": 2, "headers": {"Cookie": "srv_id=unknown"}},
                {"do": "requests", "count": 6},
            ],
            "the sticky peer still takes the smooth round-robin update (unless its "
            "current_weight <= -(total - weight)); ask with a known and an unknown cookie",
        )
    )
    out.append(
        scenario(
            binary,
            "sticky cookie: the cookie's server is down -> another server, new cookie",
            "sticky cookie srv_id;\nserver {a};\nserver {b} down;\nserver {c};",
            three,
            [{"do": "requests", "count": 4, "headers": {"Cookie": "srv_id=@sid:b"}}],
            "a down server is skipped by the sid lookup; round robin chooses",
        )
    )
    out.append(
        scenario(
            binary,
            "drain: no new clients, but cookies bound to the drained server still reach it",
            "sticky cookie srv_id;\nserver {a};\nserver {b} drain;\nserver {c};",
            three,
            [
                {"do": "requests", "count": 6},
                {"do": "requests", "count": 3, "headers": {"Cookie": "srv_id=@sid:b"}},
                {"do": "requests", "count": 4},
            ],
            "drain sets down = NGX_HTTP_UPSTREAM_DRAINING (8): round robin skips it, the "
            "sid lookup ignores that bit",
        )
    )
    out.append(
        scenario(
            binary,
            "sticky route: the route from a cookie or the URI picks the server with route=",
            "sticky route $route_cookie $route_uri;\n"
            "server {a} route=a;\nserver {b} route=b;\nserver {c} route=c;",
            three,
            [
                {"do": "requests", "count": 3},
                {"do": "requests", "count": 2, "headers": {"Cookie": "jsessionid=xyz.b"}},
                {"do": "requests", "count": 2, "headers": {"Cookie": "jsessionid=xyz.c"}},
                {"do": "requests", "count": 2, "headers": {"Cookie": "jsessionid=xyz.zz"}},
                {"do": "requests", "count": 2, "uri": "?route=b"},
            ],
            "the first non-empty variable wins; an unknown route falls back to round robin",
            extra_http=(
                "    map $cookie_jsessionid $route_cookie "
                "{ xyz.a a; xyz.b b; xyz.c c; xyz.zz zz; }\n"
                "    map $arg_route $route_uri { b b; }"
            ),
        )
    )
    learn_backends = [
        {"name": "a", "set_cookie": "examplecookie=a{n}"},
        {"name": "b", "set_cookie": "examplecookie=b{n}"},
        {"name": "c", "set_cookie": "examplecookie=c{n}"},
    ]
    out.append(
        scenario(
            binary,
            "sticky learn: the backend's session cookie is remembered in the zone",
            "sticky learn create=$upstream_cookie_examplecookie lookup=$cookie_examplecookie "
            "zone=client_sessions:1m;\nserver {a};\nserver {b};\nserver {c};",
            learn_backends,
            [
                {"do": "requests", "count": 3},
                {"do": "requests", "count": 3, "headers": {"Cookie": "examplecookie=b1"}},
                {"do": "requests", "count": 2, "headers": {"Cookie": "examplecookie=a1"}},
                {"do": "requests", "count": 2, "headers": {"Cookie": "examplecookie=never"}},
            ],
            "create= is read from the upstream response, lookup= from the request; an "
            "unknown session id falls back to round robin",
        )
    )
    return out


def sticky_method_scenarios(binary: str) -> list[dict[str, Any]]:
    """``sticky cookie`` over the other balancing methods (``NGX_HTTP_UPSTREAM_SID`` in each)."""
    three = [{"name": "a"}, {"name": "b"}, {"name": "c"}]
    cookie = "sticky cookie srv_id;"
    weighted = "server {a} weight=2;\nserver {b};\nserver {c};"
    mixed = [
        {"do": "requests", "count": 8},
        {"do": "requests", "count": 3, "headers": {"Cookie": "srv_id=@sid:b"}},
        {"do": "requests", "count": 3, "headers": {"Cookie": "srv_id=@sid:c"}},
        {"do": "requests", "count": 2, "headers": {"Cookie": "srv_id=unknown"}},
        {"do": "requests", "count": 6},
    ]
    keyed = [
        {"do": "requests", "count": 3, "uri": "?k=alpha"},
        {"do": "requests", "count": 3, "uri": "?k=alpha", "headers": {"Cookie": "srv_id=@sid:b"}},
        {"do": "requests", "count": 3, "uri": "?k=alpha", "headers": {"Cookie": "srv_id=@sid:c"}},
        {"do": "requests", "count": 4},
        {"do": "requests", "count": 3, "headers": {"Cookie": "srv_id=@sid:c"}},
        {"do": "requests", "count": 5},
        {"do": "requests", "count": 2, "uri": "?k=beta", "headers": {"Cookie": "srv_id=nope"}},
    ]
    out = [
        scenario(
            binary,
            "sticky cookie with least_conn: the sticky peer is taken without a weight update",
            f"least_conn;\n{cookie}\n{weighted}",
            three,
            mixed,
            "sequential requests: every peer has 0 connections, so least_conn's tie-break "
            "(smooth round robin among the tied) chooses; a sticky pick changes no weights",
        ),
        scenario(
            binary,
            "sticky cookie with hash: a hint wins over the key; no key -> round robin's rule",
            f"hash $arg_k;\n{cookie}\n{weighted}",
            three,
            keyed,
            "with a key the sticky peer is taken as is; with an empty key nginx hands the "
            "request to round robin, whose sticky rule updates the weights",
        ),
        scenario(
            binary,
            "sticky cookie with hash consistent",
            f"hash $arg_k consistent;\n{cookie}\n{weighted}",
            three,
            keyed,
            "as hash: the sid lookup comes before the ring",
        ),
        scenario(
            binary,
            "sticky cookie with ip_hash",
            f"ip_hash;\n{cookie}\nserver {{a}};\nserver {{b}};\nserver {{c}};",
            three,
            [
                {"do": "requests", "count": 3},
                {"do": "requests", "count": 3, "headers": {"Cookie": "srv_id=@sid:a"}},
                {"do": "requests", "count": 3, "headers": {"Cookie": "srv_id=@sid:c"}},
                {"do": "requests", "count": 2},
            ],
            "every request comes from 127.0.0.1: one hash peer, unless the cookie names one",
        ),
        scenario(
            binary,
            "sticky cookie with random: every hinted request goes to its server",
            f"random two least_conn;\n{cookie}\nserver {{a}};\nserver {{b}};\nserver {{c}};",
            three,
            [
                {"do": "requests", "count": 4, "headers": {"Cookie": "srv_id=@sid:b"}},
                {"do": "requests", "count": 4, "headers": {"Cookie": "srv_id=@sid:c"}},
            ],
            "only the hinted choices are deterministic",
        ),
        scenario(
            binary,
            "sticky before the method: the method directive replaces sticky",
            f"{cookie}\nleast_conn;\n{weighted}",
            three,
            [
                {"do": "requests", "count": 3},
                {"do": "requests", "count": 3, "headers": {"Cookie": "srv_id=@sid:c"}},
            ],
            "sticky wraps the method set before it (us->peer.init_upstream); least_conn "
            "after it sets its own and warns 'load balancing method redefined': no cookie",
        ),
        scenario(
            binary,
            "sticky cookie with one drained server: only sticky clients get through",
            f"{cookie}\nserver {{a}} drain;",
            [{"name": "a"}],
            [
                {"do": "requests", "count": 2},
                {"do": "requests", "count": 2, "headers": {"Cookie": "srv_id=@sid:a"}},
            ],
            "round robin's single-peer path refuses a down peer, but the sid lookup ignores "
            "the drain bit",
        ),
    ]
    broken = [
        {"name": "a", "set_cookie": "examplecookie=a{n}", "break_body": True},
        {"name": "b", "set_cookie": "examplecookie=b{n}"},
        {"name": "c", "set_cookie": "examplecookie=c{n}"},
    ]
    for flag in ("", " header"):
        out.append(
            scenario(
                binary,
                f"sticky learn{flag}: a response whose body breaks off is learned",
                "sticky learn create=$upstream_cookie_examplecookie "
                f"lookup=$cookie_examplecookie zone=broken{len(flag)}:1m{flag};\n"
                "server {a};\nserver {b};\nserver {c};",
                broken,
                [
                    {"do": "requests", "count": 1},
                    {"do": "requests", "count": 3, "headers": {"Cookie": "examplecookie=a1"}},
                    {"do": "requests", "count": 2},
                ],
                "a announces more body than it sends: nginx ends the attempt with "
                "ngx_http_upstream_finalize_request, which frees the peer with state 0 "
                "(not failed), so the session a1 is learned with or without header",
            )
        )
    return out


def resolve_scenarios(binary: str) -> list[dict[str, Any]]:
    out = []
    with tempfile.TemporaryDirectory(prefix="lbkit-golden-dns-") as tmp:
        dns_port = free_port()
        (Path(tmp) / "hosts").write_text("127.0.0.2 app.golden.priv\n")
        dnsmasq = Dnsmasq(Path(tmp), dns_port, [], ttl=2)
        try:
            port = free_port()
            backends = [
                {"name": "x2", "host": "127.0.0.2", "port": port},
                {"name": "x3", "host": "127.0.0.3", "port": port},
                {"name": "x4", "host": "127.0.0.4", "port": port},
            ]
            extra = f"    resolver 127.0.0.1:{dns_port} ipv6=off;"
            print("  resolve", file=sys.stderr)
            with setup(
                binary,
                f"zone u 64k;\nserver app.golden.priv:{port} resolve;",
                backends,
                extra,
            ) as (nginx, started, _arrivals):
                steps: list[dict[str, Any]] = [{"do": "requests", "count": 3}]
                records = run_steps(nginx, started, steps)
                changed = time.monotonic()
                dnsmasq.write_hosts("127.0.0.3 app.golden.priv\n127.0.0.4 app.golden.priv\n")
                timeline = []
                seen_new = None
                n = 100
                while time.monotonic() - changed < 8:
                    n += 1
                    rec = request(nginx.port, f"/t{n}", {})
                    at = round(time.monotonic() - changed, 2)
                    timeline.append({"t": at, "backend": rec["backend"]})
                    if seen_new is None and rec["backend"] != "x2":
                        seen_new = at
                    time.sleep(0.25)
            out.append(
                {
                    "name": "server NAME resolve: peers follow the A records",
                    "note": "dnsmasq --local-ttl=2; nginx re-resolves at valid - now + 1 s "
                    "(TTL + 1); the record changed at t=0",
                    "upstream": f"zone u 64k; server app.golden.priv:{port} resolve;",
                    "resolver": "resolver 127.0.0.1:DNS ipv6=off;",
                    "ttl": 2,
                    "before_change": records,
                    "after_change": timeline,
                    "first_new_peer_at_s": seen_new,
                    "backends_after": sorted({r["backend"] for r in timeline[-8:]}),
                }
            )
        finally:
            dnsmasq.stop()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("nginx", help="path of the nginx binary to record")
    parser.add_argument(
        "--only",
        default="least_time,least_time_health,least_time_sticky,sticky,sticky_methods,resolve",
    )
    parser.add_argument("--out", default=str(HERE))
    args = parser.parse_args()
    version = nginx_version(args.nginx)
    out = Path(args.out)
    groups = {
        "least_time": least_time_scenarios,
        "least_time_health": least_time_health_scenarios,
        "least_time_sticky": least_time_sticky_scenarios,
        "sticky": sticky_scenarios,
        "sticky_methods": sticky_method_scenarios,
        "resolve": resolve_scenarios,
    }
    for group in args.only.split(","):
        print(f"recording {group} with nginx {version}", file=sys.stderr)
        data = {
            "nginx_version": version,
            "recorded_with": "tests/golden/record_nginx.py",
            "log_format": LOG_FORMAT,
            "scenarios": groups[group](args.nginx),
        }
        path = out / f"nginx_{group}.json"
        path.write_text(json.dumps(data, indent=1, sort_keys=False) + "\n")
        print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
