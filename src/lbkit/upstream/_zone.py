"""nginx's ``zone NAME SIZE;``: upstream state shared by every process of the host.

A zone is a file in ``/dev/shm`` (mode 0600) mapped by every process that opens the same
name; a ``fcntl`` lock on it (plus a thread lock inside each process) serialises changes.
It holds, per peer (keyed by upstream name and address): the smooth-round-robin weights
(``current_weight``, ``effective_weight``), failures and their clocks, the drain flag and
the total connection count; per process: its own connection counts, so that the counts of
a process that died (even by ``kill -9``) are released by the next process that takes the
lock after it is gone (checked at most once per :data:`REAP_INTERVAL`). A process is
identified by its pid and start time (``/proc/PID/stat``), so a reused pid is not
mistaken for the dead process. Sticky ``learn`` sessions live in a zone too
(:class:`ZoneSessions`).

Layout: an array of signed 64-bit integers: a header, ``MAX_PEERS`` peer records,
``MAX_PROCS`` process records (pid, start time, one count per peer), then the session table.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import mmap
import os
import re
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

from lbkit.errors import ConfigError
from lbkit.upstream._peers import PeerState

__all__ = [
    "DEFAULT_ZONE_SIZE",
    "MAX_PEERS",
    "MAX_PROCS",
    "MIN_ZONE_SIZE",
    "Zone",
    "ZonePeers",
    "ZoneSessions",
    "open_zone",
]

#: Peers (across all upstreams using one zone) and processes a zone holds.
MAX_PEERS = 64
MAX_PROCS = 64
#: Seconds between checks for dead processes.
REAP_INTERVAL = 1.0
MIN_ZONE_SIZE = 64 * 1024
MAX_ZONE_SIZE = 1 << 30
DEFAULT_ZONE_SIZE = 1 << 20

_MAGIC = 0x6C626B69745A4E31  # "lbkitZN1"
_HEADER = 16
_PEER = 8  # key0, key1, current_weight, effective_weight, fails, accessed, checked, flags
_PROC = 2 + MAX_PEERS  # pid, start time, conns per peer
_SESSION = 8  # key0, key1, expires_ms, sid_len, sid (32 bytes)
_PEERS_AT = _HEADER
_TOTALS_AT = _PEERS_AT + MAX_PEERS * _PEER
_PROCS_AT = _TOTALS_AT + MAX_PEERS
_SESSIONS_AT = _PROCS_AT + MAX_PROCS * _PROC
_PROBES = 16
_DRAINING = 1
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}\Z")


def zone_directory() -> Path:
    """Where zone files live: ``$LBKIT_ZONE_DIR`` if set, else ``/dev/shm`` when it
    exists, else the temp directory."""
    chosen = os.environ.get("LBKIT_ZONE_DIR")
    if chosen:
        return Path(chosen)
    shm = Path("/dev/shm")  # noqa: S108 - opened O_NOFOLLOW, 0600, owner checked
    return shm if shm.is_dir() else Path(tempfile.gettempdir())


def _key(text: str) -> tuple[int, int]:
    digest = hashlib.md5(text.encode(), usedforsecurity=False).digest()
    return int.from_bytes(digest[:8], "little", signed=True) or 1, int.from_bytes(
        digest[8:], "little", signed=True
    )


def _start_time(pid: int) -> int:
    """The process's start time in clock ticks since boot (0 when /proc cannot tell)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return 0
    fields = stat.rpartition(b")")[2].split()
    return int(fields[19]) if len(fields) > 19 else 0


