"""nginx ``server_name`` tables: exact, leading and trailing wildcards, regexes, precedence.

Lookup order, as ``ngx_http_find_virtual_server``: an exact name; else the longest leading
wildcard (``*.example.com``; ``.example.com`` is both ``example.com`` and
``*.example.com``); else the longest trailing wildcard (``www.example.*``); else the first
regex in configuration order (only for a non-empty host); else no match (the caller falls
back to the default server). Exact and wildcard lookups are dict lookups per label, so
their cost does not grow with the number of names.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Generic, TypeVar

import attrs

from lbkit.errors import ConfigError
from lbkit.routing.regex import compile_server_regex

__all__ = ["NameMatch", "ServerNames"]

T = TypeVar("T")


@attrs.frozen(slots=True)
class NameMatch(Generic[T]):
    """Which entry matched a host, how, and the regex captures when a regex matched."""

    value: T
    kind: str  # "exact", "wildcard_head", "wildcard_tail", "regex"
    name: str
    captures: tuple[str, ...] = ()
    named: dict[str, str] = attrs.field(factory=dict)


def _check_name(name: str) -> None:
    if name.startswith("*") and (len(name) < 3 or name[1] != "."):
        raise ConfigError(f'server name "{name}" is invalid: "*" must be followed by "."')
    if name.startswith(".") and len(name) < 2:
        raise ConfigError(f'server name "{name}" is invalid')


class ServerNames(Generic[T]):
    """A table of server names mapping to values (e.g. server block indexes).

    As in nginx, the first entry for a name wins; later duplicates are ignored.
    """

    def __init__(self) -> None:
        self._exact: dict[str, T] = {}
        # head wildcards by reversed labels: "*.example.com" -> ("com", "example")
        self._head: dict[tuple[str, ...], T] = {}
        self._head_names: dict[tuple[str, ...], str] = {}
        self._head_lengths: list[int] = []
        # tail wildcards by labels: "www.example.*" -> ("www", "example")
        self._tail: dict[tuple[str, ...], T] = {}
        self._tail_names: dict[tuple[str, ...], str] = {}
        self._tail_lengths: list[int] = []
        self._regexes: list[tuple[re.Pattern[str], str, T]] = []
        self.ignored: list[str] = []

    def add(self, name: str, value: T) -> None:
        """Add one server_name entry (``~`` starts a regex)."""
        if not name:
            self._add_exact("", value)
            return
        _check_name(name)
        if name[0] == "~":
            if len(name) == 1:
                raise ConfigError(f'empty regex in server name "{name}"')
            self._regexes.append((compile_server_regex(name[1:]), name, value))
            return
        name = name.lower()
        if name.startswith("."):
            self._add_exact(name[1:], value, alias=name)
            self._add_head(tuple(reversed(name[1:].split("."))), name, value)
        elif name.startswith("*."):
            if "*" in name[2:]:
                raise ConfigError(f'invalid server name or wildcard "{name}"')
            self._add_head(tuple(reversed(name[2:].split("."))), name, value)
        elif name.endswith(".*"):
            if "*" in name[:-2]:
                raise ConfigError(f'invalid server name or wildcard "{name}"')
            self._add_tail(tuple(name[:-2].split(".")), name, value)
        elif "*" in name:
            raise ConfigError(
                f'invalid server name or wildcard "{name}": "*" only at the start ("*.") or '
                'the end (".*")'
            )
        else:
            self._add_exact(name, value)

    def add_many(self, names: Iterable[str], value: T) -> None:
        """Add several names for one value."""
        for name in names:
            self.add(name, value)

    def _add_exact(self, name: str, value: T, alias: str | None = None) -> None:
        if name in self._exact:
            self.ignored.append(alias or name)
            return
        self._exact[name] = value

    def _add_head(self, labels: tuple[str, ...], name: str, value: T) -> None:
        if labels in self._head:
            if not name.startswith("."):
                self.ignored.append(name)
            return
        self._head[labels] = value
        self._head_names[labels] = name
        if len(labels) not in self._head_lengths:
            self._head_lengths.append(len(labels))
            self._head_lengths.sort(reverse=True)

    def _add_tail(self, labels: tuple[str, ...], name: str, value: T) -> None:
        if labels in self._tail:
            self.ignored.append(name)
            return
        self._tail[labels] = value
        self._tail_names[labels] = name
        if len(labels) not in self._tail_lengths:
            self._tail_lengths.append(len(labels))
            self._tail_lengths.sort(reverse=True)

    def find(self, host: str) -> NameMatch[T] | None:
        """The entry nginx chooses for an already normalised host, or None."""
        if host in self._exact:
            return NameMatch(self._exact[host], "exact", host)
        if self._head or self._tail:
            labels = host.split(".")
            if self._head:
                rev = labels[::-1]
                for n in self._head_lengths:
                    # "*.example.com" needs at least one label before "example.com"
                    # (".example.com" also put "example.com" among the exact names)
                    if n < len(rev):
                        key = tuple(rev[:n])
                        if key in self._head:
                            return NameMatch(
                                self._head[key], "wildcard_head", self._head_names[key]
                            )
            if self._tail:
                for n in self._tail_lengths:
                    if n < len(labels):
                        key = tuple(labels[:n])
                        if key in self._tail:
                            return NameMatch(
                                self._tail[key], "wildcard_tail", self._tail_names[key]
                            )
        if host:
            for pattern, name, value in self._regexes:
                m = pattern.search(host)
                if m is not None:
                    groups = tuple("" if g is None else g for g in m.groups())
                    named = {k: ("" if v is None else v) for k, v in m.groupdict().items()}
                    return NameMatch(value, "regex", name, groups, named)
        return None

    def __len__(self) -> int:
        return len(self._exact) + len(self._head) + len(self._tail) + len(self._regexes)
