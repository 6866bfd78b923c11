"""``lbkit predict`` and ``lbkit route``: server block, rule, target, upstream and peer."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lbkit.cli import main
from lbkit.nginx import parse_upstream

NGINX_CONF = r"""
http {
    upstream app {
        hash $arg_user;
        server 10.0.0.1:8080;
        server 10.0.0.2:8080 weight=2;
        server 10.0.0.3:8080;
    }
    upstream sticky {
        hash $cookie_sid consistent;
        server s1:80;
        server s2:80;
    }
    upstream rr {
        server r1:80 weight=2;
        server r2:80;
    }
    upstream by_ip {
        ip_hash;
        server i1:80;
        server i2:80;
    }
    server {
        listen 80 default_server;
        return 444;
    }
    server {
        server_name api.example.com;
        location / { proxy_pass http://app$request_uri; }
    }
    server {
        server_name .shop.example.com;
        location / { proxy_pass http://sticky; }
    }
    server {
        server_name ~^(?<tenant>[a-z]+)\.rr\.test$;
        location / { proxy_pass http://rr/$tenant$uri; }
    }
    server {
        server_name ip.test;
        location / { proxy_pass http://by_ip; }
    }
    server {
        server_name static.test;
        location / { proxy_pass http://files.internal:9000; }
    }
    server {
        server_name api.example.com;
        location / { return 404; }
    }
}
"""


@pytest.fixture
def conf(tmp_path: Path) -> Path:
    path = tmp_path / "nginx.conf"
    path.write_text(NGINX_CONF)
    return path


def predict_json(conf: Path, lines: list[dict[str, object]]) -> list[dict[str, object]]:
    """Run the real command as a user would: JSON lines on stdin, JSON lines out."""
    proc = subprocess.run(
        [sys.executable, "-m", "lbkit", "predict", str(conf), "--json"],
        input="".join(json.dumps(line) + "\n" for line in lines),
        capture_output=True,
        text=True,
        check=True,
    )
    return [json.loads(line) for line in proc.stdout.splitlines()]


def test_predict_json_contract(conf: Path) -> None:
    out = predict_json(
        conf,
        [
            {"host": "api.example.com", "uri": "/v1/items?user=alice&x=1"},
            {"host": "API.example.com:8080", "uri": "/v1/items?USER=bob"},
            {"host": "www.shop.example.com", "headers": {"Cookie": "a=1; sid=xyz"}},
            {"host": "acme.rr.test", "uri": "/a/./b//c?q=1"},
            {"host": "ip.test", "client": "192.0.2.77"},
            {"host": "static.test", "uri": "/logo.png"},
            {"host": "unknown.test"},
            {},
            {"host": "bad host"},
        ],
    )
    assert len(out) == 9
    for item in out:
        assert {"server", "upstream", "peer", "target"} <= set(item)
    alice, bob, shop, rr, ip, static, unknown, no_host, bad = out

    app = parse_upstream(
        "upstream app { hash $arg_user; server 10.0.0.1:8080; "
        "server 10.0.0.2:8080 weight=2; server 10.0.0.3:8080; }"
    )
    assert alice["server"] == 1
    assert alice["rule"] == "exact"
    assert alice["target"] == "http://app/v1/items?user=alice&x=1"
    assert alice["upstream"] == "app"
    assert alice["key"] == "alice"
    assert alice["peer"] == app.pick(key="alice").name
    assert bob["server"] == 1  # Host is case-insensitive, the port is dropped
    assert bob["key"] == "bob"  # $arg_ names are case-insensitive
    assert bob["peer"] == app.pick(key="bob").name

    sticky = parse_upstream(
        "upstream s { hash $cookie_sid consistent; server s1:80; server s2:80; }"
    )
    assert shop["server"] == 2
    assert shop["rule"] == "wildcard"
    assert shop["key"] == "xyz"
    assert shop["peer"] == sticky.pick(key="xyz").name

    assert rr["server"] == 3
    assert rr["rule"] == "regex"
    assert rr["target"] == "http://rr/acme/a/b/c"  # $uri: normalised, without the args
    assert rr["peer"] == "r1:80"  # the first pick of a fresh weighted round robin

    by_ip = parse_upstream("upstream b { ip_hash; server i1:80; server i2:80; }")
    assert ip["peer"] == by_ip.pick(client_addr="192.0.2.77").name

    assert static["target"] == "http://files.internal:9000"
    assert static["upstream"] is None
    assert static["peer"] is None

    assert unknown["rule"] == "default"
    # no Host: nginx looks up the empty name, which a block without server_name has
    assert (no_host["rule"], no_host["name"]) == ("exact", "")
    for default in (unknown, no_host):
        assert default["server"] == 0
        assert default["target"] is None
        assert default["return"] == [444, None]

    assert bad["server"] is None
    assert bad["status"] == 400


def test_stateful_methods_replay_in_order(conf: Path) -> None:
    out = predict_json(conf, [{"host": "x.rr.test"}] * 6)
    rr = parse_upstream("upstream rr { server r1:80 weight=2; server r2:80; }")
    expected = []
    for _ in range(6):
        peer = rr.pick()
        rr.done(peer)
        expected.append(peer.name)
    assert [o["peer"] for o in out] == expected
    assert expected == ["r1:80", "r2:80", "r1:80"] * 2


def test_invalid_input_lines_are_reported_and_the_rest_predicted(conf: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "lbkit", "predict", str(conf), "--json"],
        input='not json\n{"host": "ip.test", "bogus": 1}\n{"host": "ip.test"}\n',
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1
    first, second, third = (json.loads(line) for line in proc.stdout.splitlines())
    assert "invalid JSON" in first["error"]
    assert "unknown request field 'bogus'" in second["error"]
    assert third["upstream"] == "by_ip"


def test_predict_table_from_arguments(conf: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status = main(
        [
            "predict",
            str(conf),
            "api.example.com/x?user=carol",
            "nowhere.test/",
            "--header",
            "X-Test: 1",
        ]
    )
    out = capsys.readouterr().out
    assert status == 0
    header, _rule, first, second = out.splitlines()
    assert header.split() == ["request", "server", "rule", "upstream", "peer", "target"]
    assert first.split()[:5] == [
        "api.example.com/x?user=carol",
        "#1",
        "exact",
        "api.example.com",
        "app",
    ]
    assert first.split()[-1] == "http://app/x?user=carol"
    assert second.split()[:3] == ["nowhere.test/", "#0", "default"]
    assert second.endswith("return 444")


def test_route_shows_block_rule_and_conflicts(
    conf: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(
        [
            "route",
            str(conf),
            "api.example.com",
            "a.shop.example.com",
            "t.rr.test",
            "other.test",
            "-",
        ]
    )
    out, err = capsys.readouterr()
    assert status == 0
    line = NGINX_CONF.splitlines().index("        server_name api.example.com;", 42) + 1
    assert err == (
        'nginx: [warn] conflicting server name "api.example.com" on 0.0.0.0:80, ignored '
        f"(line {line})\n"
    )
    rows = [line.split() for line in out.splitlines()[2:]]
    assert [r[0] for r in rows] == [
        "api.example.com",
        "a.shop.example.com",
        "t.rr.test",
        "other.test",
        "-",
    ]
    assert [r[1] for r in rows] == ["#1", "#2", "#3", "#0", "#0"]
    assert [r[4] for r in rows] == ["exact", "wildcard", "regex", "default", "exact"]


def test_route_json(conf: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["route", str(conf), "--json", "t.rr.test"]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    item = json.loads(line)
    assert item["server"] == 3
    assert item["rule"] == "regex"
    assert item["name"].startswith("~^(?<tenant>")
    assert item["target"] == "http://rr/t/"
    (warning,) = item["warnings"]
    assert warning.startswith('conflicting server name "api.example.com" on 0.0.0.0:80, ignored')


def test_unknown_variable_in_proxy_pass_is_a_located_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conf = tmp_path / "nginx.conf"
    conf.write_text("server {\n  location / { proxy_pass http://$nosuch; }\n}\n")
    assert main(["predict", str(conf), "a.test/"]) == 2
    err = capsys.readouterr().err
    assert "unknown variable $nosuch" in err


def test_predict_follows_listen_ports_and_locations(tmp_path: Path) -> None:
    conf = tmp_path / "nginx.conf"
    conf.write_text(
        r"""
        upstream api { server a1:80; server a2:80; }
        server {
            listen 80;
            server_name example.com;
            location / { proxy_pass http://web; }
            location /api/ { proxy_pass http://api/v1/; }
            location ~ ^/img/(?<file>.+)\.png$ { proxy_pass http://img/$file; }
            location = /health { return 200 ok; }
        }
        server {
            listen 8080;
            server_name example.com;
            location / { proxy_pass http://admin:9000$request_uri; }
        }
        """
    )
    out = predict_json(
        conf,
        [
            {"host": "example.com", "uri": "/api/users"},
            {"host": "example.com", "uri": "/img/logo.png"},
            {"host": "example.com", "uri": "/health"},
            {"host": "example.com", "uri": "/x", "port": 8080},
            {"host": "example.com", "uri": "/x", "port": 9999},
        ],
    )
    api, img, health, admin, nowhere = out
    assert (api["server"], api["location"], api["target"]) == (0, "/api/", "http://api/v1/")
    assert (api["upstream"], api["peer"]) == ("api", "a1:80")
    assert img["target"] == "http://img/logo"  # the location's named capture
    assert health["return"] == [200, "ok"]
    assert health["target"] is None
    assert (admin["server"], admin["target"]) == (1, "http://admin:9000/x")
    assert nowhere["server"] is None
    assert nowhere["status"] == 400
    assert "9999" in nowhere["error"]


def test_a_whole_config_follows_includes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "sites").mkdir()
    (tmp_path / "sites" / "a.conf").write_text(
        "server {\n    listen 80;\n    server_name a.test;\n"
        "    location / { proxy_pass http://pool; }\n    gzip on;\n}\n"
    )
    (tmp_path / "nginx.conf").write_text(
        "events {}\nhttp {\n    upstream pool { server p1:80; server p2:80; }\n"
        "    include sites/*.conf;\n}\n"
    )
    status = main(["predict", str(tmp_path / "nginx.conf"), "a.test/", "a.test/"])
    out, err = capsys.readouterr()
    assert status == 0
    rows = [line.split() for line in out.splitlines()[2:]]
    assert [(r[1], r[4]) for r in rows] == [("#0", "p1:80"), ("#0", "p2:80")]
    # a directive lbkit does not model is named with its place, not silently dropped
    assert f'lbkit: note: {tmp_path / "sites" / "a.conf"}:5:5: "gzip"' in err


def test_a_whole_config_on_stdin_follows_includes_from_the_working_directory(
    tmp_path: Path,
) -> None:
    """``lbkit predict -``: includes of a config read from standard input are relative to
    the working directory; an error in the piped text is named ``<stdin>``."""
    (tmp_path / "sites").mkdir()
    (tmp_path / "sites" / "a.conf").write_text(
        "server {\n    listen 80;\n    server_name a.test;\n"
        "    location / { proxy_pass http://pool; }\n}\n"
    )
    text = (
        "http {\n    upstream pool { server p1:80; server p2:80; }\n    include sites/*.conf;\n}\n"
    )

    def run(config: str, *args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "lbkit", "predict", "-", *args]
        return subprocess.run(
            command, input=config, cwd=tmp_path, capture_output=True, text=True, check=False
        )

    done = run(text, "a.test/", "a.test/", "a.test/")
    assert done.returncode == 0, done.stderr
    rows = [line.split() for line in done.stdout.splitlines()[2:]]
    assert [(r[1], r[4]) for r in rows] == [("#0", "p1:80"), ("#0", "p2:80"), ("#0", "p1:80")]
    bad = run("http {\n    server {\n        return 99999;\n    }\n}\n", "a.test/")
    assert bad.returncode == 2
    assert bad.stderr.splitlines()[0] == '<stdin>:3:16: error: invalid return code "99999"'


def test_an_error_in_an_included_file_is_shown_there(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "bad.conf").write_text("server {\n    listen 80;\n    return 99999;\n}\n")
    (tmp_path / "nginx.conf").write_text("http {\n    include bad.conf;\n}\n")
    assert main(["route", str(tmp_path / "nginx.conf"), "a.test"]) == 2
    first, source, marker, hint = capsys.readouterr().err.splitlines()
    assert first == f'{tmp_path / "bad.conf"}:3:12: error: invalid return code "99999"'
    assert source == " 3 |     return 99999;"
    assert marker == "   |            ^^^^^"
    assert hint == "hint: expected 0..999"


def test_a_given_key_replaces_the_evaluated_one(
    conf: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    app = parse_upstream(
        "upstream app { hash $arg_user; server 10.0.0.1:8080; "
        "server 10.0.0.2:8080 weight=2; server 10.0.0.3:8080; }"
    )
    keys = [f"k{i}" for i in range(30)]
    out = predict_json(
        conf, [{"host": "api.example.com", "uri": "/?user=x", "key": k} for k in keys]
    )
    assert [o["key"] for o in out] == keys
    assert [o["peer"] for o in out] == [app.pick(key=k).name for k in keys]
    assert main(["predict", str(conf), "api.example.com/?user=x", "--key", "k7"]) == 0
    row = capsys.readouterr().out.splitlines()[2].split()
    assert row[4:6] == ["app", out[7]["peer"]]
    bad = subprocess.run(
        [sys.executable, "-m", "lbkit", "predict", str(conf), "--json"],
        input='{"host": "api.example.com", "key": 5}\n',
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 1
    assert "key must be a string" in bad.stdout
