"""UpstreamSink: one source or several parts feeding one upstream's update()."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import pytest

from lbkit.discovery import UpstreamSink
from lbkit.errors import ConfigError

from .helpers import UpdateRecorder


class Refusing(UpdateRecorder):
    """Refuses any list holding a server marked ``bad``."""

    def update(self, servers: Sequence[str]) -> None:
        if any("bad" in s for s in servers):
            raise ConfigError("refused")
        super().update(servers)


def test_one_source_replaces_everything_but_the_static_servers() -> None:
    up = UpdateRecorder()
    sink = UpstreamSink(up, static=["10.0.0.9:80   backup"])
    sink.apply({"10.0.0.1:80": "weight=2"})
    sink.apply({"10.0.0.2:80": ""})
    assert up.calls == [
        ["10.0.0.9:80 backup", "10.0.0.1:80 weight=2"],
        ["10.0.0.9:80 backup", "10.0.0.2:80"],
    ]


def test_parts_are_merged_in_the_order_they_were_made() -> None:
    up = UpdateRecorder()
    feed = UpstreamSink(up)
    a, b = feed.part("a.internal"), feed.part("b.internal")
    b.apply({"10.0.1.1:80": ""})
    a.apply({"10.0.0.1:80": "", "10.0.1.1:80": "weight=9"})  # the first part's line wins
    a.apply({})
    assert up.calls == [
        ["10.0.1.1:80"],
        ["10.0.0.1:80", "10.0.1.1:80 weight=9"],
        ["10.0.1.1:80"],
    ]


def test_a_refused_view_changes_nothing() -> None:
    up = Refusing()
    feed = UpstreamSink(up)
    a, b = feed.part("a"), feed.part("b")
    a.apply({"10.0.0.1:80": ""})
    with pytest.raises(ConfigError):
        b.apply({"10.0.0.2:80": "bad"})
    b.apply({"10.0.0.3:80": ""})
    assert up.calls == [["10.0.0.1:80"], ["10.0.0.1:80", "10.0.0.3:80"]]


def test_parts_applied_from_many_threads_end_with_every_part() -> None:
    up = UpdateRecorder()
    feed = UpstreamSink(up)
    parts = [feed.part(f"p{i}") for i in range(16)]
    barrier = threading.Barrier(16)

    def run(i: int) -> None:
        barrier.wait()
        for round_ in range(20):
            parts[i].apply({f"10.0.{i}.{round_ % 3}:80": ""})

    threads = [threading.Thread(target=run, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(up.calls[-1]) == sorted(f"10.0.{i}.1:80" for i in range(16))


@pytest.mark.parametrize("name", ["", 3])
def test_bad_part_names(name: object) -> None:
    feed = UpstreamSink(UpdateRecorder())
    with pytest.raises(ConfigError):
        feed.part(name)  # type: ignore[arg-type]


def test_part_names_are_unique_and_static_must_be_a_list() -> None:
    feed = UpstreamSink(UpdateRecorder())
    feed.part("a")
    with pytest.raises(ConfigError, match="exists"):
        feed.part("a")
    with pytest.raises(ConfigError, match="list"):
        UpstreamSink(UpdateRecorder(), static="10.0.0.1:80")  # type: ignore[arg-type]
