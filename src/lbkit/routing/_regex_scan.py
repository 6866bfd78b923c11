"""Server-name regexes in configuration order, with combined passes that rule out misses.

nginx runs the regex names one by one and takes the first that matches, so a host that
matches none pays for every regex. With PCRE2 lbkit first runs one alternation of them all
(``(?:r1)|(?i:r2)|...``, each with its own case rule): when it finds nothing, no regex
matches and the scan is skipped. When it finds something, blocks of the alternation tell
which leading regexes surely miss; the rest run one by one exactly as nginx runs them, so
the winner, its captures and any match-limit error are nginx's.

A regex whose meaning could change inside the alternation is left out of it and always
run on its own, in its place: back references and subroutine calls (group numbers
shift), ``\\Q`` (it could quote the closing parenthesis), extended mode (a ``#`` comment
could swallow it), ``(*VERB)`` verbs and callouts. The alternation runs under a lower match
limit, and only on hosts no longer than a DNS name: beyond that it would lose to the
one-by-one scan, whose regexes each reject a host without their required characters at
once. Python's ``re`` gains little from an alternation (it tries the branches one after
the other at every position), so the ``re`` fallback scans one by one, as nginx does.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Generic, TypeVar

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
    the first that matches (with its captures), as nginx's scan finds it.

    When the combined pass finds something, blocks of the combined regexes (1, 2, 4... from
    the left, then halves of the block that may match; each alternation built on first use)
    skip the leading ones that cannot match: the one-by-one scan starts at the first that
    may (the regexes left out of the alternation before it still run in their place).
    """

    __slots__ = ("_covered", "_loose", "_parts", "_tests", "entries")

    def __init__(self, entries: Sequence[Entry[T]]) -> None:
        self.entries: tuple[Entry[T], ...] = tuple(entries)
        covered, parts = _combine([regex for regex, _, _ in self.entries])
        #: config positions of the regexes the alternation answers for, and their parts
        self._covered = [i for i, c in enumerate(covered) if c]
        self._parts = parts
        #: "nothing matches" tests of alternations over covered[lo:hi], by (lo, hi)
        self._tests: dict[tuple[int, int], Callable[[str], bool] | None] = {}
        #: the entries the alternation does not answer for, with their positions
        self._loose = [
            (i, e) for i, (e, c) in enumerate(zip(self.entries, covered, strict=True)) if not c
        ]
        if self._covered:
            self._test(0, len(self._covered))  # the whole alternation, built now

    @property
    def combined(self) -> int:
        """How many regexes the combined pass answers for (0: no combined pass)."""
        return len(self._covered) if self._tests.get((0, len(self._covered))) else 0

    def _test(self, lo: int, hi: int) -> Callable[[str], bool] | None:
        key = (lo, hi)
        if key not in self._tests:  # (threads may build one twice: the same test)
            built = _compile_pcre2(self._parts[lo:hi])
            self._tests[key] = None if built is None else built[0]
        return self._tests[key]

    def _first_candidate(self, host: str) -> int:
        """How many leading covered regexes surely miss ``host`` (all: none matches)."""
        lo, n = 0, len(self._covered)
        if not n or len(host) > PREFILTER_MAX_HOST:
            return 0
        whole = self._test(0, n)
        if whole is None:
            return 0
        if whole(host):
            return n
        # something may match: blocks of 1, 2, 4... regexes from the left until one may
        # (a match among the first regexes costs one or two tests), then halve that block
        size, hi = 1, n
        while lo < n:
            hi = min(lo + size, n)
            block = self._test(lo, hi)
            if block is None or not block(host):
                break
            lo, size = hi, size * 2
        while hi - lo > 1:
            mid = (lo + hi) // 2
            left = self._test(lo, mid)
            if left is not None and left(host):
                lo = mid  # (a sure "no" skips the left half; a limit or a hit does not)
            else:
                hi = mid
        return lo

    def first(self, host: str) -> tuple[Entry[T], tuple[str, ...], dict[str, str]] | None:
        """The first entry matching ``host``, its captures and named captures, or None.

        Raises :class:`~lbkit.RegexLimitError` where the one-by-one scan would.
        """
        skip = self._first_candidate(host)
        entries = self.entries
        if skip == 0:
            scan: Iterable[Entry[T]] = entries
        else:
            start = self._covered[skip] if skip < len(self._covered) else len(entries)
            loose = [e for i, e in self._loose if i < start]
            scan = itertools.chain(loose, entries[start:])
        for entry in scan:
            found = entry[0].search(host)
            if found is not None:
                return entry, found[0], found[1]
        return None


def _combinable(regex: ServerRegex) -> bool:
    source = regex.source
    text = source.decode("latin-1") if isinstance(source, bytes) else source
    return _UNSAFE.search(text) is None


def _wrap(regex: ServerRegex) -> bytes:
    source = regex.source
    assert isinstance(source, bytes)  # (PCRE2's pattern bytes)
    return (b"(?i:" if regex.caseless else b"(?:") + source + b")"


Compiled = tuple[Callable[[str], bool], int]


def _combine(regexes: Sequence[ServerRegex]) -> tuple[list[bool], list[bytes]]:
    """Which regexes an alternation covers (PCRE2 only), and their wrapped parts."""
    covered = [False] * len(regexes)
    if len(regexes) < 2 or any(r.engine != "pcre2" for r in regexes):
        return covered, []
    parts: list[bytes] = []
    groups = 0
    for i, regex in enumerate(regexes):
        if not _combinable(regex):
            continue
        wrapped = _wrap(regex)
        compiled = _compile_pcre2([wrapped])
        if compiled is None or compiled[1] != regex.groups:
            continue  # the wrapper changed the pattern's structure: keep it on its own
        parts.append(wrapped)
        groups += regex.groups
        covered[i] = True
    compiled = _compile_pcre2(parts) if len(parts) >= 2 else None
    if compiled is None or compiled[1] != groups:
        return [False] * len(regexes), []
    return covered, parts


def _compile_pcre2(parts: list[bytes]) -> Compiled | None:
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

    return none_match, int(compiled.groups)
