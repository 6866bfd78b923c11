"""Sinks that apply a discovery view to an upstream or to the route registry."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from lbkit.discovery.source import View
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
    refuses (ConfigError) leaves its membership as it was.
    """

    def __init__(self, upstream: Updatable) -> None:
        self.upstream = upstream

    def apply(self, view: View) -> None:
        """Replace the upstream's servers with the view's."""
        self.upstream.update(server_lines(view))


class RegistrySink:
    """Feeds a :class:`~lbkit.routing.RouteRegistry`: host name -> target, replaced whole."""

    def __init__(self, registry: RouteRegistry) -> None:
        self.registry = registry

    def apply(self, view: View) -> None:
        """Make the registry's table exactly the view (readers see old or new, never a mix)."""
        self.registry.replace(view)
