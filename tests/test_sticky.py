"""Sticky sessions (nginx ``sticky cookie|route|learn``, ``drain``): behaviour and parsing."""

from __future__ import annotations

import hashlib
import itertools
import os
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

import lbkit
from lbkit.balancers import LearnedSessions, Sticky, StickyMethod, server_id
from lbkit.nginx import parse_upstream


def sticky_upstream(body: str, clock: float = 100.0) -> tuple[lbkit.Upstream, StickyMethod]:
    up = parse_upstream("upstream u {\n" + body + "\n}", clock=lambda: clock)
    assert isinstance(up.method, StickyMethod)
    return up, up.method


def test_server_id_is_route_or_md5_of_the_address() -> None:
    assert server_id("127.0.0.1:80") == hashlib.md5(b"127.0.0.1:80").hexdigest()
    assert server_id("10.0.0.1:80", "blue") == "blue"


def test_a_client_keeps_its_server_and_falls_over_when_it_fails() -> None:
    up, sticky = sticky_upstream(
        "sticky cookie srv; server a:1; server b:1 max_fails=1 fail_timeout=10s; server c:1;"
    )
    hint = sticky.sticky.sid("b:1")
    for _ in range(5):
        with _Picked(up, hint) as name:
            assert name == "b:1"
    # b fails: this request goes on to another server, later ones too while b is failed
    names = []
    for peer in up.attempts(sticky=hint):
        names.append(peer.name)
        up.done(peer, failed=peer.name == "b:1")
    assert names[0] == "b:1"
    assert len(names) == 2
    assert names[1] != "b:1"
    peer = up.pick(sticky=hint)
    assert peer.name != "b:1"
    cookie = sticky.response(peer)
    assert cookie == f"srv={sticky.sticky.sid(peer.name)}"
    up.done(peer)
    assert all(p.conns == 0 for p in up.peers)


class _Picked:
    def __init__(self, up: lbkit.Upstream, hint: str) -> None:
        self.up, self.hint = up, hint

    def __enter__(self) -> str:
        self.peer = self.up.pick(sticky=self.hint)
        return self.peer.name

    def __exit__(self, *exc: object) -> None:
        self.up.done(self.peer)


def test_drained_server_keeps_only_its_sticky_clients() -> None:
    up, sticky = sticky_upstream("sticky cookie s; server a:1; server b:1; server c:1;")
    up.drain("b:1")
    new_clients = []
    for _ in range(6):
        peer = up.pick()
        new_clients.append(peer.name)
        up.done(peer)
    assert "b:1" not in new_clients
    peer = up.pick(sticky=sticky.sticky.sid("b:1"))
    assert peer.name == "b:1"
    up.done(peer)


def test_down_server_is_not_used_by_its_sticky_clients() -> None:
    up, sticky = sticky_upstream("sticky cookie s; server a:1; server b:1 down; server c:1;")
    for _ in range(4):
        peer = up.pick(sticky=sticky.sticky.sid("b:1"))
        assert peer.name != "b:1"
        up.done(peer)


def test_drain_in_the_server_line() -> None:
    up, _ = sticky_upstream("sticky cookie s; server a:1; server b:1 drain;")
    assert up.peer_state("b:1").draining


def test_full_server_is_skipped_by_the_hint() -> None:
    up, sticky = sticky_upstream("sticky cookie s; server a:1 max_conns=1; server b:1;")
    first = up.pick(sticky=sticky.sticky.sid("a:1"))
    second = up.pick(sticky=sticky.sticky.sid("a:1"))
    assert (first.name, second.name) == ("a:1", "b:1")


def test_sticky_with_least_conn_takes_the_sticky_peer() -> None:
    up, sticky = sticky_upstream("least_conn; sticky cookie s; server a:1; server b:1;")
    held = [up.pick(sticky=sticky.sticky.sid("a:1")) for _ in range(3)]
    assert [p.name for p in held] == ["a:1"] * 3
    assert up.pick().name == "b:1"


