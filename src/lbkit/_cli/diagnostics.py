"""Error reports for the command line: ``file:line:column: message``, the line, a hint."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

from lbkit import ConfigError

__all__ = ["LocatedConfigError", "describe_error", "located"]

_QUOTED = re.compile(r'"([^"]+)"')
_LINE_SUFFIX = re.compile(r" \(line \d+\)$")
# where lbkit.nginx.load_config puts the place: "... in FILE:LINE:COLUMN" or
# "... (line LINE) in FILE" (the file may be an included one)
_IN_FILE = re.compile(
    r"(?: \(line (?P<line>\d+)\))? in (?P<path>\S+?)(?::(?P<line2>\d+):(?P<column>\d+))?$"
)

#: Hints for messages that carry none, by the words they start with.
_HINTS = (
    ("unexpected end of file", "a quote, a '{' or a ';' is not closed"),
    ("unexpected", "each directive ends with ';' and each block is closed with '}'"),
    ("no server blocks", "predict and route need server { ... } blocks (a whole nginx.conf)"),
    ("expected one upstream", "name the upstream with --upstream NAME"),
    ("invalid number of arguments", "see the directive's syntax in nginx's documentation"),
)


def _hint(message: str) -> str:
    for start, hint in _HINTS:
        if message.startswith(start):
            return hint
    return "nginx -t reports the same configuration the same way"


def _read_lines(path: str) -> list[str]:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read(4 * 1024 * 1024).splitlines()
    except OSError:
        return []


def describe_error(exc: ConfigError, path: str, text: str) -> str:
    """Render a configuration error as ``path:line:column: problem``, the offending line
    with the token underlined, and a hint (the part of the message after ``: ``).

    A message that names its own file (``... in FILE:LINE:COLUMN``, as errors from an
    included file do) is shown at that place.
    """
    message = _LINE_SUFFIX.sub("", str(exc))
    line_no = getattr(exc, "line", None)
    column: int | None = None
    lines: list[str] | None = None
    place = _IN_FILE.search(message)
    if place is not None and (place["line"] or place["line2"]):
        message = message[: place.start()]
        if place["path"] != path:  # an included file: read it (the main text is at hand)
            lines = _read_lines(place["path"])
            path = place["path"]
        line_no = int(place["line"] or place["line2"])
        column = int(place["column"]) if place["column"] else None
    problem, sep, hint = message.partition(": ")
    if not sep:
        hint = _hint(message)
    quoted = _QUOTED.search(message)
    token = quoted.group(1) if quoted else ""
    if line_no is None:
        return f"{path}: error: {problem}\nhint: {hint}"
    if lines is None:
        lines = text.splitlines()
    source = lines[line_no - 1] if 0 < line_no <= len(lines) else ""
    if column is not None:
        at = column - 1
        width = len(token) if token and source.startswith(token, at) else 1
    else:
        at = source.find(token) if token else -1
        if at < 0:
            at = len(source) - len(source.lstrip())
            width = max(1, len(source.strip()))
        else:
            width = len(token)
    gutter = " " * len(str(line_no))
    return (
        f"{path}:{line_no}:{at + 1}: error: {problem}\n"
        f" {line_no} | {source}\n"
        f" {gutter} | {' ' * at}{'^' * width}\n"
        f"hint: {hint}"
    )


class LocatedConfigError(ConfigError):
    """A :class:`~lbkit.ConfigError` with the file it came from, for :func:`describe_error`."""

    def __init__(self, cause: ConfigError, path: str, text: str) -> None:
        super().__init__(_LINE_SUFFIX.sub("", str(cause)), line=getattr(cause, "line", None))
        self.path = path
        self.text = text

    def describe(self) -> str:
        """The report the command line prints."""
        return describe_error(self, self.path, self.text)


@contextmanager
def located(path: str, text: str) -> Iterator[None]:
    """Turn a ConfigError raised inside into a :class:`LocatedConfigError` for ``path``."""
    try:
        yield
    except LocatedConfigError:
        raise
    except ConfigError as exc:
        raise LocatedConfigError(exc, path, text) from None
