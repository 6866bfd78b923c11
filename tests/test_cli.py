"""The command line: demo with a config's own method, simulate, reshard, error reports."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

import lbkit
from lbkit.cli import main
from lbkit.demo import METHODS, demo_methods, run_demo
from lbkit.nginx import parse_upstream

SEED_HASH = """\
upstream app {
    hash $request_uri consistent;
    server 10.0.0.1:8080 weight=3;
    server 10.0.0.2:8080;
    server 10.0.0.3:8080;
}
"""


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


# --- demo ---------------------------------------------------------------------------------


def test_demo_with_a_config_that_names_a_method_runs_and_labels_only_that_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conf = tmp_path / "app.conf"
    conf.write_text(SEED_HASH)
    reports = run_demo(SEED_HASH, 500)
    assert [r.label for r in reports] == ["hash $request_uri consistent"]
    status, out, _ = run(capsys, "demo", "--config", str(conf), "--requests", "500")
    assert status == 0
    table = out[out.index("-----") :].splitlines()[1:]
    labels = [row.split("  ")[0] for row in table if row and not row.startswith(" ")]
    assert labels == ["hash $request_uri consistent"]
    assert "round robin" not in out
    assert out.count("failed") == 1


@pytest.mark.parametrize(
    ("directive", "label"),
    [
        ("least_conn;", "least_conn"),
        ("ip_hash;", "ip_hash"),
        ("random two least_conn;", "random two least_conn"),
        ("hash $remote_addr;", "hash $remote_addr"),
    ],
)
def test_demo_methods_is_the_named_method(directive: str, label: str) -> None:
    conf = f"upstream u {{ {directive} server a:1; server b:1; }}"
    assert demo_methods(conf) == ((label, ""),)
    (report,) = run_demo(conf, 200)
    assert report.label == label


def test_demo_without_a_method_runs_every_method() -> None:
    conf = "upstream u { server a:1; server b:1; }"
    assert demo_methods(conf) == METHODS
    assert [r.label for r in run_demo(conf, 100)] == [label for label, _ in METHODS]


# --- simulate -----------------------------------------------------------------------------


def test_simulate_charts_the_distribution(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conf = tmp_path / "rr.conf"
    conf.write_text("upstream app { server a:1 weight=3; server b:1; }")
    status, out, _ = run(capsys, "simulate", str(conf), "--requests", "400")
    assert status == 0
    lines = out.splitlines()
    assert lines[0] == "upstream app (round robin): 400 requests"
    assert lines[1].startswith("a:1")
    assert lines[1].endswith("300   75.0%")
    assert lines[2].startswith("b:1")
    assert lines[2].endswith("100   25.0%")
    assert lines[1].count("█") == 40  # the largest count fills the bar


def test_simulate_with_a_failing_server_and_held_requests(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conf = tmp_path / "lc.conf"
    conf.write_text("upstream app { least_conn; server a:1; server b:1; server c:1; }")
    status, out, _ = run(
        capsys, "simulate", str(conf), "--requests", "300", "--fail", "b:1", "--hold", "10"
    )
    assert status == 0
    counts = {line.split()[0]: int(line.split()[-2]) for line in out.splitlines()[1:]}
    assert counts["b:1"] == 0
    assert counts["a:1"] + counts["c:1"] == 300


def test_simulate_hold_reaches_max_conns(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conf = tmp_path / "mc.conf"
    conf.write_text("upstream app { server a:1 max_conns=2; }")
    status, out, _ = run(capsys, "simulate", str(conf), "--requests", "10", "--hold", "5")
    assert status == 0
    assert "(502: no live upstreams)" in out


def test_simulate_matches_the_library(tmp_path: Path) -> None:
    from lbkit._cli.simulate import simulate

    text = "upstream app { hash $request_uri; server a:1; server b:1 weight=2; }"
    dist = simulate(parse_upstream(text), 3000, seed=7)
    assert sum(dist.served.values()) == 3000
    assert dist.refused == 0
    again = simulate(parse_upstream(text), 3000, seed=7)
    assert again == dist


def test_simulate_plot_writes_a_png(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    conf = tmp_path / "rr.conf"
    conf.write_text("upstream app { server a:1; server b:1; }")
    png = tmp_path / "out.png"
    status, out, _ = run(capsys, "simulate", str(conf), "--requests", "50", "--plot", str(png))
    assert status == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"plot written to {png}" in out


def test_simulate_shows_progress_when_asked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conf = tmp_path / "rr.conf"
    conf.write_text("upstream app { server a:1; server b:1; }")
    status, _, err = run(capsys, "simulate", str(conf), "--requests", "3000", "--progress")
    assert status == 0
    # not a terminal (rich draws its bar on one): a line at every tenth
    assert err.splitlines() == [f"simulating: {10 * i}%" for i in range(1, 11)]
    status, _, err = run(capsys, "simulate", str(conf), "--requests", "3000")
    assert err == ""  # not a terminal: silent


def test_simulate_picks_an_upstream_from_a_whole_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conf = tmp_path / "nginx.conf"
    conf.write_text(
        "http {\n  upstream a { server x:1; }\n  upstream b { ip_hash; server y:1; }\n"
        "  server { listen 80; location / { proxy_pass http://a; } }\n}\n"
    )
    status, _, err = run(capsys, "simulate", str(conf), "--requests", "10")
    assert status == 2
    assert "found 2 (a, b)" in err
    assert "--upstream NAME" in err
    status, out, _ = run(capsys, "simulate", str(conf), "--requests", "10", "--upstream", "b")
    assert status == 0
    assert out.startswith("upstream b (ip_hash): 10 requests")


# --- errors -------------------------------------------------------------------------------


def test_config_errors_show_file_line_column_token_and_hint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conf = tmp_path / "bad.conf"
    conf.write_text("http {\n  upstream u {\n    server a:1 weight=0;\n  }\n}\n")
    status, out, err = run(capsys, "simulate", str(conf))
    assert status == 2
    assert out == ""
    first, source, marker, hint = err.splitlines()
    assert first == f'{conf}:3:16: error: invalid parameter "weight=0"'
    assert source == " 3 |     server a:1 weight=0;"
    assert marker == "   |                ^^^^^^^^"
    assert hint.startswith("hint: weight must be an integer 1..")


def test_unknown_directive_error_in_a_whole_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conf = tmp_path / "nginx.conf"
    conf.write_text("server {\n  listen 80;\n  bogus on;\n}\n")
    status, _, err = run(capsys, "route", str(conf), "a.test")
    assert status == 2
    assert err.startswith(f'{conf}:3:3: error: unknown directive "bogus" in server block 0')
    assert "hint: routing understands listen" in err


def test_unclosed_block_error_has_a_hint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conf = tmp_path / "nginx.conf"
    conf.write_text('upstream u {\n  server "a:1;\n}\n')
    status, _, err = run(capsys, "simulate", str(conf))
    assert status == 2
    assert err.startswith(f"{conf}:2:")
    assert "hint:" in err


def test_missing_file_is_exit_status_2(capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run(capsys, "simulate", "/nonexistent/nginx.conf")
    assert status == 2
    assert "No such file" in err


def test_bad_fail_server_names_the_servers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conf = tmp_path / "rr.conf"
    conf.write_text("upstream app { server a:1; server b:1; }")
    status, _, err = run(capsys, "simulate", str(conf), "--fail", "zz:1")
    assert status == 2
    assert "'zz:1' is not a server of the upstream: a:1, b:1" in err


# --- reshard ------------------------------------------------------------------------------


def test_reshard_node_lists(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old = tmp_path / "old.txt"
    new = tmp_path / "new.txt"
    keys = tmp_path / "keys.txt"
    old.write_text("# cache ring\ncache-a:11211\ncache-b:11211\ncache-c:11211 2\n")
    new.write_text("cache-a:11211\ncache-c:11211 2\ncache-d:11211\n")
    key_list = [f"user:{i}" for i in range(2000)]
    keys.write_text("\n".join(key_list) + "\n")
    out_csv = tmp_path / "moves.csv"
    status, out, _ = run(
        capsys,
        "reshard",
        str(old),
        str(new),
        "--keys",
        str(keys),
        "--csv",
        str(out_csv),
        "--flavor",
        "libketama",
    )
    assert status == 0
    before = lbkit.Ketama(
        ["cache-a:11211", "cache-b:11211", "cache-c:11211"], [1, 1, 2], flavor="libketama"
    ).lookup_many(key_list)
    after = lbkit.Ketama(
        ["cache-a:11211", "cache-c:11211", "cache-d:11211"], [1, 2, 1], flavor="libketama"
    ).lookup_many(key_list)
    expected = [(k, a, b) for k, a, b in zip(key_list, before, after, strict=True) if a != b]
    assert out.splitlines()[0] == (
        f"{len(expected)} of 2000 keys move ({len(expected) / 2000:.1%})"
    )
    with out_csv.open() as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["key", "old", "new"]
    assert [tuple(r) for r in rows[1:]] == expected
    # every key of the removed node moves; a consistent ring moves little else
    assert all(a == "cache-b:11211" or b == "cache-d:11211" for _, a, b in expected)
    removed = next(line.split() for line in out.splitlines() if line.startswith("cache-b:11211"))
    assert removed[2:] == ["0", f"-{removed[1]}"]  # keys after, change


def test_reshard_upstreams_uses_the_nginx_method(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = tmp_path / "old.conf"
    new = tmp_path / "new.conf"
    keys = tmp_path / "keys.txt"
    old.write_text("upstream app { hash $request_uri consistent; server a:1; server b:1; }")
    new.write_text(
        "upstream app { hash $request_uri consistent; server a:1; server b:1; server c:1; }"
    )
    key_list = [f"/item/{i}" for i in range(1000)]
    keys.write_text("\n".join(key_list))
    status, out, _ = run(capsys, "reshard", str(old), str(new), "--keys", str(keys))
    assert status == 0
    up_old, up_new = parse_upstream(old.read_text()), parse_upstream(new.read_text())
    moved = 0
    for k in key_list:
        a, b = up_old.pick(key=k), up_new.pick(key=k)
        up_old.done(a)
        up_new.done(b)
        moved += a.name != b.name
        assert a.name == b.name or b.name == "c:1"  # consistent: keys only move to c:1
    assert out.startswith(f"{moved} of 1000 keys move")


def test_reshard_refuses_methods_that_do_not_place_keys(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conf = tmp_path / "rr.conf"
    conf.write_text("upstream app { server a:1; server b:1; }")
    keys = tmp_path / "keys.txt"
    keys.write_text("k\n")
    status, _, err = run(capsys, "reshard", str(conf), str(conf), "--keys", str(keys))
    assert status == 2
    assert "reshard needs hash KEY [consistent] or ip_hash" in err


def test_reshard_bad_node_line_is_located(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = tmp_path / "old.txt"
    old.write_text("a:1\nb:1 heavy\n")
    keys = tmp_path / "keys.txt"
    keys.write_text("k\n")
    status, _, err = run(capsys, "reshard", str(old), str(old), "--keys", str(keys))
    assert status == 2
    assert err.startswith(f'{old}:2:1: error: invalid node line "b:1 heavy"')
    assert "hint: expected NODE or NODE WEIGHT" in err


def test_python_dash_m_lbkit_help_lists_every_command() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "lbkit", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for command in ("demo", "pick", "simulate", "reshard", "predict", "route"):
        assert command in out


def test_simulate_draws_a_progress_bar_on_a_terminal(tmp_path: Path) -> None:
    import os
    import pty

    conf = tmp_path / "rr.conf"
    conf.write_text("upstream app { server a:1; server b:1; }")
    parent, child = pty.openpty()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "lbkit", "simulate", str(conf), "--requests", "30000"],
            stdout=subprocess.PIPE,
            stderr=child,
            timeout=120,
            check=True,
        )
    finally:
        os.close(child)
    drawn = b""
    try:
        while chunk := os.read(parent, 65536):
            drawn += chunk
    except OSError:  # the terminal closed: all read
        pass
    finally:
        os.close(parent)
    assert b"simulating" in drawn  # rich's bar (the cli extra), on stderr only
    assert b"simulating" not in proc.stdout
    assert proc.stdout.decode().startswith("upstream app (round robin): 30000 requests")
