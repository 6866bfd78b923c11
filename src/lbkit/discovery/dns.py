"""DNS as a discovery source: nginx's ``server NAME resolve`` (A/AAAA) and ``service=`` (SRV).

Rules read in nginx's source (``ngx_http_upstream_zone_module.c``, ``ngx_resolver.c``):

- The name is looked up again when its answer expires: ``valid=`` seconds if given, else
  the record TTL (the smallest in the answer), plus one second (nginx's timer is
  ``1000 * (valid - now + 1)`` ms).
- A failed lookup other than NXDOMAIN keeps the peers and retries after
  ``max(resolver_timeout, 1 s)``; NXDOMAIN (or an empty answer) removes them all.
- A/AAAA: every address becomes a peer on the ``server`` line's port with its weight.
- SRV: the target's addresses on the SRV port; the SRV weight (0 read as 1) unless the
  ``server`` line sets a weight other than 1; records whose priority is not the lowest
  become ``backup`` peers. ``service=http`` asks for ``_http._tcp.NAME``; a service with a
  dot is joined to the name as it is (``service=_http._tcp`` -> ``_http._tcp.NAME``).

Each view maps ``ADDRESS:PORT`` to the rest of its ``server`` line (``weight=5 backup``), so an
:class:`~lbkit.discovery.UpstreamSink` turns it into ``Upstream.update(...)``. Needs dnspython
(``pip install lbkit[dns]``).
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import attrs

from lbkit.discovery.source import ErrorHandler, PollingSource, Sink
from lbkit.errors import ConfigError, DiscoveryError
from lbkit.routing import validate_name
from lbkit.routing._resolution import parse_nameservers  # the one nameserver-list parser

__all__ = ["DnsAnswer", "DnsSource", "Record", "srv_name"]

MAX_RECORDS = 1024


def srv_name(name: str, service: str) -> str:
    """The SRV name nginx asks for ``server NAME service=SERVICE``."""
    if not service or any(c.isspace() for c in service):
        raise ConfigError(f"invalid service={service!r}: expected a name such as 'http'")
    prefix = service if "." in service else f"_{service}._tcp"
    return validate_name(f"{prefix}.{name}")


@attrs.frozen(slots=True)
class Record:
    """One resolved peer: address, port, SRV weight and priority (1 and 0 for A/AAAA)."""

    address: str
    port: int
    weight: int = 1
    priority: int = 0

    @property
    def endpoint(self) -> str:
        """``ADDRESS:PORT`` with IPv6 in brackets, as nginx names a peer."""
        if ":" in self.address:
            return f"[{self.address}]:{self.port}"
        return f"{self.address}:{self.port}"


@attrs.frozen(slots=True)
class DnsAnswer:
    """What one lookup found: the records and the smallest TTL among them (seconds)."""

    records: tuple[Record, ...]
    ttl: float


class DnsSource(PollingSource):
    """Feeds its sinks the peers a DNS name resolves to, re-resolved as nginx does.

    ``DnsSource("app.example", port=8080, nameservers=["127.0.0.1:53"])`` is
    ``server app.example:8080 resolve;``; ``service="http"`` makes it
    ``server app.example service=http resolve;``. ``params`` are the rest of the ``server``
    line (``"max_fails=3 fail_timeout=5s"``), copied to every peer.
    """

    _thread_name = "lbkit-dns-source"

    def __init__(
        self,
        name: str,
        sinks: Iterable[Sink] = (),
        *,
        nameservers: Sequence[str] = ("127.0.0.1:53",),
        port: int = 80,
        service: str | None = None,
        weight: int = 1,
        params: str = "",
        ipv4: bool = True,
        ipv6: bool = True,
        valid: float | None = None,
        timeout: float = 2.0,
        on_error: ErrorHandler | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = validate_name(name)
        self.query_name = srv_name(self.name, service) if service is not None else self.name
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise ConfigError(f"invalid port={port!r}: expected 1..65535")
        if isinstance(weight, bool) or not isinstance(weight, int) or not 1 <= weight <= 1000:
            raise ConfigError(f"invalid weight={weight!r}: expected 1..1000 (nginx's limit)")
        if not isinstance(params, str) or "weight=" in params or ";" in params:
            raise ConfigError(
                f"invalid params={params!r}: expected server parameters without weight= or ';'"
            )
        if not (ipv4 or ipv6):
            raise ConfigError("ipv4 and ipv6 are both off: nothing to resolve")
        if valid is not None and (
            isinstance(valid, bool) or not isinstance(valid, (int, float)) or valid <= 0
        ):
            raise ConfigError(f"invalid valid={valid!r}: expected seconds > 0 or None")
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
            raise ConfigError(f"invalid timeout={timeout!r}: expected seconds > 0")
        super().__init__(sinks, on_error)
        self.nameservers = parse_nameservers(nameservers)
        self.port = port
        self.service = service
        self.weight = weight
        self.params = " ".join(params.split())
        self.families = tuple(t for t, on in (("A", ipv4), ("AAAA", ipv6)) if on)
        self.valid = valid
        self.timeout = float(timeout)
        self._clock = clock
        self._dns = _import_dns()
        self._resolver = self._make_resolver()
        self.next_check: float | None = None

    def _make_resolver(self) -> Any:
        import dns.nameserver

        r = self._dns.resolver.Resolver(configure=False)
        r.nameservers = [dns.nameserver.Do53Nameserver(h, p) for h, p in self.nameservers]
        r.lifetime = self.timeout
        r.timeout = self.timeout
        r.cache = None
        return r

    def lookup(self) -> DnsAnswer:
        """Resolve once (no cache): the records, or DiscoveryError when DNS fails.

        NXDOMAIN and empty answers give no records (nginx then removes the peers).
        """
        if self.service is None:
            return self._addresses(self.query_name, self.port, 1, 0)
        answer = self._query(self.query_name, "SRV")
        if answer is None:
            return DnsAnswer((), 10.0)
        records: list[Record] = []
        ttl = float(answer.rrset.ttl)
        for rr in sorted(answer.rrset, key=lambda r: (r.priority, str(r.target), r.port)):
            target = str(rr.target).rstrip(".")
            found = self._addresses(target, int(rr.port), max(1, int(rr.weight)), rr.priority)
            records.extend(found.records)
            ttl = min(ttl, found.ttl)
        return DnsAnswer(tuple(records[:MAX_RECORDS]), ttl)

    def _addresses(self, name: str, port: int, weight: int, priority: int) -> DnsAnswer:
        records: list[Record] = []
        ttls: list[float] = []
        for rdtype in self.families:
            answer = self._query(name, rdtype)
            if answer is None:
                continue
            ttls.append(float(answer.rrset.ttl))
            for rr in answer.rrset:
                address = str(ipaddress.ip_address(rr.address))
                records.append(Record(address, port, weight, priority))
        records.sort(key=lambda r: (ipaddress.ip_address(r.address).version, r.address))
        return DnsAnswer(tuple(records[:MAX_RECORDS]), min(ttls) if ttls else 10.0)

    def _query(self, name: str, rdtype: str) -> Any:
        import dns.exception

        resolver = self._dns.resolver
        try:
            answer = self._resolver.resolve(name, rdtype, raise_on_no_answer=False, search=False)
        except resolver.NXDOMAIN:
            return None
        except (dns.exception.DNSException, OSError) as exc:
            servers = ", ".join(f"{h}:{p}" for h, p in self.nameservers)
            raise DiscoveryError(
                f"cannot resolve {name!r} ({rdtype}) at {servers}: {exc or type(exc).__name__}"
            ) from None
        return answer if answer.rrset else None

    def view_of(self, answer: DnsAnswer) -> dict[str, str]:
        """The view for an answer: ``ADDRESS:PORT`` -> ``weight=W [backup] PARAMS``."""
        lowest = min((r.priority for r in answer.records), default=0)
        view: dict[str, str] = {}
        for r in answer.records:
            if r.endpoint in view:
                continue
            weight = self.weight if self.weight != 1 or self.service is None else r.weight
            words = [f"weight={weight}" if weight != 1 else ""]
            words.append("backup" if r.priority != lowest else "")
            words.append(self.params)
            view[r.endpoint] = " ".join(w for w in words if w)
        return view

    def poll(self) -> float:
        """Resolve, publish a changed view, return seconds until the next lookup."""
        try:
            answer = self.lookup()
        except DiscoveryError as exc:
            self._report(exc)
            delay = max(self.timeout, 1.0)
        else:
            self._publish(self.view_of(answer))
            delay = (self.valid if self.valid is not None else answer.ttl) + 1.0
        self.next_check = self._clock() + delay
        return delay


def _import_dns() -> Any:
    try:
        import dns.nameserver
        import dns.resolver
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ConfigError("DnsSource needs dnspython: pip install 'lbkit[dns]'") from exc
    return dns
