"""ZooKeeper as a discovery source: a node's children and their data, watched (kazoo).

The view of ``/services/app`` is ``{child name: child data}``: for an upstream, children
named ``10.0.0.1:80`` holding ``weight=2``; for routes, children named by host holding the
target. Watches on the node's children and on each child's data trigger a re-read; so does
every (re)connection, including a new session after the old one expired, whose watches the
server has dropped. While ZooKeeper is unreachable the last good view stays in force, and
the change made meanwhile is applied once it is back. A missing node reads as an empty view.

Needs kazoo (``pip install lbkit[zookeeper]``), imported when a source is created.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

from lbkit.discovery.source import ErrorHandler, Sink, Source
from lbkit.errors import ConfigError, DiscoveryError

__all__ = ["ZooKeeperSource"]

MAX_CHILDREN = 10_000
RETRY_DELAY = 1.0


def _import_kazoo() -> Any:
    try:
        import kazoo.client
        import kazoo.exceptions
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ConfigError("ZooKeeperSource needs kazoo: pip install 'lbkit[zookeeper]'") from exc
    return kazoo


def _is_zk_path(path: str) -> bool:
    return path == "/" or (path.startswith("/") and not path.endswith("/") and "//" not in path)


class ZooKeeperSource(Source):
    """Feeds its sinks the children of ``path`` (name -> data), kept in step by watches.

    Give ``hosts`` (``"127.0.0.1:2181,127.0.0.1:2182"``) to let the source own its client,
    or a started ``client`` (a ``kazoo.client.KazooClient``) to share one. Reads run in one
    daemon thread; kazoo's callbacks only wake it, so they never block kazoo's own thread.
    """

    def __init__(
        self,
        path: str,
        sinks: Iterable[Sink] = (),
        *,
        hosts: str | None = None,
        client: Any = None,
        timeout: float = 10.0,
        max_children: int = MAX_CHILDREN,
        on_error: ErrorHandler | None = None,
    ) -> None:
        if not isinstance(path, str) or not _is_zk_path(path):
            raise ConfigError(f"invalid path {path!r}: expected an absolute ZooKeeper path")
        if (hosts is None) == (client is None):
            raise ConfigError("give hosts= (the source makes its client) or client=, not both")
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
            raise ConfigError(f"invalid timeout={timeout!r}: expected seconds > 0")
        if isinstance(max_children, bool) or not isinstance(max_children, int) or max_children < 1:
            raise ConfigError(f"invalid max_children={max_children!r}: expected >= 1")
        super().__init__(sinks, on_error)
        self._kazoo = _import_kazoo()
        self.path = path
        self.max_children = max_children
        self._owns_client = client is None
        self.client = client or self._kazoo.client.KazooClient(hosts=hosts, timeout=timeout)
        self._refresh_lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.reads = 0

    def start(self) -> None:
        """Connect (in the background if it owns the client) and start watching."""
        if self._thread is not None:
            return
        self._stopping.clear()
        self.client.add_listener(self._on_state)
        if self._owns_client:
            self.client.start_async()
        self._wake.set()
        self._thread = threading.Thread(target=self._run, name="lbkit-zk-source", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop watching (the sinks keep the last view); closes the client it owns."""
        self._stopping.set()
        self._wake.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(30)
        self.client.remove_listener(self._on_state)
        if self._owns_client:
            self.client.stop()
            self.client.close()

    def __enter__(self) -> ZooKeeperSource:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _on_state(self, state: str) -> None:
        if state == "CONNECTED":
            self._wake.set()

    def _on_watch(self, event: object) -> None:
        self._wake.set()

    def _run(self) -> None:
        retry: float | None = None
        while True:
            self._wake.wait(retry)
            if self._stopping.is_set():
                return
            self._wake.clear()
            if not self.client.connected:
                retry = None  # the CONNECTED listener wakes us
                continue
            try:
                self.refresh()
                retry = None
            except DiscoveryError as exc:
                self._report(exc)
                retry = RETRY_DELAY

    def refresh(self) -> bool:
        """Read the children and their data now (setting watches); True if the view changed.

        Raises DiscoveryError when ZooKeeper cannot answer; the last view stays. Reads are
        serialized, so an older read never publishes after a newer one.
        """
        with self._refresh_lock:
            return self._refresh()

    def _refresh(self) -> bool:
        errors = self._kazoo.exceptions
        try:
            try:
                children = self.client.get_children(self.path, watch=self._on_watch)
            except errors.NoNodeError:
                # watch for the node's creation; it may have appeared since
                if self.client.exists(self.path, watch=self._on_watch) is not None:
                    self._wake.set()
                    return False
                children = []
            if len(children) > self.max_children:
                raise DiscoveryError(
                    f"{self.path} has {len(children)} children: expected at most "
                    f"{self.max_children} (max_children=)"
                )
            view: dict[str, str] = {}
            for child in sorted(children):
                try:
                    data, _stat = self.client.get(
                        f"{self.path.rstrip('/')}/{child}", watch=self._on_watch
                    )
                except errors.NoNodeError:
                    continue  # removed meanwhile: the children watch has fired
                view[child] = (data or b"").decode("utf-8", "replace").strip()
        except errors.KazooException as exc:
            raise DiscoveryError(
                f"cannot read {self.path} from ZooKeeper: {type(exc).__name__} {exc}"
            ) from None
        self.reads += 1
        return self._publish(view)
