"""nginx ``server_name`` regexes (``~...``): PCRE2 itself when installed, else Python ``re``.

With the ``pcre2`` package (``pip install 'lbkit[pcre]'``) patterns are compiled by PCRE2
as nginx 1.22 compiles them: on bytes, without UTF mode, caseless only when the pattern has
an uppercase letter, with PCRE2's match limit (nginx logs ``pcre2_match() failed: -47`` and
closes the connection; lbkit raises :class:`~lbkit.RegexLimitError` for that request).

Without it, patterns are translated to Python ``re``: named groups ``(?<name>...)``,
``(?'name'...)`` become ``(?P<name>...)``, ``\\k<name>`` a back reference, ``\\Q...\\E`` an
escaped literal, ``\\z``/``\\Z`` and POSIX classes their equivalents. Constructs with no
Python equivalent (``\\p{..}``, ``\\K``, recursion, ``(*VERB)``...) raise
:class:`~lbkit.ConfigError` naming the construct and the extra that handles them. ``re``
cannot be interrupted, so the fallback bounds the work instead: from the pattern's shape
(nested or consecutive unbounded repeats) it derives the longest host it will run on
(:attr:`ServerRegex.max_host`), and a longer host raises :class:`~lbkit.RegexLimitError`
naming that bound.
"""

from __future__ import annotations

import importlib
import re
from typing import Any, Literal

from lbkit.errors import ConfigError, RegexLimitError

__all__ = [
    "REGEX_ENGINES",
    "ServerRegex",
    "compile_regex",
    "compile_server_regex",
    "default_engine",
    "low_match",
    "pcre2_module",
    "pcre2_source",
    "pcre2_subject",
    "translate_pcre",
]

Engine = Literal["auto", "pcre2", "re"]
#: Accepted values of ``regex_engine=``.
REGEX_ENGINES: tuple[str, ...] = ("auto", "pcre2", "re")
#: Work the ``re`` fallback allows one match, in backtracking steps (about 0.1 s).
FALLBACK_STEP_BUDGET = 2_000_000

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
    (r"\\[gk]\{", r"\g{...} / \k{...} back references"),
    (r"\\g-?\d", r"\g relative back references"),
]


def _pcre2() -> Any:
    try:
        return importlib.import_module("pcre2")
    except ImportError:
        return None


def default_engine() -> str:
    """``"pcre2"`` when the pcre2 package is importable, else ``"re"``."""
    return "pcre2" if _pcre2() is not None else "re"


def _unquote(pattern: str) -> str:
    """Replace each ``\\Q...\\E`` (to ``\\E`` or the end) by the same text escaped."""
    out: list[str] = []
    i, n = 0, len(pattern)
    in_class = False
    while i < n:
        c = pattern[i]
        if c == "\\" and i + 1 < n:
            if pattern[i + 1] == "Q":
                end = pattern.find("\\E", i + 2)
                end = n if end < 0 else end
                text = pattern[i + 2 : end]
                out.append("".join("\\" + ch for ch in text) if in_class else re.escape(text))
                i = end + 2
                continue
            if pattern[i + 1] == "E":  # a lone \E is ignored by PCRE
                i += 2
                continue
            out.append(pattern[i : i + 2])
            i += 2
            continue
        if c == "[" and not in_class:
            in_class = True
            out.append(c)
            i += 1
            if i < n and pattern[i] == "^":
                out.append("^")
                i += 1
            if i < n and pattern[i] == "]":  # a leading ] is a literal
                out.append("\\]")
                i += 1
            continue
        if c == "]" and in_class:
            in_class = False
        out.append(c)
        i += 1
    return "".join(out)