def _alive(pid: int, start: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return True  # no /proc: trust kill()
    fields = stat.rpartition(b")")[2].split()
    if fields and fields[0] in (b"Z", b"X"):
        return False
    return not (start and len(fields) > 19 and int(fields[19]) != start)


class Zone:
    """One shared-memory zone, as ``zone NAME SIZE;``. Use :func:`open_zone` (one object
    per name and process). Thread-safe; :meth:`locked` serialises across processes."""

    def __init__(
        self, name: str, size: int = DEFAULT_ZONE_SIZE, directory: Path | None = None
    ) -> None:
        if not isinstance(name, str) or not _NAME.match(name):
            raise ConfigError(
                f"invalid zone name {name!r}: expected 1-64 of letters, digits, '_', '.', '-'"
            )
        if not MIN_ZONE_SIZE <= size <= MAX_ZONE_SIZE:
            raise ConfigError(
                f"zone {name!r} size {size} out of range: {MIN_ZONE_SIZE}..{MAX_ZONE_SIZE} bytes"
            )
        self.name = name
        self.path = (directory or zone_directory()) / f"lbkit-zone-{name}"
        self._thread_lock = threading.RLock()
        self._depth = 0
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            if os.fstat(fd).st_uid != os.getuid():
                raise ConfigError(f"zone file {self.path} belongs to another user")
            fcntl.lockf(fd, fcntl.LOCK_EX)
            try:
                existing = os.fstat(fd).st_size
                if existing == 0:
                    os.ftruncate(fd, size)
                else:
                    size = existing
                self._map = mmap.mmap(fd, size)
                self.q = memoryview(self._map).cast("q")
                if self.q[0] == 0:
                    self.q[0] = _MAGIC
                elif self.q[0] != _MAGIC:
                    raise ConfigError(f"{self.path} is not an lbkit zone")
            finally:
                fcntl.lockf(fd, fcntl.LOCK_UN)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        self.size = size
        self.sessions_capacity = (len(self.q) - _SESSIONS_AT) // _SESSION
        if self.sessions_capacity < 1:  # pragma: no cover - MIN_ZONE_SIZE leaves room
            raise ConfigError(f"zone {name!r} of {size} bytes is too small")
        self._pid = 0
        self._proc = -1
        self._next_reap = 0.0

    @contextlib.contextmanager
    def locked(self) -> Iterator[int]:
        """Hold the zone (threads and processes); yields this process's record offset."""
        with self._thread_lock:
            self._depth += 1
            try:
                if self._depth == 1:
                    fcntl.lockf(self._fd, fcntl.LOCK_EX)
                try:
                    yield self._own_proc()
                finally:
                    if self._depth == 1:
                        fcntl.lockf(self._fd, fcntl.LOCK_UN)
            finally:
                self._depth -= 1

    def _own_proc(self) -> int:
        """Offset of this process's record (claimed on first use and after a fork)."""
        now = time.monotonic()
        pid = os.getpid()
        if pid != self._pid or now >= self._next_reap:
            self._reap(pid)
            self._next_reap = now + REAP_INTERVAL
        if pid != self._pid:
            q = self.q
            start = _start_time(pid)
            for i in range(MAX_PROCS):
                at = _PROCS_AT + i * _PROC
                if q[at] == 0:
                    q[at] = pid
                    q[at + 1] = start
                    self._pid, self._proc = pid, at
                    break
            else:
                raise ConfigError(f"zone {self.name!r} is full: at most {MAX_PROCS} processes")
        return self._proc

    def _reap(self, me: int) -> None:
        """Release the counts of processes that are gone."""
        q = self.q
        for i in range(MAX_PROCS):
            at = _PROCS_AT + i * _PROC
            pid = q[at]
            if pid == 0 or (pid == me and at == self._proc):
                continue
            if pid != me and _alive(pid, q[at + 1]):
                continue
            for slot in range(MAX_PEERS):
                held = q[at + 2 + slot]
                if held:
                    q[_TOTALS_AT + slot] -= held
                    q[at + 2 + slot] = 0
            q[at] = 0
            q[at + 1] = 0

    def peer_slot(self, key: str, initial: PeerState) -> int:
        """The slot of the peer ``key`` (created from ``initial``'s state if new)."""
        k0, k1 = _key(key)
        q = self.q
        with self.locked():
            for slot in range(MAX_PEERS):
                at = _PEERS_AT + slot * _PEER
                if q[at] == k0 and q[at + 1] == k1:
                    return slot
                if q[at] == 0:
                    q[at], q[at + 1] = k0, k1
                    q[at + 2] = initial.current_weight
                    q[at + 3] = initial.effective_weight
                    q[at + 4] = initial.fails
                    q[at + 5] = initial.accessed
                    q[at + 6] = initial.checked
                    q[at + 7] = 0
                    return slot
        raise ConfigError(f"zone {self.name!r} is full: at most {MAX_PEERS} peers")

    def close(self) -> None:
        """Unmap and close (the file stays for the other processes)."""
        with self._thread_lock:
            self.q.release()
            self._map.close()
            os.close(self._fd)

    def unlink(self) -> None:
        """Remove the zone's file (processes that have it open keep their mapping)."""
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


_zones: dict[Path, Zone] = {}
_zones_lock = threading.Lock()


def open_zone(name: str, size: int | None = None) -> Zone:
    """The process's :class:`Zone` for ``name`` (opened once, shared by its upstreams)."""
    path = zone_directory() / f"lbkit-zone-{name}"
    with _zones_lock:
        zone = _zones.get(path)
        if zone is None:
            zone = Zone(name, DEFAULT_ZONE_SIZE if size is None else size)
            _zones[path] = zone
        return zone


class ZonePeers:
    """An upstream's view of a zone: loads the shared peer state before a change and
    stores it after (:meth:`synced`)."""

    def __init__(self, zone: Zone, upstream: str) -> None:
        self.zone = zone
        self.upstream = upstream
        self._slots: dict[str, int] = {}

    def bind(self, peers: Iterable[PeerState]) -> None:
        """Give every peer a slot (ConfigError, before anything changes, if the zone is full)."""
        for peer in peers:
            if peer.name not in self._slots:
                self._slots[peer.name] = self.zone.peer_slot(f"{self.upstream}\0{peer.name}", peer)

    @contextlib.contextmanager
    def synced(self, peers: Sequence[PeerState]) -> Iterator[None]:
        """Run the body on the zone's state of ``peers`` and publish what it changed."""
        zone = self.zone
        q = zone.q
        slots = self._slots
        with zone.locked() as proc:
            loaded = []
            for peer in peers:
                slot = slots[peer.name]
                at = _PEERS_AT + slot * _PEER
                peer.current_weight = q[at + 2]
                peer.effective_weight = min(q[at + 3], peer.weight)
                peer.fails = q[at + 4]
                peer.accessed = q[at + 5]
                peer.checked = q[at + 6]
                if q[at + 7] & _DRAINING:
                    peer.draining = True
                    peer.down = True
                conns = q[_TOTALS_AT + slot]
                peer.conns = conns
                loaded.append(conns)
                peer.refresh()
            try:
                yield
            finally:
                for peer, before in zip(peers, loaded, strict=True):
                    slot = slots[peer.name]
                    at = _PEERS_AT + slot * _PEER
                    q[at + 2] = peer.current_weight
                    q[at + 3] = peer.effective_weight
                    q[at + 4] = peer.fails
                    q[at + 5] = peer.accessed
                    q[at + 6] = peer.checked
                    q[at + 7] = _DRAINING if peer.draining else 0
                    delta = peer.conns - before
                    if delta:
                        q[_TOTALS_AT + slot] += delta
                        q[proc + 2 + slot] += delta


class ZoneSessions:
    """``sticky learn`` sessions kept in a zone: every process of the host sees the same
    session -> server id table. Same interface as :class:`~lbkit.balancers.LearnedSessions`;
    ``capacity`` is what the zone's size leaves (64 bytes a session), and a full probe
    window drops the session closest to expiry."""

    def __init__(
        self, zone: Zone, timeout: int = 600, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.zone = zone
        self.timeout = timeout
        self.capacity = zone.sessions_capacity
        self._clock = clock

    def _probe(self, session: str) -> tuple[int, int, list[int]]:
        k0, k1 = _key(session)
        start = (k0 & 0x7FFFFFFFFFFFFFFF) % self.capacity
        offsets = [
            _SESSIONS_AT + ((start + i) % self.capacity) * _SESSION
            for i in range(min(_PROBES, self.capacity))
        ]
        return k0, k1, offsets

    def lookup(self, session: str) -> str | None:
        """The server id learned for ``session`` (refreshed), or ``None``."""
        k0, k1, offsets = self._probe(session)
        now_ms = int(self._clock() * 1000)
        q = self.zone.q
        with self.zone.locked():
            for at in offsets:
                if q[at] == k0 and q[at + 1] == k1:
                    if q[at + 2] <= now_ms:
                        q[at] = q[at + 1] = 0
                        return None
                    q[at + 2] = now_ms + self.timeout * 1000
                    raw = q[at + 4 : at + 8].tobytes()
                    return raw[: q[at + 3]].decode()
        return None

    def learn(self, session: str, sid: str, *, only_known: bool = False) -> None:
        """Remember (or refresh, or move) ``session`` as served by ``sid`` (at most 32
        bytes); with ``only_known``, only a session already held."""
        raw = sid.encode()
        if len(raw) > 32:
            raise ConfigError(f"server id {sid[:80]!r} is longer than 32 bytes")
        k0, k1, offsets = self._probe(session)
        now_ms = int(self._clock() * 1000)
        q = self.zone.q
        with self.zone.locked():
            target = -1
            for at in offsets:
                if q[at] == k0 and q[at + 1] == k1:
                    target = at
                    break
            if target < 0:
                if only_known:
                    return
                target = min(offsets, key=lambda at: q[at + 2] if q[at] else -1)
            q[target], q[target + 1] = k0, k1
            q[target + 2] = now_ms + self.timeout * 1000
            q[target + 3] = len(raw)
            q[target + 4 : target + 8] = memoryview(bytearray(raw.ljust(32, b"\0"))).cast("q")

    def __len__(self) -> int:
        now_ms = int(self._clock() * 1000)
        q = self.zone.q
        with self.zone.locked():
            return sum(
                1
                for i in range(self.capacity)
                if q[_SESSIONS_AT + i * _SESSION] and q[_SESSIONS_AT + i * _SESSION + 2] > now_ms
            )
