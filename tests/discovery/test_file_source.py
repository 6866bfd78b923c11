"""FileSource: a watched file of server lines or hosts entries."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lbkit.discovery import FileSource, UpstreamSink, parse_lines, server_lines
from lbkit.errors import ConfigError, DiscoveryError

from .helpers import RecordingSink, UpdateRecorder


def replace(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def test_lines_feed_an_upstream_and_only_changes_are_published(tmp_path: Path) -> None:
    path = tmp_path / "servers"
    replace(path, "10.0.0.1:80 weight=2\n# a comment\n10.0.0.2:80   max_fails=3  # why\n")
    sink, recorder = RecordingSink(), UpdateRecorder()
    src = FileSource(path, [sink, UpstreamSink(recorder)], interval=0.05)
    assert src.poll() == 0.05
    assert sink.views == [{"10.0.0.1:80": "weight=2", "10.0.0.2:80": "max_fails=3"}]
    assert recorder.calls == [["10.0.0.1:80 weight=2", "10.0.0.2:80 max_fails=3"]]
    replace(path, "10.0.0.1:80 weight=2\n10.0.0.2:80 max_fails=3\n")  # same entries
    src.poll()
    assert len(sink.views) == 1
    with src:
        replace(path, "10.0.0.3:80\n")
        sink.wait_for({"10.0.0.3:80": ""}, timeout=5)


def test_bad_or_missing_file_keeps_the_last_view(tmp_path: Path) -> None:
    path = tmp_path / "servers"
    replace(path, "10.0.0.1:80\n")
    errors: list[Exception] = []
    src = FileSource(path, on_error=errors.append)
    src.poll()
    replace(path, "10.0.0.1:80\n10.0.0.1:80 weight=2\n")
    src.poll()
    assert isinstance(errors[-1], ConfigError)
    assert "line 2" in str(errors[-1])
    path.unlink()
    src.poll()
    assert isinstance(errors[-1], DiscoveryError)
    assert src.view == {"10.0.0.1:80": ""}


def test_hosts_format_reads_name_to_address(tmp_path: Path) -> None:
    path = tmp_path / "hosts"
    replace(path, "10.0.0.1 a.example b.example\n10.0.0.2 a.example\n")
    src = FileSource(path, format="hosts")
    src.poll()
    assert src.view == {"a.example": "10.0.0.1", "b.example": "10.0.0.1"}


@pytest.mark.parametrize("kw", [{"format": "json"}, {"interval": 0}, {"interval": True}])
def test_bad_arguments(tmp_path: Path, kw: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        FileSource(tmp_path / "x", **kw)  # type: ignore[arg-type]


@given(st.text())
def test_parse_lines_never_raises_anything_but_config_error(text: str) -> None:
    try:
        view = parse_lines(text)
    except ConfigError:
        return
    assert all(k and not any(c.isspace() for c in k) for k in view)
    assert len(server_lines(view)) == len(view)


def test_polls_from_16_threads_hand_on_whole_views_in_order(tmp_path: Path) -> None:
    import threading

    path = tmp_path / "servers"
    replace(path, "10.0.0.0:80\n")
    sink = RecordingSink()
    src = FileSource(path, [sink])
    stop = threading.Event()

    def poller() -> None:
        while not stop.is_set():
            src.poll()

    threads = [threading.Thread(target=poller) for _ in range(15)]
    for t in threads:
        t.start()
    try:
        for i in range(1, 40):  # the 16th thread writes: each file holds i and i + 1000
            replace(path, f"10.0.0.{i}:80\n10.0.{i // 10}.{i}:81 weight={i}\n")
    finally:
        stop.set()
        for t in threads:
            t.join()
    src.poll()
    assert sink.views[-1] == {"10.0.0.39:80": "", "10.0.3.39:81": "weight=39"}
    for view in sink.views[1:]:  # never half a file
        assert len(view) == 2
    firsts = [int(next(iter(v)).split(".")[3].split(":")[0]) for v in sink.views]
    assert firsts == sorted(firsts)  # handed on in order, never an older file after a newer
