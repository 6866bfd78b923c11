"""``lbkit predict`` and ``lbkit route``: what nginx does with requests, from its config."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Iterator

from lbkit._cli.diagnostics import located
from lbkit._cli.predictor import Prediction, Predictor, request_from_json
from lbkit._cli.sources import LoadedServers, load_router, read_config
from lbkit._cli.terminal import table
from lbkit.errors import RequestError
from lbkit.nginx.variables import ClientRequest

__all__ = ["add_parsers", "parse_request_argument"]

#: Most requests read from one input.
MAX_REQUESTS = 1_000_000


def parse_request_argument(
    text: str, *, client: str, port: int | None, headers: list[tuple[str, str]]
) -> ClientRequest:
    """``HOST[/PATH[?QUERY]]`` (a leading ``http://`` is ignored; ``/PATH`` alone: no Host)."""
    rest = text.split("://", 1)[1] if "://" in text else text
    host, slash, path = rest.partition("/")
    return ClientRequest(
        host=host if host else None,
        uri="/" + path if slash else "/",
        client=client,
        port=port,
        headers=headers,
    )


def _header(text: str) -> tuple[str, str]:
    name, sep, value = text.partition(":")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"expected 'Name: value', not {text!r}")
    return name.strip(), value.strip()


def _lines(args: argparse.Namespace) -> Iterator[str]:
    if args.requests:
        yield from args.requests
        return
    stream = sys.stdin if args.file in (None, "-") else open(args.file, encoding="utf-8")  # noqa: SIM115
    try:
        for count, line in enumerate(stream, start=1):
            if count > MAX_REQUESTS:
                raise ValueError(f"more than {MAX_REQUESTS} requests in one input")
            if line.strip():
                yield line.strip()
    finally:
        if stream is not sys.stdin:
            stream.close()


def _requests(
    args: argparse.Namespace,
) -> Iterable[tuple[ClientRequest, str | None] | RequestError]:
    """Each request with its given hash key (``--key``, or a JSON line's ``key``), if any."""
    for line in _lines(args):
        try:
            if args.json and not args.requests:
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise RequestError(f"invalid JSON ({exc}): {line[:80]!r}") from None
                request = request_from_json(obj)
                key = obj.get("key")
                if key is not None and not isinstance(key, str):
                    raise RequestError(f"key must be a string, not {key!r}")
                yield request, key
            else:
                request = parse_request_argument(
                    line, client=args.client, port=args.port, headers=args.header
                )
                yield request, args.key
        except RequestError as exc:
            yield exc


def _report(loaded: LoadedServers) -> None:
    for warning in loaded.warnings:
        print(f"nginx: [warn] {warning}", file=sys.stderr)
    for note in loaded.notes:
        print(f"lbkit: note: {note}", file=sys.stderr)


def _describe(request: ClientRequest) -> str:
    return f"{request.host if request.host is not None else '(no Host)'}{request.uri}"


def _row(request: ClientRequest, p: Prediction) -> list[str]:
    server = "-" if p.server is None else f"#{p.server}"
    if p.error is not None:
        return [_describe(request), server, p.rule or "-", "-", "-", f"{p.status}: {p.error}"]
    if p.returns is not None:
        code, text = p.returns
        target = f"return {code}" + (f" {text}" if text else "")
    else:
        target = p.target or "-"
    rule = f"{p.rule} {p.name}" if p.name else (p.rule or "-")
    return [_describe(request), server, rule, p.upstream or "-", p.peer or "-", target]


def _predict(args: argparse.Namespace) -> int:
    source = read_config(args.config)
    loaded = load_router(source)
    _report(loaded)
    predictor = Predictor(loaded.router)
    rows: list[list[str]] = []
    bad_input = 0
    for item in _requests(args):
        if isinstance(item, RequestError):
            bad_input += 1
            if args.json:
                print(
                    json.dumps(
                        {
                            "server": None,
                            "upstream": None,
                            "peer": None,
                            "target": None,
                            "status": None,
                            "error": str(item),
                        }
                    )
                )
            else:
                rows.append(["(invalid)", "-", "-", "-", "-", str(item)])
            continue
        request, key = item
        with located(source.path, source.text):
            prediction = predictor.predict(request, key=key)
        if args.json:
            print(json.dumps(prediction.to_json()), flush=True)
        else:
            rows.append(_row(request, prediction))
    if not args.json:
        print(table(["request", "server", "rule", "upstream", "peer", "target"], rows))
    return 1 if bad_input else 0


def _route(args: argparse.Namespace) -> int:
    source = read_config(args.config)
    loaded = load_router(source)
    _report(loaded)
    warnings = list(loaded.warnings)
    predictor = Predictor(loaded.router)
    rows = []
    for host in args.hosts:
        request = ClientRequest(host=None if host == "-" else host)
        with located(source.path, source.text):
            p = predictor.predict(request)
        if args.json:
            print(json.dumps({**p.to_json(), "warnings": warnings}))
            continue
        if p.error is not None:
            rows.append([host, "-", "-", "-", f"{p.status}: {p.error}"])
            continue
        block = f"#{p.server} (line {p.line})" if p.line else f"#{p.server}"
        code = p.returns
        target = p.target or (f"return {code[0]}" if code else "-")
        rows.append([host, block, p.rule or "-", p.name or "-", target])
    if not args.json:
        print(table(["host", "server block", "rule", "server_name", "target"], rows))
    return 0


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``lbkit predict`` and ``lbkit route``."""
    p = sub.add_parser(
        "predict",
        help="which server block, upstream and peer nginx chooses for requests",
        description="Read an nginx.conf and predict, for each request, the server block, the "
        "rendered proxy_pass target, the upstream and the peer. Requests come from the "
        "arguments (HOST/PATH?QUERY) or, one per line, from --file or stdin; with --json, "
        "stdin lines are JSON objects with any of host, uri, client, port, headers, method, "
        "key "
        "and the output is one JSON object per request.",
    )
    p.add_argument("config", help="nginx.conf with server and upstream blocks ('-' for stdin)")
    p.add_argument("requests", nargs="*", metavar="REQUEST", help="HOST[/PATH[?QUERY]]")
    p.add_argument("--file", help="read requests from this file ('-' for stdin)")
    p.add_argument("--json", action="store_true", help="JSON lines in (stdin) and out")
    p.add_argument("--client", default="127.0.0.1", help="client address ($remote_addr)")
    p.add_argument(
        "--key", help="the evaluated hash key to use instead of evaluating the upstream's"
    )
    p.add_argument(
        "--port", type=int, help="port the requests arrive on (default: the first listen)"
    )
    p.add_argument(
        "--header",
        type=_header,
        action="append",
        default=[],
        metavar="'NAME: VALUE'",
        help="a request header (repeat for more)",
    )
    p.set_defaults(func=_predict)

    r = sub.add_parser(
        "route",
        help="the server block each Host reaches, and the rule that won",
        description="For each HOST, the server block nginx chooses (exact, wildcard, regex or "
        "default rule) and its target; nginx's conflict warnings go to stderr. '-' stands "
        "for a request without a Host header.",
    )
    r.add_argument("config", help="nginx.conf with server blocks ('-' for stdin)")
    r.add_argument("hosts", nargs="+", metavar="HOST", help="Host header values")
    r.add_argument("--json", action="store_true", help="one JSON object per host")
    r.set_defaults(func=_route)
