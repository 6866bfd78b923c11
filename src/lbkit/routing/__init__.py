"""Host-header routing with nginx ``server_name`` semantics, and DNS-resolved targets."""

from lbkit.routing._host import MAX_HEADER_LINE, MAX_HOST_LENGTH, normalize_host
from lbkit.routing._listen import Listen
from lbkit.routing._locations import Location, LocationMatch, Locations, rewrite_uri
from lbkit.routing._middleware import ASGIRoutingMiddleware, WSGIRoutingMiddleware, status_for
from lbkit.routing._names import NameMatch, ServerNames
from lbkit.routing._regex import compile_server_regex, translate_pcre
from lbkit.routing._registry import HostsFileSource, RouteRegistry, parse_hosts
from lbkit.routing._resolver import AsyncResolver, CachedAnswer, Resolver, validate_name
from lbkit.routing._route import (
    Request,
    ResolverPool,
    Route,
    aroute_request,
    plan_route,
    route_request,
)
from lbkit.routing._router import RouteMatch, Router, ServerBlock
from lbkit.routing._template import expand
from lbkit.routing._uri import escape_uri, normalize_uri

__all__ = [
    "MAX_HEADER_LINE",
    "MAX_HOST_LENGTH",
    "ASGIRoutingMiddleware",
    "AsyncResolver",
    "CachedAnswer",
    "HostsFileSource",
    "Listen",
    "Location",
    "LocationMatch",
    "Locations",
    "NameMatch",
    "Request",
    "Resolver",
    "ResolverPool",
    "Route",
    "RouteMatch",
    "RouteRegistry",
    "Router",
    "ServerBlock",
    "ServerNames",
    "WSGIRoutingMiddleware",
    "aroute_request",
    "compile_server_regex",
    "escape_uri",
    "expand",
    "normalize_host",
    "normalize_uri",
    "parse_hosts",
    "plan_route",
    "rewrite_uri",
    "route_request",
    "status_for",
    "translate_pcre",
    "validate_name",
]
