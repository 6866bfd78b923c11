"""Configuration files for the command line: read them, find their upstream blocks."""

from __future__ import annotations

import sys

import attrs

from lbkit import ConfigError, Router, Upstream
from lbkit._cli.diagnostics import located
from lbkit.nginx import Directive, load_config, parse_directives, parse_servers, parse_upstream

__all__ = [
    "ConfigFile",
    "LoadedServers",
    "load_router",
    "load_upstream",
    "read_config",
    "upstream_blocks",
]

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


def _choose(names: list[str], name: str | None, path: str) -> str:
    """The upstream name to use: ``name``, or the file's only upstream."""
    found = ", ".join(names) or "none"
    if name is None:
        if len(names) != 1:
            raise ConfigError(
                f"expected one upstream block in {path}, found {len(names)} ({found}): "
                "choose one with --upstream NAME"
            )
        return names[0]
    if name not in names:
        raise ConfigError(f'no upstream "{name}" in {path}: it has {found}')
    return name


def load_upstream(source: ConfigFile, name: str | None = None) -> Upstream:
    """The upstream called ``name`` in ``source`` (or its only one), parsed as nginx would:
    from a whole nginx.conf (includes followed) or from bare ``upstream`` blocks."""
    if _is_whole_config(source):
        with located(source.path, source.text):
            upstreams = load_config(source.path).upstreams
        return upstreams[_choose(list(upstreams), name, source.path)]
    with located(source.path, source.text):
        blocks = upstream_blocks(source.text)
        chosen = _choose(list(blocks), name, source.path)
        return parse_upstream(_render_at_lines(blocks[chosen]))


@attrs.frozen
class LoadedServers:
    """A config's router, nginx's warnings about it, and notes on what lbkit left out."""

    router: Router
    warnings: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


def _is_whole_config(source: ConfigFile) -> bool:
    """A config whose top level has ``http { ... }`` (a file, or standard input with
    includes relative to the working directory): read it as nginx does. A config that does
    not even tokenize counts too: load_config reports the error's column."""
    try:
        directives = parse_directives(source.text)
    except ConfigError:
        return True
    return any(d.name == "http" and d.block is not None for d in directives)


def load_router(source: ConfigFile) -> LoadedServers:
    """The server blocks and upstreams of a config: a whole nginx.conf (``http { ... }``,
    includes followed, by :func:`lbkit.nginx.load_config`) or bare ``server`` blocks."""
    if not _is_whole_config(source):
        with located(source.path, source.text):
            router = parse_servers(source.text)
        return LoadedServers(router, tuple(router.warnings))
    with located(source.path, source.text):
        config = load_config(source.path, text=source.text if source.path == "<stdin>" else None)
    if config.router is None:
        raise ConfigError(f"no server blocks in {source.path} (nor in the files it includes)")
    notes = tuple(
        f'{u.where}: "{u.name}" in {u.context} is not modelled: it does not change the choice'
        for u in config.unknown
    )
    return LoadedServers(config.router, tuple(config.warnings), notes)
