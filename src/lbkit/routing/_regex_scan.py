"""Server-name regexes in configuration order, with one combined pass that rules out a miss.

nginx runs the regex names one by one and takes the first that matches, so a host that
matches none pays for every regex. lbkit first runs one alternation of them all
(``(?:r1)|(?i:r2)|...``, each with its own case rule): when it finds nothing, no regex
matches and the scan is skipped. When it finds something, or stops at its own work bound,
the regexes run one by one exactly as nginx runs them, so the winner, its captures and
any match-limit error are nginx's. Hosts longer than a DNS name skip the combined pass.

A regex whose meaning could change inside the alternation is left out of it and always
run on its own, in its place: back references and subroutine calls (group numbers
shift), ``\\Q`` (it could quote the closing parenthesis), extended mode (a ``#`` comment
could swallow it), ``(*VERB)``\\s and callouts; for ``re`` also a group name already used
by an earlier regex. PCRE2 runs the alternation under a lower match limit, so a hostile
host costs it little before the one-by-one scan; ``re`` runs it only on hosts no longer
than every included regex's length bound (:attr:`ServerRegex.max_host`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

from lbkit.routing._regex import ServerRegex, low_match, pcre2_module, pcre2_subject

__all__ = ["PREFILTER_MATCH_LIMIT", "PREFILTER_MAX_HOST", "RegexScan"]

T = TypeVar("T")
#: PCRE2's match limit for the combined pass (the one-by-one scan keeps PCRE2's default).
PREFILTER_MATCH_LIMIT = 100_000
#: Longest host the combined pass runs on (a DNS name has at most 253 characters). On a
#: longer one it would lose to the one-by-one scan, whose regexes each skip hosts without
#: their required characters at once; such hosts are scanned one by one, as nginx does.
PREFILTER_MAX_HOST = 255

_UNSAFE = re.compile(
    r"\\[1-9gkQ]"  # back references, \g subroutines, \Q quoting
    r"|\(\?(?:P[=>]|[&(R]|C|[+-]?[0-9]|[a-zA-Z^-]*x)"  # refs, calls, conditions, callouts, (?x)
    r"|\(\*"  # (*VERB) and (*LIMIT...) settings
)

Entry = tuple[ServerRegex, str, T]


class RegexScan(Generic[T]):
    """Regex entries ``(regex, name, value)`` in configuration order; ``first(host)`` is
    the first that matches (with its captures), as nginx's scan finds it."""

    __slots__ = ("_loose", "_max_host", "_none_match", "entries")

    def __init__(self, entries: Sequence[Entry[T]]) -> None:
        self.entries: tuple[Entry[T], ...] = tuple(entries)
        covered, none_match = _combine([regex for regex, _, _ in self.entries])
        self._none_match: Callable[[str], bool] | None = none_match
        #: the entries the combined pass does not answer for, in configuration order
        self._loose = tuple(e for e, c in zip(self.entries, covered, strict=True) if not c)
        bounds = [r.max_host for (r, _, _), c in zip(self.entries, covered, strict=True) if c]
        self._max_host = min([PREFILTER_MAX_HOST, *(b for b in bounds if b is not None)])

    @property
    def combined(self) -> int:
        """How many regexes the combined pass answers for (0: no combined pass)."""
        return 0 if self._none_match is None else len(self.entries) - len(self._loose)

    def first(self, host: str) -> tuple[Entry[T], tuple[str, ...], dict[str, str]] | None:
        """The first entry matching ``host``, its captures and named captures, or None.

        Raises :class:`~lbkit.RegexLimitError` where the one-by-one scan would.
        """
        entries = self.entries
        none_match = self._none_match
        if none_match is not None and len(host) <= self._max_host and none_match(host):
            entries = self._loose
        for entry in entries:
            found = entry[0].search(host)
            if found is not None:
                return entry, found[0], found[1]
        return None


def _combinable(regex: ServerRegex) -> bool:
    source = regex.source
    text = source.decode("latin-1") if isinstance(source, bytes) else source
    return _UNSAFE.search(text) is None


def _wrap(regex: ServerRegex) -> str | bytes:
    source = regex.source
    if isinstance(source, bytes):
        return (b"(?i:" if regex.caseless else b"(?:") + source + b")"
    return ("(?i:" if regex.caseless else "(?:") + source + ")"


def _combine(regexes: Sequence[ServerRegex]) -> tuple[list[bool], Callable[[str], bool] | None]:
    """Which regexes the combined pass covers, and its "nothing matches" test (or None)."""
    covered = [False] * len(regexes)
    engines = {r.engine for r in regexes}
    if len(regexes) < 2 or len(engines) != 1:
        return covered, None
    compile_one = _compile_pcre2 if engines == {"pcre2"} else _compile_re
    parts: list[Any] = []
    groups = 0
    names: set[str] = set()
    for i, regex in enumerate(regexes):
        if not _combinable(regex):
            continue
        wrapped = _wrap(regex)
        compiled = compile_one([wrapped])
        if compiled is None or compiled[1] != regex.groups:
            continue  # the wrapper changed the pattern's structure: keep it on its own
        own_names = compiled[2]
        if regex.engine == "re" and names & own_names:
            continue  # re refuses a group name twice
        names |= own_names
        parts.append(wrapped)
        groups += regex.groups
        covered[i] = True
    if len(parts) < 2:
        return [False] * len(regexes), None
    compiled = compile_one(parts)
    if compiled is None or compiled[1] != groups:
        return [False] * len(regexes), None
    return covered, compiled[0]


def _compile_pcre2(parts: list[Any]) -> tuple[Callable[[str], bool], int, set[str]] | None:
    pcre2 = pcre2_module()
    # (?J): group names may repeat across regexes (none of them is referred to by name)
    source = b"(*LIMIT_MATCH=%d)(?J)" % PREFILTER_MATCH_LIMIT + b"|".join(parts)
    try:
        compiled = pcre2.compile(source)
    except Exception:  # pcre2.PatternError
        return None
    low = low_match(pcre2, compiled)
    search = compiled.search

    def none_match(host: str) -> bool:
        subject = pcre2_subject(host)
        try:
            if low is not None:
                return low(subject) is None
            return search(subject) is None
        except Exception:  # pcre2.LibraryError: the prefilter's limit; scan one by one
            return False

    return none_match, int(compiled.groups), set()


def _compile_re(parts: list[Any]) -> tuple[Callable[[str], bool], int, set[str]] | None:
    # The ``re`` fallback compiles with re.ASCII (PCRE without UTF mode), see _regex.py
    try:
        compiled = re.compile("|".join(parts), re.ASCII)
    except (re.error, RecursionError, OverflowError):
        return None
    search = compiled.search

    def none_match(host: str) -> bool:
        return search(host) is None

    return none_match, compiled.groups, set(compiled.groupindex)
