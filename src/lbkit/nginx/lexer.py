"""nginx configuration text -> tokens and a directive tree (sans-I/O, nginx's quoting rules).

Follows ``ngx_conf_read_token``: words are separated by white space and ``;``, ``{``, ``}``;
``#`` at the start of a word begins a comment; single or double quotes make one word in which
``\\"``, ``\\'``, ``\\\\``, ``\\t``, ``\\r`` and ``\\n`` are escapes; ``${name}`` is one word.
"""

from __future__ import annotations

import attrs

from lbkit.errors import ConfigError

__all__ = ["MAX_CONFIG_LENGTH", "Directive", "Token", "parse_directives", "tokenize"]

#: Largest configuration text accepted (characters).
MAX_CONFIG_LENGTH = 4 * 1024 * 1024

_SPECIAL = ";{}"
_ESCAPES = {'"': '"', "'": "'", "\\": "\\", "t": "\t", "r": "\r", "n": "\n"}


@attrs.frozen(slots=True)
class Token:
    """One token: a word (``kind="word"``) or one of ``;``, ``{``, ``}``; ``line`` is 1-based."""

    text: str
    line: int
    kind: str


@attrs.frozen(slots=True)
class Directive:
    """A directive: its name, its arguments, the line it starts on and its block, if any."""

    name: str
    args: tuple[str, ...]
    line: int
    block: tuple[Directive, ...] | None = None


def tokenize(text: str) -> list[Token]:
    """Split nginx configuration text into tokens, raising ConfigError on unbalanced quotes."""
    if len(text) > MAX_CONFIG_LENGTH:
        raise ConfigError(f"configuration of {len(text)} characters exceeds {MAX_CONFIG_LENGTH}")
    tokens: list[Token] = []
    i = 0
    n = len(text)
    line = 1
    while i < n:
        ch = text[i]
        if ch == "\n":
            line += 1
            i += 1
        elif ch in " \t\r":
            i += 1
        elif ch == "#":
            end = text.find("\n", i)
            i = n if end < 0 else end
        elif ch in _SPECIAL:
            tokens.append(Token(ch, line, ch))
            i += 1
        elif ch in "\"'":
            start_line = line
            i += 1
            out: list[str] = []
            while True:
                if i >= n:
                    raise ConfigError(f"unexpected end of file, expecting {ch}", line=start_line)
                c = text[i]
                if c == "\\" and i + 1 < n:
                    nxt = text[i + 1]
                    out.append(_ESCAPES.get(nxt, "\\" + nxt))
                    line += nxt == "\n"
                    i += 2
                    continue
                if c == ch:
                    i += 1
                    break
                line += c == "\n"
                out.append(c)
                i += 1
            if i < n and text[i] not in " \t\r\n;{}":
                raise ConfigError(f'unexpected "{text[i]}" after a quoted string', line=line)
            tokens.append(Token("".join(out), start_line, "word"))
        else:
            start_line = line
            out = []
            while i < n:
                c = text[i]
                if c == "\\" and i + 1 < n:
                    out.append(text[i : i + 2])
                    i += 2
                    continue
                if c == "{" and out and out[-1].endswith("$"):
                    # ${variable}: the braces belong to the word
                    close = text.find("}", i)
                    if close < 0:
                        raise ConfigError("unclosed ${ in a variable name", line=line)
                    out.append(text[i : close + 1])
                    i = close + 1
                    continue
                if c in " \t\r\n;{}":
                    break
                out.append(c)
                i += 1
            tokens.append(Token("".join(out), start_line, "word"))
    return tokens


def parse_directives(text: str) -> tuple[Directive, ...]:
    """Parse configuration text into a tree of directives."""
    tokens = tokenize(text)
    pos = 0

    def block(depth: int, opened_at: int) -> tuple[Directive, ...]:
        nonlocal pos
        out: list[Directive] = []
        while pos < len(tokens):
            tok = tokens[pos]
            if tok.kind == "}":
                if depth == 0:
                    raise ConfigError('unexpected "}"', line=tok.line)
                pos += 1
                return tuple(out)
            if tok.kind != "word":
                raise ConfigError(f'unexpected "{tok.text}"', line=tok.line)
            name, line = tok.text, tok.line
            pos += 1
            args: list[str] = []
            while pos < len(tokens) and tokens[pos].kind == "word":
                args.append(tokens[pos].text)
                pos += 1
            if pos >= len(tokens):
                raise ConfigError(
                    f'unexpected end of file, expecting ";" or "}}" after "{name}"', line=line
                )
            end = tokens[pos]
            pos += 1
            if end.kind == ";":
                out.append(Directive(name, tuple(args), line))
            elif end.kind == "{":
                if depth >= 32:
                    raise ConfigError("blocks nested more than 32 deep", line=end.line)
                out.append(Directive(name, tuple(args), line, block(depth + 1, end.line)))
            else:
                raise ConfigError(f'unexpected "}}" after "{name}": missing ";"', line=end.line)
        if depth:
            raise ConfigError('unexpected end of file, expecting "}"', line=opened_at)
        return tuple(out)

    return block(0, 0)
