"""The one interface between discovery sources and what they feed.

A source reads a registry (DNS, a file, ZooKeeper) into a *view*: a mapping of keys to
values, the same shape whatever the source. For an upstream a key is a server address and
its value the rest of the ``server`` line (``"10.0.0.1:80" -> "weight=2"``); for the route
registry a key is a host name and its value the target. A source hands each *new* view to
its sinks (``sink.apply(view)``); a view equal to the last one is not handed on. When the
registry cannot be read the last good view stays in force and the error goes to
``on_error``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Protocol

from lbkit.errors import LbkitError

__all__ = ["ErrorHandler", "Sink", "Source", "View"]

View = Mapping[str, str]
"""What a source sees: key -> value (read-only)."""

ErrorHandler = Callable[[Exception], None]


class Sink(Protocol):
    """Something a source feeds: it takes each new view whole."""

    def apply(self, view: View) -> None:
        """Make ``view`` the current state (raise an LbkitError to refuse it)."""


class Source:
    """Base of the discovery sources: sinks, the last good view, change-only publishing.

    Thread-safe: publishing is serialized, so sinks see views one at a time and in order.
    """

    def __init__(self, sinks: Iterable[Sink] = (), on_error: ErrorHandler | None = None) -> None:
        self._sinks: list[Sink] = list(sinks)
        self._on_error = on_error
        self._view: View | None = None
        self._publish_lock = threading.Lock()

    @property
    def view(self) -> View | None:
        """The last good view (None before the first successful read)."""
        return self._view

    def add_sink(self, sink: Sink) -> None:
        """Feed ``sink`` too; it gets the current view at once if there is one."""
        with self._publish_lock:
            self._sinks.append(sink)
            if self._view is not None:
                self._apply(sink, self._view)

    def _publish(self, view: Mapping[str, str]) -> bool:
        """Hand ``view`` to every sink if it differs from the last one; True if it did."""
        with self._publish_lock:
            if self._view is not None and dict(self._view) == dict(view):
                return False
            frozen: View = MappingProxyType(dict(view))
            self._view = frozen
            for sink in self._sinks:
                self._apply(sink, frozen)
            return True

    def _apply(self, sink: Sink, view: View) -> None:
        try:
            sink.apply(view)
        except LbkitError as exc:
            self._report(exc)

    def _report(self, exc: Exception) -> None:
        if self._on_error is not None:
            self._on_error(exc)


class PollingSource(Source):
    """A source read again and again by a daemon thread: ``poll()`` returns the next delay.

    Polls are serialized (read and publish under one lock), so a slow read can never
    publish an older view after a newer one.
    """

    _thread_name = "lbkit-discovery"

    def __init__(self, sinks: Iterable[Sink] = (), on_error: ErrorHandler | None = None) -> None:
        super().__init__(sinks, on_error)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._poll_lock = threading.Lock()

    def poll(self) -> float:
        """Read once, publish a change, return seconds until the next read."""
        with self._poll_lock:
            return self._poll()

    def _poll(self) -> float:
        raise NotImplementedError

    def start(self) -> None:
        """Read now, then keep reading in a daemon thread until :meth:`stop`."""
        if self._thread is not None:
            return
        self._stop.clear()
        delay = self.poll()
        self._thread = threading.Thread(
            target=self._run, args=(delay,), name=self._thread_name, daemon=True
        )
        self._thread.start()

    def _run(self, delay: float) -> None:
        while not self._stop.wait(delay):
            delay = self.poll()

    def stop(self) -> None:
        """Stop reading (the sinks keep the last view)."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(30)

    def __enter__(self) -> PollingSource:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
