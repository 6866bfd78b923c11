"""PCRE server_name regexes (nginx's ``~...``) translated to Python ``re``.

Named groups ``(?<name>...)``, ``(?'name'...)`` and ``(?P<name>...)`` become Python's
``(?P<name>...)``, ``\\k<name>`` a back reference, ``\\z`` becomes ``\\Z`` and PCRE's ``\\Z``
``(?=\\n?\\Z)``; POSIX classes such as ``[[:digit:]]`` are expanded. Constructs with no Python
equivalent (``\\K``, ``\\G``, ``\\R``, ``\\X``, ``\\h``, ``\\p{..}``, ``(?|``, recursion,
``(*VERB)``, ``\\Q...\\E``) raise :class:`~lbkit.ConfigError` naming the construct.
"""

from __future__ import annotations

import re

from lbkit.errors import ConfigError

__all__ = ["compile_server_regex", "translate_pcre"]

_POSIX = {
    "alpha": "a-zA-Z",
    "digit": "0-9",
    "alnum": "a-zA-Z0-9",
    "upper": "A-Z",
    "lower": "a-z",
    "space": r"\s",
    "xdigit": "0-9A-Fa-f",
    "word": r"\w",
    "punct": r"!-/:-@\[-`{-~",
}

_UNSUPPORTED = [
    (r"\\K", r"\K (reset match start)"),
    (r"\\G", r"\G (anchor at previous match)"),
    (r"\\R", r"\R (any newline)"),
    (r"\\X", r"\X (extended grapheme)"),
    (r"\\[hHvV]", r"\h / \v (horizontal / vertical space)"),
    (r"\\[pP]\{?", r"\p{...} (Unicode properties)"),
    (r"\(\?\|", "(?| (branch reset)"),
    (r"\(\?(?:R|[+-]?\d+|&\w+|P>\w+)\)", "recursion (?R) / subroutine calls"),
    (r"\(\*[A-Z_]+", "(*VERB) control verbs"),
    (r"\\Q", r"\Q...\E quoting"),
    (r"\\[gk]\{", r"\g{...} / \k{...} back references"),
    (r"\\g-?\d", r"\g relative back references"),
]


def translate_pcre(pattern: str) -> str:
    """Rewrite a PCRE pattern as a Python ``re`` pattern, or raise ConfigError."""
    for bad, label in _UNSUPPORTED:
        m = re.search(r"(?<!\\)(?:\\\\)*" + bad, pattern)
        if m:
            raise ConfigError(
                f"server_name regex {pattern!r} uses {label}, which Python's re cannot express"
            )
    out = re.sub(r"\(\?<([A-Za-z_]\w*)>", r"(?P<\1>", pattern)
    out = re.sub(r"\(\?'([A-Za-z_]\w*)'", r"(?P<\1>", out)
    out = re.sub(r"\\k<([A-Za-z_]\w*)>", r"(?P=\1)", out)
    out = re.sub(r"\\k'([A-Za-z_]\w*)'", r"(?P=\1)", out)

    def posix(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in _POSIX:
            raise ConfigError(f"server_name regex {pattern!r}: unknown POSIX class [:{name}:]")
        return _POSIX[name]

    out = re.sub(r"\[:(\w+):\]", posix, out)
    out = re.sub(r"(?<!\\)((?:\\\\)*)\\Z", r"\1(?=\\n?\\Z)", out)
    return re.sub(r"(?<!\\)((?:\\\\)*)\\z", r"\1\\Z", out)


def compile_server_regex(pattern: str) -> re.Pattern[str]:
    """Compile a server_name regex the way nginx 1.22 does: caseless only when the pattern
    has an uppercase letter (the host it runs on is already lowercase)."""
    translated = translate_pcre(pattern)
    # PCRE without UTF mode: \w, \d, \s and caseless matching are ASCII-only.
    flags = re.ASCII | (re.IGNORECASE if any("A" <= c <= "Z" for c in pattern) else 0)
    try:
        return re.compile(translated, flags)
    except re.error as exc:
        raise ConfigError(f"invalid server_name regex {pattern!r}: {exc}") from None
