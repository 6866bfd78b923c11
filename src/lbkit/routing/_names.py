"""nginx ``server_name`` tables: exact, leading and trailing wildcards, regexes, precedence.

Lookup order, as ``ngx_http_find_virtual_server``: an exact name; else the longest leading
wildcard (``*.example.com``; ``.example.com`` is both ``example.com`` and
``*.example.com``); else the longest trailing wildcard (``www.example.*``); else the first
regex in configuration order (only for a non-empty host); else no match (the caller falls
back to the default server). Exact and wildcard lookups are dict lookups (for a
wildcard, usually one: see :meth:`WildcardTables.find`), so their cost does not grow with
the number of names.

Conflicts follow ``ngx_hash_add_key``: the first entry wins and the later one is ignored
with nginx's warning. ``*.x`` and ``.x`` share the wildcard key ``x``; ``.x`` also claims
the exact name ``x``, and it does so before its wildcard check: a ``.x`` ignored for its
wildcard half still claims ``x``, and a ``.x`` after an exact ``x`` is dropped entirely.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Generic, Literal, TypeVar

import attrs

from lbkit.errors import ConfigError
from lbkit.routing._host import ascii_lower
from lbkit.routing._regex import ServerRegex, compile_server_regex
from lbkit.routing._regex_scan import RegexScan

__all__ = [
    "NO_NAMED",
    "NameKind",
    "NameMatch",
    "ServerNames",
    "WildcardTables",
]

T = TypeVar("T")
#: How a name matched: an exact name, a leading or trailing wildcard, or a regex.
NameKind = Literal["exact", "wildcard_head", "wildcard_tail", "regex"]


class _EmptyNamed(dict[str, str]):
    """An empty ``dict`` that refuses changes: shared by every match without named
    captures, and still a dict to ``isinstance``, ``json.dumps`` and ``==``."""

    __slots__ = ()

    def _refuse(self, *args: object, **kwargs: object) -> None:
        raise TypeError("a match's named captures are read-only")

    __setitem__ = __delitem__ = __ior__ = _refuse  # type: ignore[assignment]
    clear = pop = popitem = setdefault = update = _refuse  # type: ignore[assignment]


#: The ``named`` of a match without named captures: empty and read-only, so it can be shared.
NO_NAMED: Mapping[str, str] = _EmptyNamed()


@attrs.frozen(slots=False)  # fills the instance dict: cheaper to build than slots (see RouteMatch)
class NameMatch(Generic[T]):
    """Which entry matched a host, how, and the regex captures when a regex matched.

    Exact and wildcard matches are built once per entry and shared (their ``named`` is a
    read-only empty dict); a regex match is new each time.
    """

    value: T
    kind: NameKind
    name: str
    captures: tuple[str, ...] = ()
    named: Mapping[str, str] = NO_NAMED


def _check_name(name: str) -> None:
    # ngx_http_core_server_name, then ngx_hash_add_key: at most one "*", no "..", no NUL;
    # ".x" is a head wildcard whatever follows; else "*" only as "*." or ".*"
    if name[:1] == "*" and (len(name) < 3 or name[1] != "."):
        raise ConfigError(f'server name "{name}" is invalid')
    if "\x00" in name or ".." in name or name.count("*") > 1 or name == ".":
        raise ConfigError(f'invalid server name or wildcard "{name}"')
    if "*" in name and not (
        name[:1] == "." or name.startswith("*.") or (len(name) > 2 and name.endswith(".*"))
    ):
        raise ConfigError(
            f'invalid server name or wildcard "{name}": "*" only at the start ("*.") or '
            'the end (".*")'
        )


V = TypeVar("V")


@attrs.frozen
class WildcardTables(Generic[V]):
    """The leading and trailing wildcard tables, and nginx's lookup in them (:meth:`find`).

    ``head`` maps the labels after ``*.`` (``example.com``) and ``tail`` those before
    ``.*`` (``www.example``), each with its numbers of labels, longest first; no key is
    empty. ``head_ends`` holds the last label of every head key. The tables may be
    filled after construction (a :class:`ServerNames` shares its own), but not while
    :meth:`find` runs.
    """

    head: Mapping[str, V]
    head_lengths: Sequence[int]
    tail: Mapping[str, V]
    tail_lengths: Sequence[int]
    head_ends: Collection[str]

    def find(self, host: str) -> V | None:
        """The longest leading wildcard matching ``host``, else the longest trailing one.

        A wildcard needs at least one label of the host before (head) or after (tail) its
        own.
        """
        # nginx's own first step: no head key ends with the host's last label, no leading
        # wildcard matches. Else the longest head key that can match is every label of
        # the host but the first: one partition and one dict lookup, and a hit there is
        # the longest; shorter keys are tried next, longest first (the last n labels,
        # split from their end, so a host of many labels costs no more). Likewise for the
        # tail, whose longest key is every label but the last.
        rest, _, last = host.rpartition(".")
        dots = -1
        if last in self.head_ends:
            head = self.head
            hit = head.get(host.partition(".")[2])
            if hit is not None:
                return hit
            dots = host.count(".")
            for n in self.head_lengths:
                if n < dots:
                    hit = head.get(".".join(host.rsplit(".", n)[1:]))
                    if hit is not None:
                        return hit
        tail = self.tail
        if tail:
            hit = tail.get(rest)
            if hit is not None:
                return hit
            if dots < 0:
                dots = host.count(".")
            for n in self.tail_lengths:
                if n < dots:
                    hit = tail.get(".".join(host.split(".", n)[:n]))
                    if hit is not None:
                        return hit
        return None


class ServerNames(Generic[T]):
    """A table of server names mapping to values (e.g. server block indexes).

    ``where`` names the listen socket in warnings (nginx: ``on 0.0.0.0:80``). ``ignored``
    lists the names dropped as conflicts, ``warnings`` nginx's message for each. Not for
    concurrent mutation; a built table is read-only and safe to share between threads.
    """

    def __init__(self, *, where: str = "0.0.0.0:80", regex_engine: str = "auto") -> None:
        self.where = where
        self.regex_engine = regex_engine
        # exact names, and every name "x" claimed by an exact "x" or a ".x" (nginx's keys_hash)
        self._exact: dict[str, NameMatch[T]] = {}
        self._claimed: set[str] = set()
        # head wildcards by the labels after "*.": "*.example.com" -> "example.com"
        self._head: dict[str, NameMatch[T]] = {}
        self._head_lengths: list[int] = []  # their numbers of labels, longest first
        # tail wildcards by the labels before ".*": "www.example.*" -> "www.example"
        self._tail: dict[str, NameMatch[T]] = {}
        self._tail_lengths: list[int] = []
        # the lookup over the four, filled as names are added
        self._head_ends: set[str] = set()  # the last label of each head key
        self._wild = WildcardTables(
            self._head, self._head_lengths, self._tail, self._tail_lengths, self._head_ends
        )
        self._regexes: list[tuple[ServerRegex, str, T]] = []
        self._scan: RegexScan[T] | None = None
        self._last_regex_groups: dict[T, int] = {}
        self.ignored: list[str] = []
        self.warnings: list[str] = []

    def add(self, name: str, value: T, *, line: int | None = None) -> None:
        """Add one server_name entry (``~`` starts a regex)."""
        if name[:1] == "~":
            if len(name) == 1:
                raise ConfigError(f'empty regex in server name "{name}"', line=line)
            try:
                regex = compile_server_regex(name[1:], engine=self.regex_engine)
            except ConfigError as exc:
                raise ConfigError(str(exc), line=line) from None
            self._regexes.append((regex, name, value))
            self._scan = None
            self._last_regex_groups[value] = regex.groups
            return
        try:
            _check_name(name)
        except ConfigError as exc:
            raise ConfigError(str(exc), line=line) from None
        key = ascii_lower(name)
        if key.startswith("."):
            core = key[1:]
            if core in self._claimed:  # checked before the wildcard: the whole name goes
                self._conflict(key, line)
                return
            self._claimed.add(core)
            if core in self._head:
                self._conflict(key, line)
                return
            self._exact.setdefault(core, NameMatch(value, "exact", core))
            self._head[core] = NameMatch(value, "wildcard_head", key)
            self._note_head(core)
        elif key.startswith("*."):
            core = key[2:]
            if core in self._head:
                self._conflict(key, line)
                return
            self._head[core] = NameMatch(value, "wildcard_head", key)
            self._note_head(core)
        elif key.endswith(".*"):
            core = key[:-2]
            if core in self._tail:
                self._conflict(key, line)
                return
            self._tail[core] = NameMatch(value, "wildcard_tail", key)
            self._note_length(self._tail_lengths, core.count(".") + 1)
        else:
            if key in self._claimed:
                self._conflict(key, line)
                return
            self._claimed.add(key)
            self._exact[key] = NameMatch(value, "exact", key)

    def _conflict(self, name: str, line: int | None) -> None:
        self.ignored.append(name)
        where = f" (line {line})" if line is not None else ""
        self.warnings.append(f'conflicting server name "{name}" on {self.where}, ignored{where}')

    def _note_head(self, core: str) -> None:
        self._note_length(self._head_lengths, core.count(".") + 1)
        self._head_ends.add(core.rpartition(".")[2])

    @staticmethod
    def _note_length(lengths: list[int], n: int) -> None:
        if n not in lengths:
            lengths.append(n)
            lengths.sort(reverse=True)

    def add_many(self, names: Iterable[str], value: T, *, line: int | None = None) -> None:
        """Add several names for one value."""
        for name in names:
            self.add(name, value, line=line)

    def find(self, host: str) -> NameMatch[T] | None:
        """The entry nginx chooses for an already normalised host, or None.

        A regex that hits its bound raises :class:`~lbkit.RegexLimitError`.
        """
        found = self._exact.get(host)
        if found is not None:
            return found
        found = self.find_wildcard(host)
        if found is not None or not host:
            return found
        return self.find_regex(host)

    @property
    def exact(self) -> Mapping[str, NameMatch[T]]:
        """The exact names (``.x`` claims ``x`` too), lowercase, with their shared matches."""
        return MappingProxyType(self._exact)

    @property
    def wildcards(self) -> WildcardTables[NameMatch[T]]:
        """The leading and trailing wildcard tables (read them, don't change them)."""
        return self._wild

    def find_wildcard(self, host: str) -> NameMatch[T] | None:
        """The longest leading wildcard matching ``host``, else the longest trailing one."""
        return self._wild.find(host)

    def find_regex(self, host: str) -> NameMatch[T] | None:
        """The first regex name in configuration order matching ``host``, with captures."""
        if not self._regexes:
            return None
        scan = self._scan
        if scan is None:
            scan = self.prepare()
        found = scan.first(host)
        if found is None:
            return None
        (_, name, value), captures, named = found
        return NameMatch(value, "regex", name, captures, named)

    def prepare(self) -> RegexScan[T]:
        """Build the regex scan now (else the first regex lookup builds it)."""
        scan = self._scan
        if scan is None:
            scan = self._scan = RegexScan(self._regexes)
        return scan

    def keeps_captures(self, value: T) -> bool:
        """Whether ``$1``.. are set for ``value``: its last regex name has capture groups."""
        return self._last_regex_groups.get(value, 0) > 0

    @property
    def regexes(self) -> list[ServerRegex]:
        """The compiled regex names, in configuration order."""
        return [r for r, _, _ in self._regexes]

    def __len__(self) -> int:
        return len(self._exact) + len(self._head) + len(self._tail) + len(self._regexes)
