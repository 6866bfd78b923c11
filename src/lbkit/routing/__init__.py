"""Host-header routing with nginx ``server_name`` semantics, and DNS-resolved targets."""

from lbkit.routing._host import MAX_HEADER_LINE, MAX_HOST_LENGTH, normalize_host
from lbkit.routing._names import NameMatch, ServerNames
from lbkit.routing._regex import compile_server_regex, translate_pcre
from lbkit.routing._registry import HostsFileSource, RouteRegistry, parse_hosts
from lbkit.routing._resolver import AsyncResolver, CachedAnswer, Resolver, validate_name
from lbkit.routing._router import RouteMatch, Router, ServerBlock
from lbkit.routing._template import expand

__all__ = [
    "MAX_HEADER_LINE",
    "MAX_HOST_LENGTH",
    "AsyncResolver",
    "CachedAnswer",
    "HostsFileSource",
    "NameMatch",
    "Resolver",
    "RouteMatch",
    "RouteRegistry",
    "Router",
    "ServerBlock",
    "ServerNames",
    "compile_server_regex",
    "expand",
    "normalize_host",
    "parse_hosts",
    "translate_pcre",
    "validate_name",
]
