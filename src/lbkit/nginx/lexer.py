"""nginx configuration text -> tokens and a directive tree (sans-I/O, nginx's quoting rules).

Follows ``ngx_conf_read_token``: words are separated by white space, ``;`` and ``{``
(a ``}`` ends a word only at its start); ``#`` at the start of a word begins a comment;
single or double quotes make one word; in every word ``\\"``, ``\\'``, ``\\\\``, ``\\t``,
``\\r`` and ``\\n`` are escapes and any other ``\\x`` stays as it is; ``${name}`` is one
word; a quoted word must be followed by white space, ``;``, ``{`` or ``)`` (as in
``if ($a ~ "b")``). The body of a ``*_by_lua_block { ... }`` is Lua, kept as one raw word
(braces inside Lua strings and comments do not count), as OpenResty reads it.

Errors are :class:`~lbkit.ConfigError` with the line; ``source`` (a file name) is added to
the message as ``file:line:column`` when given.
"""

from __future__ import annotations

import attrs

from lbkit.errors import ConfigError

__all__ = ["MAX_CONFIG_LENGTH", "Directive", "Token", "parse_directives", "tokenize"]

#: Largest configuration text accepted (characters).
MAX_CONFIG_LENGTH = 4 * 1024 * 1024
#: Deepest block nesting accepted.
MAX_DEPTH = 32

_SPACE = " \t\r\n"
_ESCAPES = {'"': '"', "'": "'", "\\": "\\", "t": "\t", "r": "\r", "n": "\n"}


@attrs.frozen(slots=True)
class Token:
    """One token: a word (``kind="word"``), one of ``;``, ``{``, ``}``, or the raw body of a
    Lua block (``kind="raw"``); ``line`` and ``column`` are 1-based."""

    text: str
    line: int
    kind: str
    column: int = 0


@attrs.frozen(slots=True)
class Directive:
    """A directive: its name, its arguments, the line it starts on and its block, if any.

    ``body`` is the raw text of a ``*_by_lua_block``; ``source`` the file it came from
    (``None`` for text); ``column`` the 1-based column of its name.
    """

    name: str
    args: tuple[str, ...]
    line: int
    block: tuple[Directive, ...] | None = None
    body: str | None = None
    source: str | None = None
    column: int = 0

    @property
    def where(self) -> str:
        """``file:line:column`` (or ``line L``) for messages."""
        if self.source is None:
            return f"line {self.line}"
        return f"{self.source}:{self.line}:{self.column}"


def _fail(message: str, line: int, column: int, source: str | None) -> ConfigError:
    if source is None:
        return ConfigError(message, line=line)
    error = ConfigError(f"{message} in {source}:{line}:{column}")
    error.line = line
    return error


def _unescape(raw: str) -> str:
    if "\\" not in raw:
        return raw
    out: list[str] = []
    i, n = 0, len(raw)
    while i < n:
        c = raw[i]
        if c == "\\" and i + 1 < n and raw[i + 1] in _ESCAPES:
            out.append(_ESCAPES[raw[i + 1]])
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out)


