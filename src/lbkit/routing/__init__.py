"""Host-header routing with nginx ``server_name`` semantics, and DNS-resolved targets."""

from lbkit.routing.host import MAX_HOST_LENGTH, normalize_host
from lbkit.routing.names import NameMatch, ServerNames
from lbkit.routing.regex import compile_server_regex, translate_pcre
from lbkit.routing.router import RouteMatch, Router, ServerBlock
from lbkit.routing.template import expand

__all__ = [
    "MAX_HOST_LENGTH",
    "NameMatch",
    "RouteMatch",
    "Router",
    "ServerBlock",
    "ServerNames",
    "compile_server_regex",
    "expand",
    "normalize_host",
    "translate_pcre",
]
