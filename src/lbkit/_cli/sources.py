"""Configuration files for the command line: read them, find their upstream blocks."""

from __future__ import annotations

import sys

import attrs

from lbkit import ConfigError, Router, Upstream
from lbkit._cli.diagnostics import located
from lbkit.nginx import Directive, parse_directives, parse_servers, parse_upstream

__all__ = ["ConfigFile", "load_router", "load_upstream", "read_config", "upstream_blocks"]

#: Largest file the command line reads (bytes).
MAX_FILE_SIZE = 4 * 1024 * 1024


@attrs.frozen
class ConfigFile:
    """A file's name (``<stdin>`` for ``-``) and its text."""

    path: str
    text: str


def read_config(path: str) -> ConfigFile:
    """Read a configuration file (``-``: standard input), at most 4 MiB."""
    if path == "-":
        path, text = "<stdin>", sys.stdin.read(MAX_FILE_SIZE + 1)
    else:
        with open(path, encoding="utf-8") as f:
            text = f.read(MAX_FILE_SIZE + 1)
    if len(text) > MAX_FILE_SIZE:
        raise ConfigError(f"{path} is larger than {MAX_FILE_SIZE} bytes")
    return ConfigFile(path, text)


def _quote(arg: str) -> str:
    if arg and not any(c in arg for c in " \t\r\n;{}\"'#\\"):
        return arg
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _render_at_lines(block: Directive) -> str:
    """nginx text for one upstream directive with each directive on its original line,
    so errors found when parsing it name the line of the file it came from."""
    out = ["\n" * (block.line - 1), f"upstream {_quote(block.args[0])} {{"]
    line = block.line
    for d in block.block or ():
        if d.line > line:
            out.append("\n" * (d.line - line))
            line = d.line
        out.append(" " + " ".join(_quote(t) for t in (d.name, *d.args)) + ";")
    out.append(" }\n")
    return "".join(out)


def upstream_blocks(text: str) -> dict[str, Directive]:
    """The ``upstream NAME { ... }`` directives of a whole config (inside ``http`` too)."""
    found: dict[str, Directive] = {}

    def walk(directives: tuple[Directive, ...]) -> None:
        for d in directives:
            if d.name == "upstream" and d.block is not None and len(d.args) == 1:
                found.setdefault(d.args[0], d)
            elif d.name in ("http", "stream") and d.block is not None:
                walk(d.block)

    walk(parse_directives(text))
    return found


def load_upstream(source: ConfigFile, name: str | None = None) -> Upstream:
    """The upstream called ``name`` in ``source`` (or its only one), parsed as nginx would."""
    with located(source.path, source.text):
        blocks = upstream_blocks(source.text)
    if name is None:
        if len(blocks) != 1:
            found = ", ".join(blocks) or "none"
            raise ConfigError(
                f"expected one upstream block in {source.path}, found {len(blocks)} ({found}): "
                "choose one with --upstream NAME"
            )
        name = next(iter(blocks))
    if name not in blocks:
        raise ConfigError(
            f'no upstream "{name}" in {source.path}: it has ' + (", ".join(blocks) or "none")
        )
    with located(source.path, source.text):
        return parse_upstream(_render_at_lines(blocks[name]))


def load_router(source: ConfigFile) -> Router:
    """The server blocks and upstreams of a whole nginx.conf, as a router."""
    with located(source.path, source.text):
        return parse_servers(source.text)
