"""load_config: a whole nginx.conf with includes, map, if, Lua blocks, unknown directives."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lbkit
from lbkit.nginx import load_config, parse_directives

DATA = Path(__file__).parent / "data" / "nginx"


def test_both_seed_configs_load_from_one_nginx_conf() -> None:
    config = load_config(DATA / "nginx.conf")
    assert [p.name for p in config.files] == [
        "nginx.conf",
        "mime.types.conf",
        "10-web.conf",
        "20-tenants.conf",
    ]
    web = config.upstreams["web"]
    assert [s.address for s in web.servers] == ["web-01.test.priv:8081", "web-02.test.priv:8082"]
    assert list(config.routers) == ["0.0.0.0:80"]
    tenant = config.routers["0.0.0.0:80"].match("wordpress_container001_01.test.org")
    assert (tenant.index, tenant.target) == (1, "http://host_01")
    assert tenant.server.resolver == ("127.0.0.1:5353",)
    assert tenant.server.resolver_valid == 30
    assert config.router is not None
    assert config.router.match("a.web.test.priv").upstream is web
    # the http-level resolver is inherited by a server without its own
    assert config.router is not None
    assert config.router.servers[0].resolver_ipv6 is False


def test_unknown_directives_are_kept_with_file_line_column() -> None:
    config = load_config(DATA / "nginx.conf")
    found = {u.name: u for u in config.unknown}
    assert found["if"].args == ("($http_cookie", "~*", "id=([^;]+)(?:;|$)", ")")
    assert found["if"].where.endswith("conf.d/10-web.conf:13:9")
    assert found["access_by_lua_block"].where.endswith("10-web.conf:21:9")
    assert found["types"].where.endswith("mime.types.conf:1:1")
    assert (
        found["log_format"].args[1] == '$remote_addr - "$request" $status "$http_user_agent" \'q\''
    )
    assert {"user", "worker_processes", "pid", "sendfile"} <= set(found)


def test_lua_block_bodies_are_raw_text() -> None:
    (health,) = [
        d
        for d in parse_directives((DATA / "conf.d" / "10-web.conf").read_text())[1].block or ()
        if d.name == "location" and d.args == ("=", "/health")
    ]
    lua = (health.block or ())[0]
    assert lua.name == "access_by_lua_block"
    assert lua.body is not None
    assert 'ngx.say("{deep}")' in lua.body


def test_map_blocks() -> None:
    upgrade = load_config(DATA / "nginx.conf").maps["connection_upgrade"]
    assert (upgrade.lookup(""), upgrade.lookup("websocket"), upgrade.lookup("h2")) == (
        "close",
        "websocket",
        "upgrade",
    )


def test_load_balancing_method_redefined_is_a_warning(tmp_path: Path) -> None:
    (tmp_path / "nginx.conf").write_text(
        "http {\n upstream u {\n  least_conn;\n  hash $uri;\n  server 10.0.0.1;\n }\n}\n"
    )
    config = load_config(tmp_path / "nginx.conf")
    assert config.warnings == [f"load balancing method redefined in {tmp_path}/nginx.conf:4:3"]
    assert config.router is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('http {\n  server { listen 80; return 200 "x }\n', ":2:34"),
        ("http {\n  server {\n    listen 80;\n", ":2:10"),
        ("http { include missing.conf; }", "missing.conf"),
        ("http {\n server { server_name a..b; }\n}", "invalid server name"),
        ("http {\n upstream u { server 10.0.0.1 weight=0; }\n}", "nginx.conf"),
    ],
)
def test_errors_name_the_file_and_position(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "nginx.conf").write_text(text)
    with pytest.raises(lbkit.ConfigError, match=message.replace(".", r"\.")):
        load_config(tmp_path / "nginx.conf")


def test_include_loops_are_bounded(tmp_path: Path) -> None:
    (tmp_path / "nginx.conf").write_text("include nginx.conf;\n")
    with pytest.raises(lbkit.ConfigError, match="nested more than"):
        load_config(tmp_path / "nginx.conf")


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.sampled_from(
            [
                *("http", "server", "{", "}", ";", "include", "x.conf", "*.conf", "map", "$a"),
                *("$b", "upstream", "u", "listen", "80", "if", "(", ")", '"q"', "a_by_lua_block"),
                *("least_time", "header", "last_byte", "inflight"),
                "#",
            ]
        ),
        max_size=30,
    ).map(" ".join)
)
def test_load_config_raises_only_config_errors(
    tmp_path_factory: pytest.TempPathFactory, text: str
) -> None:
    root = tmp_path_factory.mktemp("fuzz")
    (root / "nginx.conf").write_text(text)
    (root / "x.conf").write_text("server { listen 81; }")
    with contextlib.suppress(lbkit.ConfigError):
        load_config(root / "nginx.conf")


def test_upstreams_resolve_with_the_http_resolver(tmp_path: Path) -> None:
    conf = tmp_path / "nginx.conf"
    conf.write_text(
        "http {\n resolver 127.0.0.1:5353 valid=5s;\n resolver_timeout 3s;\n"
        f" upstream a {{ zone h2lc_a{os.getpid()}; server app.example resolve; }}\n"
        f" upstream b {{ zone h2lc_b{os.getpid()}; resolver 10.0.0.53;"
        " server app.example resolve; }\n"
        "}\n"
    )
    config = load_config(conf)
    assert config.upstreams["a"].resolver == ("127.0.0.1:5353", "valid=5s", "timeout=3s")
    assert config.upstreams["b"].resolver == ("10.0.0.53", "timeout=3s")  # its own wins
    assert config.unknown == []
    conf.write_text(
        f"http {{ upstream a {{ zone h2lc_c{os.getpid()}; server app.example resolve; }} }}"
    )
    with pytest.raises(lbkit.ConfigError, match=r'no resolver defined .* upstream "a"'):
        load_config(conf)
