"""Routes that change at runtime: name -> target, thread-safe, with a hosts-file source.

Readers never see a half-updated table: a single ``set``/``remove`` is one dict operation
(atomic for readers), and a bulk ``replace`` builds a new table and swaps one reference.
Wildcard names (``*.example.com``, ``www.example.*``) live in a small separate table that
is rebuilt only when a wildcard changes; exact names never trigger a rebuild.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from pathlib import Path

from lbkit.errors import ConfigError
from lbkit.routing._host import ascii_lower, normalize_host
from lbkit.routing._names import ServerNames

__all__ = ["HostsFileSource", "RouteRegistry", "parse_hosts"]


def _is_wildcard(name: str) -> bool:
    return name.startswith(("*.", ".")) or name.endswith(".*")


def _clean(name: str) -> str:
    if _is_wildcard(name):
        core = name.strip("*.")
        normalize_host(core)  # validates the rest of the name
        return ascii_lower(name)
    return normalize_host(name)


class RouteRegistry:
    """A runtime table of host names (exact or wildcard) to targets (any string)."""

    def __init__(self, routes: Mapping[str, str] | None = None) -> None:
        self._lock = threading.Lock()
        self._exact: dict[str, str] = {}
        self._wild: dict[str, str] = {}
        self._wild_table: ServerNames[str] = ServerNames()
        if routes:
            self.replace(routes)

    def set(self, name: str, target: str) -> None:
        """Route ``name`` to ``target`` (replacing any previous target)."""
        key = _clean(name)
        if not isinstance(target, str) or not target:
            raise ConfigError(f"invalid target {target!r} for {name!r}: expected a non-empty str")
        with self._lock:
            if _is_wildcard(key):
                wild = dict(self._wild)
                wild[key] = target
                self._swap_wild(wild)
            else:
                self._exact[key] = target

    def remove(self, name: str) -> bool:
        """Forget ``name``; returns whether it was present."""
        key = _clean(name)
        with self._lock:
            if _is_wildcard(key):
                if key not in self._wild:
                    return False
                wild = dict(self._wild)
                del wild[key]
                self._swap_wild(wild)
                return True
            return self._exact.pop(key, None) is not None

    def replace(self, routes: Mapping[str, str]) -> None:
        """Replace the whole table at once (readers see the old or the new one)."""
        exact: dict[str, str] = {}
        wild: dict[str, str] = {}
        for name, target in routes.items():
            key = _clean(name)
            (wild if _is_wildcard(key) else exact)[key] = target
        table = self._build(wild)
        with self._lock:
            self._exact = exact
            self._wild = wild
            self._wild_table = table

    def _swap_wild(self, wild: dict[str, str]) -> None:
        self._wild_table = self._build(wild)
        self._wild = wild

    @staticmethod
    def _build(wild: Mapping[str, str]) -> ServerNames[str]:
        table: ServerNames[str] = ServerNames()
        for name, target in wild.items():
            table.add(name, target)
        return table

    def lookup(self, host: str | bytes) -> str | None:
        """The target for a Host header value (exact first, then wildcards), or None."""
        name = normalize_host(host)
        target = self._exact.get(name)
        if target is not None:
            return target
        found = self._wild_table.find(name)
        return found.value if found is not None else None

    def snapshot(self) -> dict[str, str]:
        """A copy of every route."""
        with self._lock:
            return {**self._exact, **self._wild}

    def __len__(self) -> int:
        return len(self._exact) + len(self._wild)


def parse_hosts(text: str) -> dict[str, str]:
    """Parse hosts-file text (``ADDRESS NAME [NAME...]  # comment``) into name -> address.

    The first line naming a host wins, as in /etc/hosts. Bad lines raise ConfigError with
    their line number.
    """
    routes: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split("#", 1)[0].split()
        if not fields:
            continue
        if len(fields) < 2:
            raise ConfigError(f"hosts line {number}: expected ADDRESS NAME [NAME...]", line=number)
        address, *names = fields
        for name in names:
            try:
                key = _clean(name)
            except Exception as exc:
                raise ConfigError(f"hosts line {number}: {exc}", line=number) from None
            routes.setdefault(key, address)
    return routes


class HostsFileSource:
    """Keeps a :class:`RouteRegistry` in step with a hosts-format file.

    ``poll()`` reloads the file when its modification time or size changed and returns
    whether it did; ``start()`` polls every ``interval`` seconds in a daemon thread. A file
    that fails to parse leaves the registry as it was (the error goes to ``on_error``).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        registry: RouteRegistry,
        interval: float = 1.0,
        on_error: Callable[[Exception], None] | None = None,
    ) -> None:
        self.path = Path(path)
        self.registry = registry
        self.interval = interval
        self.on_error = on_error
        self._seen: tuple[int, int] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def poll(self) -> bool:
        """Reload if the file changed; True when the registry was replaced."""
        try:
            st = self.path.stat()
        except OSError as exc:
            if self.on_error:
                self.on_error(exc)
            return False
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp == self._seen:
            return False
        try:
            routes = parse_hosts(self.path.read_text(encoding="utf-8"))
        except (OSError, ConfigError, UnicodeDecodeError) as exc:
            if self.on_error:
                self.on_error(exc)
            return False
        self.registry.replace(routes)
        self._seen = stamp
        return True

    def start(self) -> None:
        """Poll in a background thread until :meth:`stop`."""
        if self._thread is not None:
            return
        self.poll()
        self._thread = threading.Thread(target=self._run, name="lbkit-hosts", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.poll()

    def stop(self) -> None:
        """Stop polling."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.interval + 1)
            self._thread = None
