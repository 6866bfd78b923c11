"""Sinks that apply a discovery view to an upstream or to the route registry."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Protocol

from lbkit.discovery.source import Sink, View
from lbkit.errors import ConfigError
from lbkit.routing import RouteRegistry

__all__ = ["RegistrySink", "UpstreamSink", "server_lines"]


class Updatable(Protocol):
    """What :class:`UpstreamSink` needs: ``Upstream.update(servers)``."""

    def update(self, servers: Sequence[str]) -> None:
        """Replace the membership atomically with these ``server`` line texts."""


def server_lines(view: View) -> list[str]:
    """The view as nginx ``server`` line texts: ``KEY VALUE`` (``"10.0.0.1:80 weight=2"``)."""
    return [f"{key} {value}".strip() for key, value in view.items()]


class UpstreamSink:
    """Feeds an upstream: each view becomes one atomic ``upstream.update(server_lines)``.

    Peers that stay keep their state (that is ``update``'s promise); a view the upstream
    refuses (ConfigError) leaves its membership as it was. An upstream fed by several
    sources (``server a.internal resolve; server b.internal resolve; server 10.0.0.9
    backup;``) gives each source its own :meth:`part`; every part's change updates the
    upstream with ``static`` plus all parts' servers, in the order the parts were made.
    Thread-safe: parts may be applied from different sources' threads.
    """

    def __init__(self, upstream: Updatable, static: Sequence[str] = ()) -> None:
        if isinstance(static, str):
            raise ConfigError("static must be a list of server lines, not one str")
        self.upstream = upstream
        self.static = [" ".join(line.split()) for line in static]
        self._parts: dict[str, dict[str, str]] = {}
        self._lock = threading.Lock()

    def apply(self, view: View) -> None:
        """Replace the upstream's servers with ``static`` and the view's (a one-part feed)."""
        self._apply_part("", view)

    def part(self, name: str) -> Sink:
        """A sink for one source's share of the servers (``name`` tells the parts apart)."""
        if not isinstance(name, str) or not name:
            raise ConfigError(f"invalid part name {name!r}: expected a non-empty str")
        with self._lock:
            if name in self._parts:
                raise ConfigError(f"part {name!r} exists already")
            self._parts[name] = {}
        return _Part(self, name)

    def _apply_part(self, name: str, view: View) -> None:
        with self._lock:
            parts = dict(self._parts)
            parts[name] = dict(view)
            lines = list(self.static)
            seen = {line.split()[0] for line in lines if line}
            for part in parts.values():
                for key, value in part.items():
                    if key not in seen:
                        seen.add(key)
                        lines.append(f"{key} {value}".strip())
            self.upstream.update(lines)  # refused -> nothing recorded, state as it was
            self._parts = parts


class _Part:
    def __init__(self, feed: UpstreamSink, name: str) -> None:
        self._feed = feed
        self._name = name

    def apply(self, view: View) -> None:
        self._feed._apply_part(self._name, view)


class RegistrySink:
    """Feeds a :class:`~lbkit.routing.RouteRegistry`: host name -> target, replaced whole."""

    def __init__(self, registry: RouteRegistry) -> None:
        self.registry = registry

    def apply(self, view: View) -> None:
        """Make the registry's table exactly the view (readers see old or new, never a mix)."""
        self.registry.replace(view)
