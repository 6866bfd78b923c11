"""Small test doubles that record what discovery sources hand them."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence

from tests.helpers import wait_until

__all__ = ["RecordingSink", "UpdateRecorder", "wait_until"]


class RecordingSink:
    """A sink that keeps every view it is given, in order."""

    def __init__(self) -> None:
        self.views: list[dict[str, str]] = []
        self._cond = threading.Condition()

    def apply(self, view: Mapping[str, str]) -> None:
        with self._cond:
            self.views.append(dict(view))
            self._cond.notify_all()

    @property
    def last(self) -> dict[str, str] | None:
        with self._cond:
            return self.views[-1] if self.views else None

    def wait_for(self, view: Mapping[str, str], timeout: float = 20.0) -> dict[str, str]:
        """Wait until the latest view equals ``view``; fail with what was seen."""
        with self._cond:
            ok = self._cond.wait_for(lambda: bool(self.views) and self.views[-1] == view, timeout)
            assert ok, f"expected {dict(view)}, saw {self.views}"
            return self.views[-1]


class UpdateRecorder:
    """Stands in for ``Upstream.update`` until the real one is on main: keeps each call."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def update(self, servers: Sequence[str]) -> None:
        self.calls.append(list(servers))