def translate_pcre(pattern: str) -> str:
    """Rewrite a PCRE pattern as a Python ``re`` pattern, or raise ConfigError."""
    pattern = _unquote(pattern)
    for bad, label in _UNSUPPORTED:
        m = re.search(r"(?<!\\)(?:\\\\)*" + bad, pattern)
        if m:
            raise ConfigError(
                f"server_name regex {pattern!r} uses {label}, which Python's re cannot express: "
                "install PCRE2 support (pip install 'lbkit[pcre]')"
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


class ServerRegex:
    """One compiled server_name regex: ``search(host)`` -> ``(captures, named)`` or None.

    ``groups`` is its number of capture groups; ``engine`` is ``"pcre2"`` or ``"re"``;
    ``max_host`` the longest host the ``re`` fallback runs it on (None: no bound needed).
    """

    __slots__ = (
        "_groupindex",
        "_low",
        "_search",
        "_substring",
        "caseless",
        "engine",
        "groups",
        "max_host",
        "pattern",
        "source",
    )

    def __init__(self, pattern: str, engine: str, *, caseless: bool) -> None:
        self.pattern = pattern
        self.engine = engine
        self.caseless = caseless
        self.max_host: int | None = None
        self._low: Any = None
        self._substring: Any = None
        self._groupindex: dict[str, int] = {}
        #: The text the engine compiled: PCRE2's bytes, or the pattern translated for ``re``.
        self.source: str | bytes
        if engine == "pcre2":
            self.source = pcre2_source(pattern)
            compiled, self._low = _compile_pcre2(pattern, caseless)
            self._search, self.groups = compiled.search, int(compiled.groups)
            if self._low is not None:
                self._substring = pcre2_module()._cy.match_substring_bynumber
                self._groupindex = {str(k): int(v) for k, v in compiled.groupindex.items()}
        else:
            compiled = _compile_re(pattern, caseless)
            self.source = compiled.pattern
            self.groups = compiled.groups
            self.max_host = _fallback_bound(compiled)
            self._search = compiled.search

    def search(self, host: str) -> tuple[tuple[str, ...], dict[str, str]] | None:
        """Captures (``""`` for a group that did not take part) and named captures, or None.

        Raises :class:`~lbkit.RegexLimitError` when the engine's bound stops the match.
        """
        if self.max_host is not None and len(host) > self.max_host:
            raise RegexLimitError(
                f"server_name regex ~{self.pattern} is not run on a host of {len(host)} "
                f"characters: Python's re fallback bounds this pattern's backtracking to "
                f"hosts of {self.max_host} (install PCRE2 support: pip install 'lbkit[pcre]')"
            )
        if self.engine == "pcre2":
            return self._pcre2_search(host)
        m = self._search(host)
        if m is None:
            return None
        groups = tuple("" if g is None else g for g in m.groups())
        return groups, {k: ("" if v is None else v) for k, v in m.groupdict().items()}

    def _pcre2_search(self, host: str) -> tuple[tuple[str, ...], dict[str, str]] | None:
        subject = pcre2_subject(host)
        try:
            if self._low is not None:  # no Match object: most regexes miss most hosts
                data = self._low(subject)
                if data is None:
                    return None
                substring = self._substring
                found = [substring(data, subject, g) for g in range(1, self.groups + 1)]
            else:
                m = self._search(subject)
                if m is None:
                    return None
                found = list(m.groups())
        except Exception as exc:  # pcre2.LibraryError: match or depth limit
            raise RegexLimitError(
                f"server_name regex ~{self.pattern} stopped on this host: PCRE2 {exc} "
                "(nginx: pcre2_match() failed, connection closed)"
            ) from None
        groups = tuple("" if g is None else g.decode("latin-1") for g in found)
        # as the binding's groupdict: each name takes the group the name table gives it
        named = {name: groups[number - 1] for name, number in self._groupindex.items()}
        return groups, named

    def __repr__(self) -> str:
        return f"<ServerRegex ~{self.pattern} engine={self.engine}>"


def pcre2_subject(host: str) -> bytes:
    """The bytes PCRE2 matches for a host (or an nginx-decoded URI)."""
    try:
        return host.encode("latin-1")  # hosts and nginx-decoded URIs: one char a byte
    except UnicodeEncodeError:
        return host.encode("utf-8", "surrogateescape")  # text: the bytes a client sends


def pcre2_source(pattern: str) -> bytes:
    """The bytes PCRE2 compiles for a pattern (nginx reads its config as bytes)."""
    return pattern.encode("latin-1", "backslashreplace")


def pcre2_module() -> Any:
    """The ``pcre2`` module, or ConfigError naming the extra that installs it."""
    pcre2 = _pcre2()
    if pcre2 is None:
        raise ConfigError("regex_engine='pcre2' needs the pcre2 package: pip install 'lbkit[pcre]'")
    return pcre2


def _compile_pcre2(pattern: str, caseless: bool) -> tuple[Any, Any]:
    pcre2 = pcre2_module()
    flags = pcre2.IGNORECASE if caseless else 0
    try:
        compiled = pcre2.compile(pcre2_source(pattern), flags)
    except Exception as exc:
        raise ConfigError(f"invalid server_name regex {pattern!r}: PCRE2 says {exc}") from None
    return compiled, low_match(pcre2, compiled)


def low_match(pcre2: Any, compiled: Any) -> Any:
    """``subject -> match data or None`` through the binding's low-level call, or None.

    ``Pattern.search`` builds a Match object (and its group accessors loop in Python) on
    every call; the router needs a yes/no and the groups by number, so it calls the
    binding's ``_cy.match`` directly when that behaves as expected on a probe (else None:
    the public API is used alone).
    """
    cy = getattr(pcre2, "_cy", None)
    code = getattr(compiled, "_pcre2_code", None)
    context = getattr(pcre2, "_EMPTY_MATCH_CONTEXT", None)
    if cy is None or code is None or context is None or compiled.callout is not None:
        return None
    match = cy.match

    def low(subject: bytes) -> Any:
        return match(code, subject, len(subject), 0, context, 0)[0]

    try:
        for probe in (b"", b"a.b"):
            data, m = low(probe), compiled.search(probe)
            if (data is None) != (m is None) or (
                m is not None and _low_groups(pcre2, data, probe, compiled.groups) != m.groups()
            ):
                return None
    except Exception:
        return None
    return low


def _low_groups(pcre2: Any, data: Any, subject: bytes, groups: int) -> tuple[bytes | None, ...]:
    substring = pcre2._cy.match_substring_bynumber
    return tuple(substring(data, subject, g) for g in range(1, groups + 1))


def _compile_re(pattern: str, caseless: bool) -> re.Pattern[str]:
    translated = translate_pcre(pattern)
    # PCRE without UTF mode: \w, \d, \s and caseless matching are ASCII-only.
    flags = re.ASCII | (re.IGNORECASE if caseless else 0)
    try:
        return re.compile(translated, flags)
    except re.error as exc:
        raise ConfigError(f"invalid server_name regex {pattern!r}: {exc}") from None
    except (RecursionError, OverflowError) as exc:
        raise ConfigError(f"invalid server_name regex {pattern!r}: too complex ({exc})") from None


def _fallback_bound(compiled: re.Pattern[str]) -> int | None:
    """The longest host on which ``compiled`` stays within FALLBACK_STEP_BUDGET, or None.

    A repeat inside a repeat (or over alternatives) may backtrack exponentially: 2**n
    steps; k unbounded repeats in a row polynomially: n**k (one more for an unanchored
    search, which retries at every position).
    """
    try:
        from re import _parser  # type: ignore[attr-defined]

        tree = _parser.parse(compiled.pattern, compiled.flags)
    except Exception:  # pragma: no cover - the pattern compiled, so it parses
        return 16
    nested, count = _shape(list(tree))
    anchored = (
        bool(tree.data) and str(tree.data[0][0]) == "AT" and "BEGINNING" in str(tree.data[0][1])
    )
    if nested:
        bound = FALLBACK_STEP_BUDGET.bit_length() - 1
    else:
        k = count + (0 if anchored else 1)
        if k <= 1:
            return None
        bound = int(FALLBACK_STEP_BUDGET ** (1 / k))
    return max(bound, 16)


_LONG = 64  # a repeat allowing more than this many iterations counts as unbounded


def _shape(items: list[Any]) -> tuple[bool, int]:
    """(a long repeat nests a long repeat or alternatives, number of long repeats)."""
    nested = False
    count = 0
    for op, arg in items:
        name = str(op)
        if name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
            _low, high, body = arg
            inner_nested, inner = _shape(list(body))
            long_repeat = high > _LONG
            if long_repeat:
                count += 1
                if inner or _has_branch(list(body)):
                    nested = True
            nested = nested or inner_nested
            count += inner
        elif name == "SUBPATTERN":
            inner_nested, inner = _shape(list(arg[-1]))
            nested, count = nested or inner_nested, count + inner
        elif name == "BRANCH":
            for alt in arg[1]:
                inner_nested, inner = _shape(list(alt))
                nested, count = nested or inner_nested, count + inner
        elif name in ("ASSERT", "ASSERT_NOT"):
            inner_nested, inner = _shape(list(arg[1]))
            nested, count = nested or inner_nested, count + inner
        elif name == "ATOMIC_GROUP":
            inner_nested, inner = _shape(list(arg))
            nested, count = nested or inner_nested, count + inner
    return nested, count


def _has_branch(items: list[Any]) -> bool:
    for op, arg in items:
        name = str(op)
        if name == "BRANCH":
            return True
        if name == "SUBPATTERN" and _has_branch(list(arg[-1])):
            return True
    return False


def compile_server_regex(pattern: str, *, engine: str = "auto") -> ServerRegex:
    """Compile a server_name regex (without its ``~``) the way nginx 1.22 does.

    Caseless only when the pattern has an uppercase letter (the host it runs on is already
    lowercase). ``engine``: ``"pcre2"``, ``"re"`` or ``"auto"`` (PCRE2 when installed).
    """
    caseless = any("A" <= c <= "Z" for c in pattern)
    return compile_regex(pattern, caseless=caseless, engine=engine)


def compile_regex(pattern: str, *, caseless: bool, engine: str = "auto") -> ServerRegex:
    """Compile an nginx regex (a server name or a ``location ~`` / ``~*``)."""
    if engine not in REGEX_ENGINES:
        raise ConfigError(f"invalid regex_engine={engine!r}: expected one of {REGEX_ENGINES}")
    if engine == "auto":
        engine = default_engine()
    return ServerRegex(pattern, engine, caseless=caseless)
