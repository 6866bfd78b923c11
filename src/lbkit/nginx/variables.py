"""nginx variables evaluated from one request (sans-I/O): ``$request_uri``, ``$arg_NAME``...

Follows nginx 1.22's ``ngx_http_variables.c`` and ``ngx_http_parse.c``:

- ``$arg_NAME`` (``ngx_http_arg``): the first ``NAME=`` in the query string, name compared
  case-insensitively, at the start or after ``&``; the value runs to the next ``&`` and is
  not decoded.
- ``$cookie_NAME`` (``ngx_http_parse_multi_header_lines``): each ``Cookie`` line in order,
  entries separated by ``;`` or ``,``, name compared case-insensitively, spaces allowed
  around ``=``; the value runs to the next ``;`` (a ``,`` stays in it).
- ``$http_NAME``: the first header whose lowercased name, with ``-`` as ``_``, is NAME;
  ``$http_cookie`` joins every Cookie line with ``"; "`` and ``$http_x_forwarded_for``
  every X-Forwarded-For line with ``", "``. Header names holding anything but letters,
  digits and ``-`` are dropped, as nginx does with ``ignore_invalid_headers on`` and
  ``underscores_in_headers off`` (its defaults).
- An unset variable expands to the empty string.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence

import attrs

from lbkit.errors import ConfigError, RequestError
from lbkit.routing import expand

__all__ = ["ClientRequest", "RequestVariables", "cookie_value", "query_arg", "render"]

#: Variables with a fixed name that :class:`RequestVariables` knows.
FIXED_VARIABLES = (
    "args",
    "host",
    "is_args",
    "query_string",
    "remote_addr",
    "request_method",
    "request_uri",
    "scheme",
    "server_name",
    "server_port",
    "uri",
)
#: Largest URI, header name or value accepted (nginx's large_client_header_buffers: 8k).
MAX_FIELD_LENGTH = 8192
#: Most headers in one request.
MAX_HEADERS = 100

_VALID_HEADER_NAME = re.compile(r"[A-Za-z0-9-]+\Z")
_PERCENT = re.compile(rb"%([0-9A-Fa-f]{2})")


def _check_length(what: str, value: str) -> str:
    if len(value) > MAX_FIELD_LENGTH:
        raise RequestError(f"{what} of {len(value)} characters is too long: at most 8192")
    return value


def _headers(value: object) -> tuple[tuple[str, str], ...]:
    if isinstance(value, Mapping):
        pairs: list[object] = list(value.items())
    elif isinstance(value, list | tuple):
        pairs = list(value)
    else:
        raise RequestError(f"headers must be a mapping or (name, value) pairs, not {value!r}")
    if len(pairs) > MAX_HEADERS:
        raise RequestError(f"{len(pairs)} headers is too many: at most {MAX_HEADERS}")
    out: list[tuple[str, str]] = []
    for pair in pairs:
        if not isinstance(pair, tuple | list) or len(pair) != 2:
            raise RequestError(f"a header must be a (name, value) pair, not {pair!r}")
        name, text = pair
        if not isinstance(name, str) or not isinstance(text, str):
            raise RequestError(f"header name and value must be str, not {pair!r}")
        out.append((_check_length("header name", name), _check_length("header value", text)))
    return tuple(out)


def _uri(value: str) -> str:
    if not isinstance(value, str) or not value.startswith("/"):
        raise RequestError(f"uri must be a str starting with '/', not {value!r}")
    return _check_length("uri", value)


@attrs.frozen(slots=True)
class ClientRequest:
    """What a client sent, as far as nginx variables need it.

    ``uri`` is the request target as sent (path and query string), ``client`` the client's
    address (``$remote_addr``), ``port`` the port the request arrived on (``$server_port``;
    ``None``: the first listen socket of the config),
    ``headers`` (name, value) pairs in the order sent (a mapping is accepted too). ``host``
    is the Host header, or ``None`` when the request had none.
    """

    host: str | None = None
    uri: str = attrs.field(default="/", converter=_uri)
    client: str = "127.0.0.1"
    port: int | None = None
    method: str = "GET"
    headers: tuple[tuple[str, str], ...] = attrs.field(default=(), converter=_headers)

    def __attrs_post_init__(self) -> None:
        if self.port is not None:
            if not isinstance(self.port, int) or isinstance(self.port, bool):
                raise RequestError(f"port must be an int 1..65535, not {self.port!r}")
            if not 1 <= self.port <= 65535:
                raise RequestError(f"port must be 1..65535, not {self.port}")
        if not isinstance(self.client, str):
            raise RequestError(f"client must be an address string, not {self.client!r}")
        if self.host is not None and not isinstance(self.host, str):
            raise RequestError(f"host must be a str or None, not {self.host!r}")
        if not isinstance(self.method, str) or not self.method:
            raise RequestError(f"method must be a non-empty str, not {self.method!r}")

    @property
    def path(self) -> str:
        """The URI before ``?``."""
        return self.uri.split("?", 1)[0]

    @property
    def args(self) -> str:
        """The query string: everything after the first ``?`` (``$args``)."""
        _, _, args = self.uri.partition("?")
        return args

    def header_lines(self, name: str) -> list[str]:
        """Values of the valid header lines called ``name`` (case-insensitive), in order,
        without the spaces around them (nginx's header parser drops spaces, not tabs)."""
        wanted = name.lower()
        return [
            value.strip(" ")
            for key, value in self.headers
            if key.lower() == wanted and _VALID_HEADER_NAME.match(key)
        ]


def query_arg(args: str, name: str) -> str | None:
    """``$arg_NAME``: the value of the first ``name=`` in ``args``, or None (ngx_http_arg)."""
    if not args or not name:
        return None
    low_args = args.lower()
    low_name = name.lower()
    start = 0
    while True:
        # nginx needs room for '=' after the name, so the name may not end the string
        at = low_args.find(low_name, start, len(args) - 1)
        if at < 0:
            return None
        after = at + len(name)
        if (at == 0 or args[at - 1] == "&") and args[after] == "=":
            end = args.find("&", after)
            return args[after + 1 : end if end >= 0 else len(args)]
        start = at + 1


def cookie_value(lines: Sequence[str], name: str) -> str | None:
    """``$cookie_NAME`` from the Cookie header lines, or None (parse_multi_header_lines)."""
    low_name = name.lower()
    for line in lines:
        if len(name) > len(line):
            continue
        pos, end = 0, len(line)
        while pos < end:
            if line[pos : pos + len(name)].lower() == low_name:
                cursor = pos + len(name)
                while cursor < end and line[cursor] == " ":
                    cursor += 1
                if cursor < end and line[cursor] == "=":
                    cursor += 1
                    while cursor < end and line[cursor] == " ":
                        cursor += 1
                    stop = line.find(";", cursor)
                    return line[cursor : stop if stop >= 0 else end]
                pos = cursor
            # skip to the next entry: past ';' or ',', then spaces
            while pos < end:
                ch = line[pos]
                pos += 1
                if ch in ";,":
                    break
            while pos < end and line[pos] == " ":
                pos += 1
    return None


def _normalized_path(path: str) -> str:
    """``$uri``: the path percent-decoded, with ``//`` merged and ``.``/``..`` resolved."""
    raw = _PERCENT.sub(lambda m: bytes([int(m.group(1), 16)]), path.encode("utf-8"))
    decoded = raw.decode("utf-8", "replace")
    segments: list[str] = []
    parts = decoded.split("/")
    for part in parts[1:]:
        if part in ("", "."):
            continue
        if part == "..":
            if segments:
                segments.pop()
            continue
        segments.append(part)
    trailing = parts[-1] in ("", ".", "..") and len(parts) > 1
    text = "/" + "/".join(segments)
    return text + "/" if trailing and segments else text


class RequestVariables(Mapping[str, str]):
    """The variables of one request, computed on demand, for :func:`lbkit.routing.expand`.

    ``host`` is nginx's ``$host`` (the normalised Host header, or the server's name),
    ``captures`` and ``named`` the regex captures (``$1``..``$9``, ``$name``),
    ``server_name`` the chosen block's primary name, ``port`` the listen socket's port.
    """

    def __init__(
        self,
        request: ClientRequest,
        *,
        host: str | None = None,
        captures: Sequence[str] = (),
        named: Mapping[str, str] | None = None,
        server_name: str = "",
        port: int | None = None,
    ) -> None:
        self.request = request
        self._fixed: dict[str, str] = {
            "args": request.args,
            "host": host if host is not None else (request.host or server_name).lower(),
            "is_args": "?" if request.args else "",  # nginx: only when args are not empty
            "query_string": request.args,
            "remote_addr": request.client,
            "request_method": request.method,
            "request_uri": request.uri,
            "scheme": "http",
            "server_name": server_name,
            "server_port": str(port or request.port or 80),
            "uri": _normalized_path(request.path),
        }
        self._fixed.update({str(i): c for i, c in enumerate(captures[:9], start=1)})
        self._fixed.update(named or {})

    def _lookup(self, name: str) -> str | None:
        if name in self._fixed:
            return self._fixed[name]
        low = name.lower()
        if low in self._fixed:
            return self._fixed[low]
        if low.startswith("arg_"):
            return query_arg(self.request.args, name[4:]) or ""
        if low.startswith("cookie_"):
            return cookie_value(self.request.header_lines("cookie"), name[7:]) or ""
        if low.startswith("http_"):
            header = low[5:].replace("_", "-")
            lines = self.request.header_lines(header)
            if header == "cookie":
                return "; ".join(lines)
            if header == "x-forwarded-for":
                return ", ".join(lines)
            return lines[0] if lines else ""
        return None

    def __getitem__(self, name: str) -> str:
        value = self._lookup(name)
        if value is None:
            raise KeyError(name)
        return value

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._lookup(name) is not None

    def __iter__(self) -> Iterator[str]:
        return iter(self._fixed)

    def __len__(self) -> int:
        return len(self._fixed)


def render(template: str, variables: RequestVariables) -> str:
    """Expand an nginx template (a ``hash`` key, a ``proxy_pass``) for one request.

    An unknown variable raises :class:`~lbkit.ConfigError` naming it, as nginx refuses such
    a configuration (``$arg_``, ``$cookie_`` and ``$http_`` names are always known).
    """
    try:
        return expand(template, variables)
    except ConfigError as exc:
        raise ConfigError(
            f"{exc}; lbkit evaluates {', '.join('$' + v for v in FIXED_VARIABLES)}, "
            "$arg_NAME, $cookie_NAME, $http_NAME and the server_name captures"
        ) from None