def test_cookie_attributes_in_nginx_order() -> None:
    s = Sticky(
        "cookie",
        cookie="id",
        expires=-1,
        domain="ex.com",
        httponly=True,
        secure=True,
        samesite="$weird",
        path="/app",
    )
    assert s.set_cookie("a:1", variables={"$weird": "sideways"}) == (
        f"id={server_id('a:1')}; expires=Thu, 31-Dec-37 23:55:55 GMT; max-age=315360000; "
        "domain=ex.com; httponly; secure; samesite=strict; path=/app"
    )
    timed = Sticky("cookie", cookie="id", expires=3600)
    assert timed.set_cookie("a:1", now=0) == (
        f"id={server_id('a:1')}; expires=Thu, 01-Jan-70 01:00:00 GMT; max-age=3600"
    )


def test_parsed_cookie_directive() -> None:
    _, sticky = sticky_upstream(
        "sticky cookie srv_id expires=1h domain=.example.com httponly samesite=lax secure "
        "path=/; server a:1;"
    )
    assert sticky.sticky == Sticky(
        "cookie",
        cookie="srv_id",
        expires=3600,
        domain=".example.com",
        httponly=True,
        samesite="lax",
        secure=True,
        path="/",
    )


def test_route_directive_and_routes() -> None:
    up, sticky = sticky_upstream("sticky route $a $b; server x:1 route=one; server y:1 route=two;")
    assert sticky.hint(variables={"$a": "", "$b": "two"}) == "two"
    assert up.pick(sticky="two").name == "y:1"
    with pytest.raises(lbkit.ConfigError, match="longer than 32"):
        sticky_upstream(f"sticky route $a; server x:1 route={'r' * 33};")


def test_learn_remembers_created_sessions_and_expires_them() -> None:
    now = [0.0]
    table = LearnedSessions(timeout=10, capacity=2, clock=lambda: now[0])
    table.learn("s1", "sid-a")
    assert table.lookup("s1") == "sid-a"
    now[0] = 9.0
    assert table.lookup("s1") == "sid-a"  # refreshed: lives until 19
    now[0] = 18.0
    assert table.lookup("s1") == "sid-a"
    now[0] = 40.0
    assert table.lookup("s1") is None
    table.learn("s2", "x")
    table.learn("s3", "y")
    table.learn("s4", "z")
    assert len(table) == 2
    assert table.lookup("s2") is None
    table.learn("unknown", "x", only_known=True)
    assert table.lookup("unknown") is None


def test_learn_through_the_method() -> None:
    up, sticky = sticky_upstream(
        "sticky learn create=$upstream_cookie_sid lookup=$cookie_sid zone=z:1m timeout=1h;"
        " server a:1; server b:1;"
    )
    assert sticky.sticky.timeout == 3600
    assert sticky.sticky.zone == "z"
    peer = up.pick()
    sticky.response(peer, {"$upstream_cookie_sid": "S1"})
    up.done(peer)
    for _ in range(3):
        hint = sticky.hint(variables={"$cookie_sid": "S1"})
        again = up.pick(sticky=hint)
        assert again.name == peer.name
        up.done(again)


@pytest.mark.parametrize(
    "directive",
    [
        "sticky cookie;",
        "sticky cookie a expires=soon;",
        "sticky cookie a samesite=maybe;",
        "sticky route;",
        "sticky route plain;",
        "sticky learn lookup=$a zone=z:1m;",
        "sticky learn create=$a lookup=$b zone=z;",
        "sticky bounce x;",
    ],
)
def test_bad_sticky_directives(directive: str) -> None:
    with pytest.raises(lbkit.ConfigError, match=r"sticky|route"):
        sticky_upstream(directive + " server a:1;")


@given(st.lists(st.text(alphabet="abcz$=:;1h ", max_size=12), max_size=5))
def test_sticky_parser_fuzz(words: list[str]) -> None:
    args = " ".join(f'"{w}"' for w in words if '"' not in w)
    try:
        _, sticky = sticky_upstream(f"sticky {args}; server a:1;")
    except lbkit.ConfigError as exc:
        assert "sticky" in str(exc)  # noqa: PT017
    else:
        assert sticky.sticky.mode in ("cookie", "route", "learn")


