"""Request and response headers as nginx's proxy module builds them (sans-I/O).

nginx sends its ``proxy_set_header`` lines first, then the defaults they do not name
(``ngx_http_proxy_headers``: ``Host $proxy_host``, ``Connection close``, and ``TE``,
``Keep-Alive``, ``Expect``, ``Upgrade`` emptied), then the client's headers except those
named by either; a header whose value renders empty is not sent. ``X-Forwarded-For`` is
not added by default: ``proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;``
appends the client's address to what the client sent. From the response, nginx drops
``Date``, ``Server``, ``X-Pad`` and ``X-Accel-*`` (``ngx_http_proxy_hide_headers``) and
the hop-by-hop ``Connection``, ``Keep-Alive`` and ``Transfer-Encoding``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from lbkit.routing import expand

__all__ = [
    "DEFAULT_HEADERS",
    "proxy_add_x_forwarded_for",
    "proxy_host",
    "request_headers",
    "response_headers",
]

#: nginx's default proxy headers (``ngx_http_proxy_headers``), lowercased names. Body
#: framing (``Content-Length``/``Transfer-Encoding``) is left to the HTTP client.
DEFAULT_HEADERS: tuple[tuple[str, str], ...] = (
    ("host", "$proxy_host"),
    ("connection", "close"),
    ("content-length", ""),
    ("transfer-encoding", ""),
    ("te", ""),
    ("keep-alive", ""),
    ("expect", ""),
    ("upgrade", ""),
)

_HIDDEN = frozenset(
    {
        b"date",
        b"server",
        b"x-pad",
        b"x-accel-expires",
        b"x-accel-redirect",
        b"x-accel-limit-rate",
        b"x-accel-buffering",
        b"x-accel-charset",
        b"connection",
        b"keep-alive",
        b"transfer-encoding",
    }
)
_DEFAULT_PORTS = {"http": 80, "https": 443}


def proxy_host(target: str) -> tuple[str, str]:
    """``($proxy_host, $proxy_port)`` of a rendered ``proxy_pass`` target: the host, with
    its port only when it is not the scheme's default (``ngx_http_proxy_set_vars``)."""
    scheme, _, rest = target.partition("://")
    hostport = rest.split("/", 1)[0].split("?", 1)[0]
    default = _DEFAULT_PORTS.get(scheme.lower(), 80)
    if hostport.startswith("["):
        host, _, tail = hostport.partition("]")
        host += "]"
        port = tail[1:] if tail.startswith(":") else ""
    elif hostport.count(":") == 1:
        host, port = hostport.split(":")
    else:
        host, port = hostport, ""
    if not port or port == str(default):
        return host, str(default)
    return f"{host}:{port}", port


def proxy_add_x_forwarded_for(forwarded: Iterable[str], client: str) -> str:
    """``$proxy_add_x_forwarded_for``: every X-Forwarded-For line the client sent, then its
    address, joined with ``", "``; just the address when there was none."""
    return ", ".join([*forwarded, client])


def request_headers(
    client_headers: Iterable[tuple[bytes, bytes]],
    set_headers: Iterable[tuple[str, str]],
    variables: Mapping[str, str],
    *,
    pass_request_headers: bool = True,
    drop: Iterable[str] = (),
) -> list[tuple[bytes, bytes]]:
    """The headers sent upstream, in nginx's order (see the module docstring).

    ``variables`` renders the values (``$proxy_host``, ``$remote_addr``, ``$http_NAME``...);
    names in ``drop`` (lowercase) are never passed from the client.
    """
    merged: dict[str, tuple[str, str]] = {}
    for name, value in set_headers:
        merged.setdefault(name.lower(), (name, value))
    for name, value in DEFAULT_HEADERS:
        merged.setdefault(name, (name, value))
    out: list[tuple[bytes, bytes]] = []
    for name, template in merged.values():
        value = expand(template, variables, strict=False) if "$" in template else template
        if value:
            out.append((name.encode("latin-1"), value.encode("latin-1")))
    if pass_request_headers:
        skip = {n.encode("latin-1") for n in merged} | {n.encode("latin-1") for n in drop}
        out.extend((k, v) for k, v in client_headers if k.lower() not in skip)
    return out


def response_headers(headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The upstream response's headers as nginx passes them to the client."""
    return [(k, v) for k, v in headers if k.lower() not in _HIDDEN]
