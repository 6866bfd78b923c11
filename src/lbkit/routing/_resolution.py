"""The resolver's decisions, without I/O: names, cache, TTL, stale answers, what to ask.

:class:`ResolutionCore` is shared by the blocking :class:`~lbkit.routing.Resolver` and the
asyncio :class:`~lbkit.routing.AsyncResolver`; they only send the queries it asks for
(:attr:`ResolutionCore.qtypes`) and hand back each answer or exception to
:meth:`ResolutionCore.finish`. Thread-safe: the cache is guarded by one lock.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs

from lbkit.errors import ConfigError, ResolutionError
from lbkit.routing._address import port_number, split_host_port

__all__ = ["CachedAnswer", "ResolutionCore", "ResolverSettings", "validate_name"]

_LABEL = re.compile(r"(?!-)[A-Za-z0-9_-]{1,63}(?<!-)\Z")


def validate_name(name: str) -> str:
    """Return ``name`` lowercased without a trailing dot, or raise ResolutionError."""
    if not isinstance(name, str):
        raise ResolutionError(f"invalid name {name!r}: expected str")
    text = name[:-1] if name.endswith(".") else name
    if not text or len(text) > 253:
        raise ResolutionError(f"invalid name {name[:64]!r}: expected 1..253 characters")
    for label in text.split("."):
        if not _LABEL.match(label):
            raise ResolutionError(
                f"invalid name {name[:64]!r}: label {label[:63]!r} is not 1..63 letters, "
                "digits, '-' or '_'"
            )
    return text.lower()


def parse_nameservers(nameservers: Sequence[str]) -> list[tuple[str, int]]:
    """``["127.0.0.1:53", "[::1]:5353"]`` -> ``[(host, port), ...]``, or ConfigError."""
    out = []
    if isinstance(nameservers, str) or not nameservers:
        raise ConfigError("nameservers must be a non-empty list such as ['127.0.0.1:53']")
    for item in nameservers:
        if not isinstance(item, str):
            raise ConfigError(f"invalid nameserver {item!r}: expected 'ADDRESS[:PORT]'")
        host, port = split_host_port(item)
        number = 53 if port is None else port_number(port)
        if number is None:  # (leading zeros are fine: resolver 127.0.0.1:000053)
            raise ConfigError(f"invalid nameserver {item!r}: expected ADDRESS[:PORT]")
        out.append((host, number))
    return out


@attrs.frozen(slots=True)
class CachedAnswer:
    """Addresses for a name, when they were fetched and until when they are fresh."""

    addresses: tuple[str, ...]
    fetched: float
    expires: float


def _seconds(label: str, value: object, *, allow_none: bool = False) -> float | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        extra = " or None" if allow_none else ""
        raise ConfigError(f"invalid {label}={value!r}: expected seconds >= 0{extra}")
    return float(value)


def _entries(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"invalid max_entries={value!r}: expected an int >= 1")
    return value


def _flag(value: object) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"invalid ipv6={value!r}: expected True or False")
    return value


def _nameservers(value: Sequence[str]) -> tuple[tuple[str, int], ...]:
    return tuple(parse_nameservers(value))


def _valid(value: object) -> float | None:
    return _seconds("valid", value, allow_none=True)


def _timeout(value: object) -> float:
    return _seconds("timeout", value) or 0.0


def _stale_for(value: object) -> float:
    return _seconds("stale_for", value) or 0.0


@attrs.frozen(slots=True)
class ResolverSettings:
    """A resolver's configuration, checked at construction (nginx's ``resolver`` line)."""

    nameservers: tuple[tuple[str, int], ...] = attrs.field(converter=_nameservers)
    valid: float | None = attrs.field(default=None, converter=_valid)
    timeout: float = attrs.field(default=2.0, converter=_timeout)
    stale_for: float = attrs.field(default=30.0, converter=_stale_for)
    max_entries: int = attrs.field(default=10_000, converter=_entries)
    ipv6: bool = attrs.field(default=True, converter=_flag)


class ResolutionCore:
    """Cache and policy of one resolver: what is fresh, what to ask, how to read answers.

    ``dns_errors`` classifies exceptions: a mapping with ``"nxdomain"`` and ``"failure"``
    to exception types (the I/O shells pass dnspython's).
    """

    def __init__(
        self,
        settings: ResolverSettings,
        clock: Callable[[], float],
        dns_errors: Mapping[str, tuple[type[BaseException], ...]],
    ) -> None:
        self.settings = settings
        self.nameservers = list(settings.nameservers)
        self.valid = settings.valid
        self.stale_for = settings.stale_for
        self.max_entries = settings.max_entries
        #: Record types asked for each name: A and AAAA as nginx (``ipv6=off``: A only).
        self.qtypes: tuple[str, ...] = ("A", "AAAA") if settings.ipv6 else ("A",)
        self.clock = clock
        self._nxdomain = dns_errors["nxdomain"]
        self._failure = dns_errors["failure"]
        self._cache: OrderedDict[str, CachedAnswer] = OrderedDict()
        self._lock = threading.Lock()

    def fresh(self, name: str, now: float) -> list[str] | None:
        """The cached addresses of an already validated name while they are fresh."""
        with self._lock:
            entry = self._cache.get(name)
            if entry is not None and now < entry.expires:
                self._cache.move_to_end(name)
                return list(entry.addresses)
            return None

    def cached(self, name: str) -> CachedAnswer | None:
        """The cache entry for ``name`` (fresh or stale), if any."""
        with self._lock:
            return self._cache.get(validate_name(name))

    def finish(self, name: str, now: float, outcomes: Mapping[str, Any]) -> list[str]:
        """Read the answer (or exception) of each query in :attr:`qtypes` for ``name``.

        Caches and returns the addresses (IPv4 first, each family sorted); a name that does
        not exist raises at once; a failed server falls back to a stale answer within
        ``stale_for``, else raises :class:`~lbkit.ResolutionError`.
        """
        addresses: list[str] = []
        ttls: list[float] = []
        failure: BaseException | None = None
        missing = False
        # as nginx: each record type on its own; the name is missing only when no type
        # gave an address (dnsmasq answers AAAA with NXDOMAIN for an address=/../v4 name)
        for qtype in self.qtypes:
            outcome = outcomes[qtype]
            if isinstance(outcome, self._nxdomain):
                missing = True
            elif isinstance(outcome, self._failure):
                failure = outcome
            elif isinstance(outcome, Exception):
                raise ResolutionError(f"cannot resolve {name!r}: {outcome!r}") from outcome
            elif isinstance(outcome, BaseException):
                raise outcome
            elif outcome.rrset:
                addresses.extend(sorted({rr.address for rr in outcome.rrset}))
                ttls.append(float(outcome.rrset.ttl))
        if not addresses and failure is not None:
            return self._stale(name, now, failure)
        if not addresses and missing:
            with self._lock:
                self._cache.pop(name, None)
            raise ResolutionError(f"{name!r} does not exist (NXDOMAIN)")
        if not addresses:
            kinds = " or ".join(self.qtypes)
            raise ResolutionError(f"{name!r} has no address (no {kinds} record)")
        lifetime = self.valid if self.valid is not None else min(ttls)
        with self._lock:
            self._cache[name] = CachedAnswer(tuple(addresses), now, now + lifetime)
            self._cache.move_to_end(name)
            while len(self._cache) > self.max_entries:
                self._cache.popitem(last=False)
        return addresses

    def _stale(self, name: str, now: float, cause: BaseException) -> list[str]:
        with self._lock:
            entry = self._cache.get(name)
        if entry is not None and now < entry.expires + self.stale_for:
            return list(entry.addresses)
        servers = ", ".join(f"{h}:{p}" for h, p in self.nameservers)
        raise ResolutionError(f"cannot resolve {name!r}: DNS server {servers} failed ({cause})")
