"""DNS resolution with a TTL cache, as nginx's ``resolver ADDR [valid=T]`` (sync and asyncio).

Answers are cached for their TTL, or for ``valid`` seconds when given (nginx's ``valid=``).
When the DNS server stops answering, the last good answer is served for ``stale_for``
seconds past its expiry, then :class:`~lbkit.ResolutionError`. A name that does not exist
raises :class:`~lbkit.ResolutionError` at once. The cache is bounded (least recently used
names are dropped first). Names are validated before any query: they usually come from an
untrusted Host header.

Needs dnspython (``pip install lbkit[dns]``), imported when a resolver is created.
"""

from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

import attrs

from lbkit.errors import ConfigError, ResolutionError

__all__ = ["AsyncResolver", "CachedAnswer", "Resolver", "validate_name"]

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


def _parse_nameservers(nameservers: Sequence[str]) -> list[tuple[str, int]]:
    out = []
    if isinstance(nameservers, str) or not nameservers:
        raise ConfigError("nameservers must be a non-empty list such as ['127.0.0.1:53']")
    for item in nameservers:
        host, port = item, "53"
        if item.startswith("["):
            host, _, rest = item[1:].partition("]")
            port = rest[1:] if rest.startswith(":") else "53"
        elif item.count(":") == 1:
            host, port = item.split(":")
        if not port.isdigit() or not 1 <= int(port) <= 65535:
            raise ConfigError(f"invalid nameserver {item!r}: expected ADDRESS[:PORT]")
        out.append((host, int(port)))
    return out


@attrs.frozen(slots=True)
class CachedAnswer:
    """Addresses for a name, when they were fetched and until when they are fresh."""

    addresses: tuple[str, ...]
    fetched: float
    expires: float


class _Base:
    def __init__(
        self,
        nameservers: Sequence[str],
        valid: float | None,
        timeout: float,
        stale_for: float,
        max_entries: int,
        clock: Callable[[], float],
    ) -> None:
        self.nameservers = _parse_nameservers(nameservers)
        for label, value in (("timeout", timeout), ("stale_for", stale_for)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ConfigError(f"invalid {label}={value!r}: expected seconds >= 0")
        if valid is not None and (not isinstance(valid, (int, float)) or valid < 0):
            raise ConfigError(f"invalid valid={valid!r}: expected seconds >= 0 or None")
        if not isinstance(max_entries, int) or max_entries < 1:
            raise ConfigError(f"invalid max_entries={max_entries!r}: expected >= 1")
        self.valid = valid
        self.timeout = float(timeout)
        self.stale_for = float(stale_for)
        self.max_entries = max_entries
        self._clock = clock
        self._cache: OrderedDict[str, CachedAnswer] = OrderedDict()
        self._lock = threading.Lock()

    def _fresh(self, name: str, now: float) -> CachedAnswer | None:
        with self._lock:
            entry = self._cache.get(name)
            if entry is not None and now < entry.expires:
                self._cache.move_to_end(name)
                return entry
            return None

    def _store(self, name: str, addresses: tuple[str, ...], ttl: float, now: float) -> None:
        lifetime = self.valid if self.valid is not None else ttl
        with self._lock:
            self._cache[name] = CachedAnswer(addresses, now, now + lifetime)
            self._cache.move_to_end(name)
            while len(self._cache) > self.max_entries:
                self._cache.popitem(last=False)

    def _stale(self, name: str, now: float, cause: BaseException) -> list[str]:
        with self._lock:
            entry = self._cache.get(name)
        if entry is not None and now < entry.expires + self.stale_for:
            return list(entry.addresses)
        servers = ", ".join(f"{h}:{p}" for h, p in self.nameservers)
        raise ResolutionError(f"cannot resolve {name!r}: DNS server {servers} failed ({cause})")

    def _forget(self, name: str) -> None:
        with self._lock:
            self._cache.pop(name, None)

    def cached(self, name: str) -> CachedAnswer | None:
        """The cache entry for ``name`` (fresh or stale), if any."""
        with self._lock:
            return self._cache.get(validate_name(name))

    def _outcome(self, name: str, answer: Any, now: float) -> list[str]:
        addresses = tuple(sorted({rr.address for rr in answer.rrset})) if answer.rrset else ()
        ttl = float(answer.rrset.ttl) if answer.rrset else 0.0
        if not addresses:
            raise ResolutionError(f"{name!r} has no IPv4 address (no A record)")
        self._store(name, addresses, ttl, now)
        return list(addresses)

    def _resolver(self, module: Any) -> Any:
        import dns.nameserver

        r = module.Resolver(configure=False)
        r.nameservers = [dns.nameserver.Do53Nameserver(h, p) for h, p in self.nameservers]
        r.lifetime = self.timeout
        r.timeout = self.timeout
        r.cache = None
        return r


def _import_dns() -> Any:
    try:
        import dns.resolver
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ConfigError("the resolver needs dnspython: pip install 'lbkit[dns]'") from exc
    return dns.resolver


class Resolver(_Base):
    """Blocking resolver with nginx-like caching; safe to share between threads."""

    def __init__(
        self,
        nameservers: Sequence[str] = ("127.0.0.1:53",),
        valid: float | None = None,
        timeout: float = 2.0,
        stale_for: float = 30.0,
        *,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(nameservers, valid, timeout, stale_for, max_entries, clock)
        self._dns = _import_dns()
        self._r = self._resolver(self._dns)

    def resolve(self, name: str) -> list[str]:
        """The IPv4 addresses of ``name``, from the cache while fresh."""
        name = validate_name(name)
        now = self._clock()
        entry = self._fresh(name, now)
        if entry is not None:
            return list(entry.addresses)
        import dns.exception

        try:
            answer = self._r.resolve(name, "A", raise_on_no_answer=False, search=False)
        except self._dns.NXDOMAIN:
            self._forget(name)
            raise ResolutionError(f"{name!r} does not exist (NXDOMAIN)") from None
        except (dns.exception.Timeout, self._dns.NoNameservers, OSError) as exc:
            return self._stale(name, now, exc)
        return self._outcome(name, answer, now)


class AsyncResolver(_Base):
    """The asyncio twin of :class:`Resolver`: ``await resolver.resolve(name)``."""

    def __init__(
        self,
        nameservers: Sequence[str] = ("127.0.0.1:53",),
        valid: float | None = None,
        timeout: float = 2.0,
        stale_for: float = 30.0,
        *,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(nameservers, valid, timeout, stale_for, max_entries, clock)
        _import_dns()
        import dns.asyncresolver

        self._dns = dns.resolver
        self._r = self._resolver(dns.asyncresolver)

    async def resolve(self, name: str) -> list[str]:
        """The IPv4 addresses of ``name``, from the cache while fresh."""
        name = validate_name(name)
        now = self._clock()
        entry = self._fresh(name, now)
        if entry is not None:
            return list(entry.addresses)
        import dns.exception

        try:
            answer = await self._r.resolve(name, "A", raise_on_no_answer=False, search=False)
        except self._dns.NXDOMAIN:
            self._forget(name)
            raise ResolutionError(f"{name!r} does not exist (NXDOMAIN)") from None
        except (dns.exception.Timeout, self._dns.NoNameservers, OSError) as exc:
            return self._stale(name, now, exc)
        return self._outcome(name, answer, now)