class _Scanner:
    """ngx_conf_read_token's state machine over a whole text."""

    def __init__(self, text: str, source: str | None) -> None:
        self.text = text
        self.source = source
        self.i = 0
        self.line = 1
        self.line_start = 0
        self.tokens: list[Token] = []
        self.words_in_statement: list[str] = []

    def column(self, pos: int) -> int:
        return pos - self.line_start + 1

    def fail(self, message: str, pos: int) -> ConfigError:
        return _fail(message, self.line, self.column(pos), self.source)

    def newline(self, pos: int) -> None:
        self.line += 1
        self.line_start = pos + 1

    def escaped(self, i: int) -> int:
        """Past the backslash at ``i`` and the character it escapes (a newline counts)."""
        if self.text[i + 1] == "\n":
            self.newline(i + 1)
        return i + 2

    def emit(self, text: str, kind: str, line: int, column: int) -> None:
        self.tokens.append(Token(text, line, kind, column))
        if kind == "word":
            self.words_in_statement.append(text)
        else:
            opens_lua = (
                kind == "{"
                and self.words_in_statement
                and self.words_in_statement[0].endswith("_by_lua_block")
            )
            self.words_in_statement = []
            if opens_lua:
                self.lua_body()

    def run(self) -> list[Token]:
        text, n = self.text, len(self.text)
        while self.i < n:
            ch = text[self.i]
            if ch == "\n":
                self.newline(self.i)
                self.i += 1
            elif ch in " \t\r":
                self.i += 1
            elif ch == "#":
                end = text.find("\n", self.i)
                self.i = n if end < 0 else end
            elif ch in ";{":
                if not self.words_in_statement:
                    raise self.fail(f'unexpected "{ch}"', self.i)
                column = self.column(self.i)
                self.i += 1  # before emit: a Lua block body starts after the "{"
                self.emit(ch, ch, self.line, column)
            elif ch == "}":
                if self.words_in_statement:
                    raise self.fail('unexpected "}"', self.i)
                self.emit("}", "}", self.line, self.column(self.i))
                self.i += 1
            elif ch in "\"'":
                self.quoted(ch)
            else:
                self.bare()
        return self.tokens

    def quoted(self, quote: str) -> None:
        text, n = self.text, len(self.text)
        line, column = self.line, self.column(self.i)
        start = self.i + 1
        i = start
        while True:
            if i >= n:
                raise _fail(f"unexpected end of file, expecting {quote}", line, column, self.source)
            c = text[i]
            if c == "\\" and i + 1 < n:
                i = self.escaped(i)
                continue
            if c == "\n":
                self.newline(i)
            if c == quote:
                break
            i += 1
        self.emit(_unescape(text[start:i]), "word", line, column)
        i += 1
        if i < n and text[i] not in _SPACE + ";{)":
            self.i = i
            raise self.fail(f'unexpected "{text[i]}"', i)
        self.i = i

    def bare(self) -> None:
        text, n = self.text, len(self.text)
        line, column = self.line, self.column(self.i)
        start = i = self.i
        variable = False
        while i < n:
            c = text[i]
            if c == "{" and variable:
                i += 1
                continue
            variable = False
            if c == "\\" and i + 1 < n:
                i = self.escaped(i)
                continue
            if c == "$":
                variable = True
                i += 1
                continue
            if c in _SPACE or c in ";{":
                break
            i += 1
        self.emit(_unescape(text[start:i]), "word", line, column)
        self.i = i

    def lua_body(self) -> None:
        """Scan a Lua block body up to its closing brace; emit it raw, then the ``}``."""
        text, n = self.text, len(self.text)
        line, column = self.line, self.column(self.i)
        start = i = self.i
        depth = 0
        while i < n:
            c = text[i]
            if c == "\n":
                self.newline(i)
                i += 1
            elif c in "\"'":
                i = self._lua_string(i, c)
            elif text.startswith("--", i):
                long = _long_bracket(text, i + 2)
                if long is not None:
                    i = self._lua_long(i + 2, long)
                else:
                    end = text.find("\n", i)
                    i = n if end < 0 else end
            elif c == "[" and _long_bracket(text, i) is not None:
                i = self._lua_long(i, _long_bracket(text, i) or 0)
            elif c == "{":
                depth += 1
                i += 1
            elif c == "}":
                if depth == 0:
                    self.tokens.append(Token(text[start:i], line, "raw", column))
                    self.tokens.append(Token("}", self.line, "}", self.column(i)))
                    self.i = i + 1
                    return
                depth -= 1
                i += 1
            else:
                i += 1
        raise _fail(
            'unexpected end of file in a Lua block, expecting "}"', line, column, self.source
        )

    def _lua_string(self, i: int, quote: str) -> int:
        text, n = self.text, len(self.text)
        i += 1
        while i < n and text[i] != quote:
            if text[i] == "\n":
                self.newline(i)
            i += 2 if text[i] == "\\" else 1
        return i + 1

    def _lua_long(self, i: int, level: int) -> int:
        close = "]" + "=" * level + "]"
        end = self.text.find(close, i)
        end = len(self.text) if end < 0 else end + len(close)
        for pos in range(i, end):
            if self.text[pos] == "\n":
                self.newline(pos)
        return end


def _long_bracket(text: str, i: int) -> int | None:
    """The level of a Lua long bracket ``[==[`` starting at ``i``, or None."""
    if i >= len(text) or text[i] != "[":
        return None
    j = i + 1
    while j < len(text) and text[j] == "=":
        j += 1
    return j - i - 1 if j < len(text) and text[j] == "[" else None


def tokenize(text: str, *, source: str | None = None) -> list[Token]:
    """Split nginx configuration text into tokens, raising ConfigError on bad quoting."""
    if not isinstance(text, str):
        raise ConfigError(f"configuration text must be str, not {type(text).__name__}")
    if len(text) > MAX_CONFIG_LENGTH:
        raise ConfigError(f"configuration of {len(text)} characters exceeds {MAX_CONFIG_LENGTH}")
    return _Scanner(text, source).run()


def parse_directives(text: str, *, source: str | None = None) -> tuple[Directive, ...]:
    """Parse configuration text into a tree of directives (``source`` names the file)."""
    tokens = tokenize(text, source=source)
    pos = 0

    def block(depth: int, opened: Token | None) -> tuple[Directive, ...]:
        nonlocal pos
        out: list[Directive] = []
        while pos < len(tokens):
            tok = tokens[pos]
            if tok.kind == "}":
                if depth == 0:
                    raise _fail('unexpected "}"', tok.line, tok.column, source)
                pos += 1
                return tuple(out)
            name, line, column = tok.text, tok.line, tok.column
            pos += 1
            args: list[str] = []
            while pos < len(tokens) and tokens[pos].kind == "word":
                args.append(tokens[pos].text)
                pos += 1
            if pos >= len(tokens):
                raise _fail(
                    f'unexpected end of file, expecting ";" or "}}" after "{name}"',
                    line,
                    column,
                    source,
                )
            end = tokens[pos]
            pos += 1
            if end.kind == ";":
                out.append(Directive(name, tuple(args), line, source=source, column=column))
            elif tokens[pos].kind == "raw" if pos < len(tokens) else False:
                body = tokens[pos].text
                pos += 2  # the raw body and its "}"
                out.append(
                    Directive(name, tuple(args), line, (), body=body, source=source, column=column)
                )
            else:
                if depth >= MAX_DEPTH:
                    raise _fail(
                        f"blocks nested more than {MAX_DEPTH} deep", end.line, end.column, source
                    )
                inner = block(depth + 1, end)
                out.append(Directive(name, tuple(args), line, inner, source=source, column=column))
        if depth:
            assert opened is not None
            raise _fail('unexpected end of file, expecting "}"', opened.line, opened.column, source)
        return tuple(out)

    return block(0, None)
