"""DNS resolution with a TTL cache, as nginx's ``resolver ADDR [valid=T] [ipv6=off]``.

Both A and AAAA are asked for, as nginx does (``ipv6=False``: A only). Answers are cached
for their TTL, or for ``valid`` seconds when given (nginx's ``valid=``). When the DNS server
stops answering, the last good answer is served for ``stale_for`` seconds past its expiry,
then :class:`~lbkit.ResolutionError`. A name that does not exist raises
:class:`~lbkit.ResolutionError` at once. The cache is bounded (least recently used names
are dropped first). Names are validated before any query: they usually come from an
untrusted Host header. Concurrent lookups of one name share one query.

The decisions live in :class:`~lbkit.routing._resolution.ResolutionCore`; the two classes
below only send its queries. Needs dnspython (``pip install lbkit[dns]``), imported when a
resolver is created.
"""

from __future__ import annotations

import asyncio
import importlib
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from lbkit.errors import ConfigError
from lbkit.routing._resolution import (
    CachedAnswer,
    ResolutionCore,
    ResolverSettings,
    validate_name,
)

__all__ = ["AsyncResolver", "CachedAnswer", "Resolver", "validate_name"]


def _dns_client(module_name: str, core: ResolutionCore) -> Any:
    """A dnspython resolver (sync or async module) asking ``core``'s nameservers only."""
    import dns.nameserver

    client = importlib.import_module(module_name).Resolver(configure=False)
    client.nameservers = [dns.nameserver.Do53Nameserver(h, p) for h, p in core.nameservers]
    client.lifetime = core.settings.timeout
    client.timeout = core.settings.timeout
    client.cache = None
    return client


_QUERY = {"raise_on_no_answer": False, "search": False}


class _Shell:
    """What both resolvers share: construction (settings, core, client) and ``cached``."""

    _client_module = ""

    def __init__(
        self,
        nameservers: Sequence[str] = ("127.0.0.1:53",),
        valid: float | None = None,
        timeout: float = 2.0,
        stale_for: float = 30.0,
        *,
        max_entries: int = 10_000,
        ipv6: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        settings = ResolverSettings(nameservers, valid, timeout, stale_for, max_entries, ipv6)
        try:
            import dns.exception
            import dns.resolver
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ConfigError("the resolver needs dnspython: pip install 'lbkit[dns]'") from exc
        errors = {
            "nxdomain": (dns.resolver.NXDOMAIN,),
            "failure": (dns.exception.Timeout, dns.resolver.NoNameservers, OSError),
        }
        self.core = ResolutionCore(settings, clock, errors)
        self._client = _dns_client(self._client_module, self.core)
        self._start()

    def _start(self) -> None:
        """Set up the shell's own state (its in-flight lookups)."""

    def cached(self, name: str) -> CachedAnswer | None:
        """The cache entry for ``name`` (fresh or stale), if any."""
        return self.core.cached(name)


class Resolver(_Shell):
    """Blocking resolver with nginx-like caching; safe to share between threads.

    ``Resolver(nameservers=("127.0.0.1:53",), valid=None, timeout=2.0, stale_for=30.0, *,
    max_entries=10_000, ipv6=True, clock=time.monotonic)``.
    """

    _client_module = "dns.resolver"

    def _start(self) -> None:
        self._lock = threading.Lock()  # guards _flights
        self._flights: dict[str, threading.Lock] = {}

    def resolve(self, name: str) -> list[str]:
        """The addresses of ``name`` (IPv4 first), from the cache while fresh."""
        name = validate_name(name)
        hit = self.core.fresh(name, self.core.clock())
        if hit is not None:
            return hit
        key = name
        with self._lock:
            flight = self._flights.setdefault(key, threading.Lock())
        with flight:  # one query per name at a time; the others then read the cache
            try:
                now = self.core.clock()
                hit = self.core.fresh(name, now)
                if hit is not None:
                    return hit
                outcomes = {q: self._ask(name, q) for q in self.core.qtypes}
                return self.core.finish(name, now, outcomes)
            finally:
                with self._lock:
                    self._flights.pop(key, None)

    def _ask(self, name: str, qtype: str) -> Any:
        try:
            return self._client.resolve(name, qtype, **_QUERY)
        except Exception as exc:
            return exc


class AsyncResolver(_Shell):
    """The asyncio twin of :class:`Resolver`: ``await resolver.resolve(name)``.

    A and AAAA are asked concurrently; callers awaiting one name share one lookup, and a
    caller that is cancelled does not cancel the others' lookup. Same arguments as
    :class:`Resolver`.
    """

    _client_module = "dns.asyncresolver"

    def _start(self) -> None:
        self._flights: dict[str, asyncio.Task[list[str]]] = {}

    async def resolve(self, name: str) -> list[str]:
        """The addresses of ``name`` (IPv4 first), from the cache while fresh."""
        name = validate_name(name)
        hit = self.core.fresh(name, self.core.clock())
        if hit is not None:
            return hit
        task = self._flights.get(name)
        if task is None:
            task = asyncio.ensure_future(self._lookup(name))
            self._flights[name] = task
            task.add_done_callback(lambda done: self._landed(name, done))
        return list(await asyncio.shield(task))

    def _landed(self, name: str, task: asyncio.Task[list[str]]) -> None:
        if self._flights.get(name) is task:
            del self._flights[name]
        if not task.cancelled():
            task.exception()  # retrieved: every caller may have been cancelled meanwhile

    async def _lookup(self, name: str) -> list[str]:
        now = self.core.clock()
        answers = await asyncio.gather(
            *(self._client.resolve(name, q, **_QUERY) for q in self.core.qtypes),
            return_exceptions=True,
        )
        return self.core.finish(name, now, dict(zip(self.core.qtypes, answers, strict=True)))
