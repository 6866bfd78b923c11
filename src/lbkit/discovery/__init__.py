"""Discovery: sources (DNS, a watched file, ZooKeeper) that feed upstreams and routes.

Every source reads its registry into a *view* (key -> value) and hands each new view to its
sinks through one method, ``sink.apply(view)``. :class:`UpstreamSink` turns a view into
``Upstream.update(server_lines)``, :class:`RegistrySink` into ``RouteRegistry.replace``,
:class:`HostsFileSink` into a hosts file for dnsmasq. DNS needs ``lbkit[dns]`` and
ZooKeeper ``lbkit[zookeeper]``; each is imported only when its source is created.
"""

from lbkit.discovery.file import FileSource, parse_lines
from lbkit.discovery.hosts_file import HostsFileSink, render_hosts
from lbkit.discovery.sinks import RegistrySink, UpstreamSink, server_lines
from lbkit.discovery.source import Sink, Source, View

__all__ = [
    "DnsSource",
    "FileSource",
    "HostsFileSink",
    "RegistrySink",
    "ResolvingUpstream",
    "Sink",
    "Source",
    "UpstreamSink",
    "View",
    "ZooKeeperSource",
    "parse_lines",
    "render_hosts",
    "server_lines",
]


def __getattr__(name: str) -> object:
    # DnsSource and ZooKeeperSource pull in optional dependencies: load them on first use
    if name == "DnsSource":
        from lbkit.discovery.dns import DnsSource

        return DnsSource
    if name == "ResolvingUpstream":
        from lbkit.discovery.resolve import ResolvingUpstream

        return ResolvingUpstream
    if name == "ZooKeeperSource":
        from lbkit.discovery.zookeeper import ZooKeeperSource

        return ZooKeeperSource
    raise AttributeError(f"module 'lbkit.discovery' has no attribute {name!r}")
