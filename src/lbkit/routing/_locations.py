"""nginx ``location`` choice inside a server block, and ``proxy_pass`` URI rewriting.

As ``ngx_http_core_find_location``: the longest matching prefix among the prefix
locations (``=`` only when the URI is exactly its name, and then the search stops); the
nested locations of that prefix are searched the same way; unless the prefix was ``^~``,
the regex locations (``~`` case-sensitive, ``~*`` caseless) are then tried in config order
and the first that matches wins (its own nested locations searched in turn). Named
locations (``@name``) are never chosen by URI. A prefix location whose name ends with ``/``
and that proxies answers a URI equal to its name without the slash with a 301 redirect.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from lbkit.errors import ConfigError
from lbkit.routing._regex import ServerRegex
from lbkit.routing._uri import escape_uri

__all__ = ["Location", "LocationMatch", "Locations", "rewrite_uri", "uri_part"]


@attrs.frozen(slots=True)
class Location:
    """One ``location``: ``modifier`` (``""``, ``"="``, ``"^~"``, ``"~"``, ``"~*"``, ``"@"``),
    ``name`` (path, regex or name), its ``proxy_pass``, ``return``, nested locations."""

    modifier: str
    name: str
    proxy_pass: str | None = None
    return_: tuple[int, str | None] | None = None
    nested: Locations | None = None
    line: int = 0
    regex: ServerRegex | None = attrs.field(default=None, eq=False, repr=False)
    auto_redirect: bool = False

    @property
    def display(self) -> str:
        """The location as written: ``= /x``, ``^~ /static/``, ``~* \\.php$``, ``@fallback``."""
        if self.modifier == "@":
            return self.name
        return f"{self.modifier} {self.name}".strip()


@attrs.frozen(slots=True)
class LocationMatch:
    """The chosen location, its regex captures, and whether nginx answers 301 instead."""

    location: Location
    captures: tuple[str, ...] = ()
    named: dict[str, str] = attrs.field(factory=dict)
    redirect: bool = False


class Locations:
    """The locations of one level (a server, or a location's nested ones), read-only."""

    def __init__(self, locations: Sequence[Location]) -> None:
        self.all: tuple[Location, ...] = tuple(locations)
        prefixes = [loc for loc in self.all if loc.modifier in ("", "^~", "=")]
        # longest first: the first that matches is the longest; "=" before a prefix of the
        # same name (nginx's tree holds both in one node and prefers the exact one)
        self._static = sorted(prefixes, key=lambda loc: (-len(loc.name), loc.modifier != "="))
        self._regexes = [loc for loc in self.all if loc.modifier in ("~", "~*")]
        self.named = {loc.name: loc for loc in self.all if loc.modifier == "@"}
        seen: set[tuple[str, str]] = set()
        for loc in prefixes:
            key = ("=" if loc.modifier == "=" else "", loc.name)
            if key in seen:
                raise ConfigError(f'duplicate location "{loc.name}"', line=loc.line)
            seen.add(key)

    def find(self, uri: str) -> LocationMatch | None:
        """The location nginx chooses for a normalised URI path, or None."""
        return self._find(uri)[0]

    def _find(self, uri: str) -> tuple[LocationMatch | None, bool]:
        # (match, final): final as nginx's NGX_OK/NGX_DONE; a prefix match (NGX_AGAIN)
        # still lets the regexes of the enclosing levels run
        prefix: Location | None = None
        redirect: Location | None = None
        for loc in self._static:
            if loc.modifier == "=":
                if uri == loc.name:
                    return LocationMatch(loc), True
            elif uri.startswith(loc.name):
                prefix = loc
                break
            elif loc.auto_redirect and redirect is None and uri + "/" == loc.name:
                redirect = loc
        if redirect is not None and (prefix is None or len(prefix.name) < len(uri)):
            return LocationMatch(redirect, redirect=True), True
        found: LocationMatch | None = LocationMatch(prefix) if prefix is not None else None
        if prefix is not None and prefix.nested is not None:
            inner, final = prefix.nested._find(uri)
            if final:
                return inner, True
            found = inner or found
        if prefix is None or prefix.modifier != "^~":
            for loc in self._regexes:
                assert loc.regex is not None
                hit = loc.regex.search(uri)
                if hit is not None:
                    if loc.nested is not None:
                        inner, _ = loc.nested._find(uri)
                        if inner is not None:
                            return inner, True
                    return LocationMatch(loc, hit[0], hit[1]), True
        return found, False


def uri_part(target: str) -> str:
    """The URI part of a ``proxy_pass`` target (``http://b/x/`` -> ``/x/``), or ``""``."""
    rest = target.split("://", 1)[-1]
    slash = rest.find("/")
    return "" if slash < 0 else rest[slash:]


def rewrite_uri(location: Location, target: str, uri: str, raw_uri: str, args: str = "") -> str:
    """The URI nginx's ``proxy_pass`` sends upstream.

    ``target`` is the expanded ``proxy_pass``; ``uri`` the normalised request path,
    ``raw_uri`` the request line's URI as sent. Without a URI part in ``proxy_pass`` the
    request URI goes as sent; with one, the part of ``uri`` matching the location's prefix
    is replaced by it (with variables, the expanded URI part is sent as it is).
    """
    part = uri_part(target)
    if not part:
        return raw_uri
    if "$" in (location.proxy_pass or "") or location.modifier in ("~", "~*", "@"):
        return part
    rest = uri[len(location.name) :] if uri.startswith(location.name) else uri
    return part + escape_uri(rest) + (f"?{args}" if args else "")