def test_bad_hint_is_refused_before_anything_changes() -> None:
    up, _ = sticky_upstream("sticky cookie s; server a:1; server b:1;")
    with pytest.raises(lbkit.errors.RequestError):
        up.pick(sticky=b"x")  # type: ignore[arg-type]
    with pytest.raises(lbkit.errors.RequestError):
        up.pick(sticky="x" * 5000)
    assert all(p.conns == 0 for p in up.peers)


def test_sixteen_threads_of_sticky_picks() -> None:
    up, sticky = sticky_upstream("sticky cookie s; server a:1 weight=2; server b:1; server c:1;")
    sids = [sticky.sticky.sid(n) for n in ("a:1", "b:1", "c:1")] + [None]
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            for j in range(300):
                hint = sids[(i + j) % 4]
                peer = up.pick(sticky=hint)
                if hint is not None:
                    assert sticky.sticky.sid(peer.name) == hint
                up.done(peer)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert all(p.conns == 0 for p in up.peers)


def test_samesite_as_nginx_writes_it() -> None:
    literal = Sticky("cookie", cookie="id", samesite="Lax")
    assert literal.set_cookie("a:1") == f"id={server_id('a:1')}; samesite=Lax"  # case kept
    var = Sticky("cookie", cookie="id", samesite="$ss", domain="$host")
    sid = server_id("a:1")
    cases = {
        "None": f"id={sid}; domain=ex.com; samesite=None",  # a valid value, as given
        "lax": f"id={sid}; domain=ex.com; samesite=lax",
        "bogus": f"id={sid}; domain=ex.com; samesite=strict",  # anything else: strict
        "": f"id={sid}; domain=ex.com",  # empty: no attribute
    }
    for value, cookie in cases.items():
        assert var.set_cookie("a:1", variables={"$ss": value, "host": "ex.com"}) == cookie
    assert var.set_cookie("a:1") == f"id={sid}"  # unknown variables are empty
    mixed = Sticky("cookie", cookie="id", samesite="l${x}")
    assert mixed.set_cookie("a:1", variables={"x": "ax"}) == f"id={sid}; samesite=lax"


def test_samesite_variables_are_accepted_by_the_parser() -> None:
    _up, sticky = sticky_upstream("sticky cookie id samesite=pre$v; server a:1;")
    assert sticky.sticky.samesite == "pre$v"
    assert sticky.response(_up.pick(), {"$v": "x"}) == f"id={server_id('a:1')}; samesite=strict"


_zones = itertools.count(os.getpid() * 1000)


def _learn(extra: str = "") -> tuple[lbkit.Upstream, StickyMethod]:
    zone = f"learn{next(_zones)}"  # each test its own table
    return sticky_upstream(
        f"sticky learn create=$upstream_cookie_sid lookup=$cookie_sid zone={zone}:1m {extra};"
        " server a:1; server b:1;"
    )


def test_learn_header_learns_when_the_header_arrives() -> None:
    up, sticky = _learn("header")
    assert sticky.sticky.header
    peer = up.pick()
    assert sticky.response(peer, {"$upstream_cookie_sid": "S1"}) is None
    assert sticky.hint(variables={"$cookie_sid": "S1"}) is None  # not at the end
    sticky.header(peer, {"$upstream_cookie_sid": "S1"})
    up.done(peer, failed=True)  # the body failed later: the session is learned anyway
    assert sticky.hint(variables={"$cookie_sid": "S1"}) == sticky.sticky.sid(peer.name)


def test_learn_without_header_ignores_the_header_event() -> None:
    up, sticky = _learn()
    peer = up.pick()
    sticky.header(peer, {"$upstream_cookie_sid": "S1"})
    assert sticky.hint(variables={"$cookie_sid": "S1"}) is None
    sticky.response(peer, {"$upstream_cookie_sid": "S1"})
    assert sticky.hint(variables={"$cookie_sid": "S1"}) == sticky.sticky.sid(peer.name)


