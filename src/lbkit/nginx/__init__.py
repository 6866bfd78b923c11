"""nginx configuration text in, lbkit objects out."""

from lbkit.nginx.config import NginxConfig, load_config
from lbkit.nginx.durations import parse_duration
from lbkit.nginx.lexer import Directive, Token, parse_directives, tokenize
from lbkit.nginx.render import (
    render_method,
    render_server,
    render_sticky,
    render_upstream,
    server_params,
)
from lbkit.nginx.servers import parse_servers
from lbkit.nginx.upstream import parse_upstream

__all__ = [
    "Directive",
    "NginxConfig",
    "Token",
    "load_config",
    "parse_directives",
    "parse_duration",
    "parse_servers",
    "parse_upstream",
    "render_method",
    "render_server",
    "render_sticky",
    "render_upstream",
    "server_params",
    "tokenize",
]
