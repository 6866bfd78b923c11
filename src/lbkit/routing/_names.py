"""nginx ``server_name`` tables: exact, leading and trailing wildcards, regexes, precedence.

Lookup order, as ``ngx_http_find_virtual_server``: an exact name; else the longest leading
wildcard (``*.example.com``; ``.example.com`` is both ``example.com`` and
``*.example.com``); else the longest trailing wildcard (``www.example.*``); else the first
regex in configuration order (only for a non-empty host); else no match (the caller falls
back to the default server). Exact and wildcard lookups are dict lookups per label, so
their cost does not grow with the number of names.

Conflicts follow ``ngx_hash_add_key``: the first entry wins and the later one is ignored
with nginx's warning. ``*.x`` and ``.x`` share the wildcard key ``x``; ``.x`` also claims
the exact name ``x``, and it does so before its wildcard check: a ``.x`` ignored for its
wildcard half still claims ``x``, and a ``.x`` after an exact ``x`` is dropped entirely.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Generic, Literal, TypeVar

import attrs

from lbkit.errors import ConfigError
from lbkit.routing._host import ascii_lower
from lbkit.routing._regex import ServerRegex, compile_server_regex

__all__ = ["NameKind", "NameMatch", "ServerNames"]

T = TypeVar("T")
#: How a name matched: an exact name, a leading or trailing wildcard, or a regex.
NameKind = Literal["exact", "wildcard_head", "wildcard_tail", "regex"]


@attrs.frozen(slots=True)
class NameMatch(Generic[T]):
    """Which entry matched a host, how, and the regex captures when a regex matched."""

    value: T
    kind: NameKind
    name: str
    captures: tuple[str, ...] = ()
    named: dict[str, str] = attrs.field(factory=dict)


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
        self._exact: dict[str, T] = {}
        self._claimed: set[str] = set()
        # head wildcards by reversed labels: "*.example.com" -> ("com", "example")
        self._head: dict[tuple[str, ...], tuple[T, str]] = {}
        self._head_lengths: list[int] = []
        # tail wildcards by labels: "www.example.*" -> ("www", "example")
        self._tail: dict[tuple[str, ...], tuple[T, str]] = {}
        self._tail_lengths: list[int] = []
        self._regexes: list[tuple[ServerRegex, str, T]] = []
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
            labels = tuple(reversed(core.split(".")))
            if labels in self._head:
                self._conflict(key, line)
                return
            self._exact.setdefault(core, value)
            self._head[labels] = (value, key)
            self._note_length(self._head_lengths, len(labels))
        elif key.startswith("*."):
            labels = tuple(reversed(key[2:].split(".")))
            if labels in self._head:
                self._conflict(key, line)
                return
            self._head[labels] = (value, key)
            self._note_length(self._head_lengths, len(labels))
        elif key.endswith(".*"):
            labels = tuple(key[:-2].split("."))
            if labels in self._tail:
                self._conflict(key, line)
                return
            self._tail[labels] = (value, key)
            self._note_length(self._tail_lengths, len(labels))
        else:
            if key in self._claimed:
                self._conflict(key, line)
                return
            self._claimed.add(key)
            self._exact[key] = value

    def _conflict(self, name: str, line: int | None) -> None:
        self.ignored.append(name)
        where = f" (line {line})" if line is not None else ""
        self.warnings.append(f'conflicting server name "{name}" on {self.where}, ignored{where}')

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
        exact = self._exact
        if host in exact:
            return NameMatch(exact[host], "exact", host)
        if self._head or self._tail:
            labels = host.split(".")
            if self._head:
                rev = labels[::-1]
                for n in self._head_lengths:
                    # "*.example.com" needs at least one label before "example.com"
                    # (".example.com" also put "example.com" among the exact names)
                    if n < len(rev):
                        hit = self._head.get(tuple(rev[:n]))
                        if hit is not None:
                            return NameMatch(hit[0], "wildcard_head", hit[1])
            if self._tail:
                for n in self._tail_lengths:
                    if n < len(labels):
                        hit = self._tail.get(tuple(labels[:n]))
                        if hit is not None:
                            return NameMatch(hit[0], "wildcard_tail", hit[1])
        if host:
            for regex, name, value in self._regexes:
                found = regex.search(host)
                if found is not None:
                    return NameMatch(value, "regex", name, found[0], found[1])
        return None

    def keeps_captures(self, value: T) -> bool:
        """Whether ``$1``.. are set for ``value``: its last regex name has capture groups."""
        return self._last_regex_groups.get(value, 0) > 0

    @property
    def regexes(self) -> list[ServerRegex]:
        """The compiled regex names, in configuration order."""
        return [r for r, _, _ in self._regexes]

    def __len__(self) -> int:
        return len(self._exact) + len(self._head) + len(self._tail) + len(self._regexes)