def test_learn_uses_the_created_session_or_else_refreshes_the_lookup_one() -> None:
    up, sticky = _learn()
    a, b = sticky.sticky.sid("a:1"), sticky.sticky.sid("b:1")
    sticky.learn(up.peer_state("a:1"), {"$upstream_cookie_sid": "OLD"})
    # a response that creates NEW while the request asked for OLD: nginx stores NEW only
    sticky.learn(up.peer_state("b:1"), {"$upstream_cookie_sid": "NEW", "$cookie_sid": "OLD"})
    assert sticky.hint(variables={"$cookie_sid": "OLD"}) == a
    assert sticky.hint(variables={"$cookie_sid": "NEW"}) == b
    # no created session: the request's known session moves to the answering server
    sticky.learn(up.peer_state("b:1"), {"$cookie_sid": "OLD"})
    assert sticky.hint(variables={"$cookie_sid": "OLD"}) == b
    sticky.learn(up.peer_state("b:1"), {"$cookie_sid": "NEVER"})  # never created
    assert sticky.hint(variables={"$cookie_sid": "NEVER"}) is None


def test_request_context_manager_takes_a_sticky_hint() -> None:
    up, sticky = sticky_upstream("sticky cookie s; server a:1; server b:1; server c:1;")
    for _ in range(3):
        with up.request(sticky=sticky.sticky.sid("c:1")) as peer:
            assert peer.name == "c:1"
    assert all(p.conns == 0 for p in up.peers)


def test_hint_for_a_backup_server_waits_until_the_primaries_are_out() -> None:
    up, sticky = sticky_upstream(
        "least_conn; sticky cookie s; server a:1 max_fails=1; server b:1 backup; server c:1 backup;"
    )
    hint = sticky.sticky.sid("c:1")
    peer = up.pick(sticky=hint)
    assert peer.name == "a:1"  # the primary is available: the hint is not looked at
    up.done(peer, failed=True)
    peer = up.pick(sticky=hint)
    assert peer.name == "c:1"  # primaries out: nginx looks the hint up in the backups
    up.done(peer)


def test_hash_with_a_key_takes_the_sticky_peer_without_weight_changes() -> None:
    up, sticky = sticky_upstream("hash $k; sticky cookie s; server a:1; server b:1; server c:1;")
    before = [p.current_weight for p in up.peers]
    with up.request(key="some-key", sticky=sticky.sticky.sid("b:1")) as peer:
        assert peer.name == "b:1"
    assert [p.current_weight for p in up.peers] == before
    with up.request(key="", sticky=sticky.sticky.sid("b:1")) as peer:  # empty key: round robin
        assert peer.name == "b:1"
    assert [p.current_weight for p in up.peers] != before


def test_sticky_before_the_method_is_replaced_by_it() -> None:
    up = parse_upstream("upstream u { sticky cookie s; least_conn; server a:1; server b:1; }")
    assert isinstance(up.method, lbkit.LeastConn)
    up = parse_upstream("upstream u { least_conn; sticky cookie s; server a:1; server b:1; }")
    assert isinstance(up.method, StickyMethod)
    with pytest.raises(lbkit.ConfigError, match="duplicate"):
        parse_upstream("upstream u { sticky cookie s; sticky route $r; server a:1; }")


def test_drain_and_route_without_sticky_are_accepted_as_nginx_does() -> None:
    up = parse_upstream("upstream u { server a:1 drain; server b:1 route=x; }")
    assert [up.pick().name for _ in range(3)] == ["b:1"] * 3


@given(
    st.sampled_from(["", "least_conn;", "hash $k;", "hash $k consistent;", "ip_hash;"]),
    st.lists(st.tuples(st.text("abc", max_size=3), st.booleans()), max_size=40),
)
def test_without_hints_sticky_chooses_what_its_method_chooses(
    method: str, steps: list[tuple[str, bool]]
) -> None:
    servers = "server a:1 weight=2; server b:1 max_fails=1; server c:1;"
    plain = parse_upstream(f"upstream u {{ {method} {servers} }}", clock=lambda: 50.0)
    sticky = parse_upstream(
        f"upstream u {{ {method} sticky cookie s; {servers} }}", clock=lambda: 50.0
    )
    for key, failed in steps:
        picked = []
        for up in (plain, sticky):
            try:
                peer = up.pick(key=key, client_addr="10.1.2.3")
            except lbkit.NoLiveUpstreams:
                picked.append("502")
                continue
            picked.append(peer.name)
            up.done(peer, failed=failed)
        assert picked[0] == picked[1]
