"""nginx's ``zone NAME SIZE;``: upstream state shared by every process of the host.

A zone is a file in ``/dev/shm`` (mode 0600) of ``SIZE`` bytes mapped by every process that
opens the same name; a ``fcntl`` lock on it (plus a thread lock inside each process)
serialises changes. As in nginx, the zone holds the upstream's peer list itself, so every
process sees the same membership: :meth:`~lbkit.Upstream.update` and
:meth:`~lbkit.Upstream.drain` in one process are seen by the others at their next pick.
A process configured with the same servers joins the live membership; one configured with
other servers publishes them (:meth:`ZonePeers.join`).

Per peer (keyed by upstream name and address) it holds the server's parameters, the
smooth-round-robin weights, failures and their clocks, the drain flag, slow start, the
response-time average, least_time's times and the connection count, plus one connection
count per process, so
that the counts of a process that died (even by ``kill -9``) are released by the next
process that takes the lock after it is gone (checked at most once per
:data:`REAP_INTERVAL`). A process is identified by its pid and start time
(``/proc/PID/stat``), so a reused pid is not mistaken for the dead process. A zone that no
live process holds any more starts afresh when next opened (nginx recreates its zones at
start too).

Each peer costs :data:`PEER_RECORD_SIZE` bytes, so ``SIZE`` bounds the peers a zone holds
(:func:`zone_size_for`); a zone too small for its upstreams is refused with the size it
would need, before anything is written. A zone holds either upstream peers or sticky
``learn`` sessions (:class:`ZoneSessions`, 64 bytes each), as nginx's zones have one use.

Layout: a header of signed 64-bit integers (magic, size, kind, capacity, version,
membership generation), :data:`MAX_PROCS` process records (pid, start time), then the
records. The version changes with every write, so a process that made the last change
skips reading the peers back (the common case of one busy worker).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import math
import mmap
import operator
import os
import re
import struct
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

import attrs

from lbkit.errors import ConfigError
from lbkit.upstream._peer_times import PeerTimes
from lbkit.upstream._peers import PeerState
from lbkit.upstream._server import Server

__all__ = [
    "DEFAULT_ZONE_SIZE",
    "MAX_PROCS",
    "MAX_ZONE_ADDRESS",
    "MIN_ZONE_SIZE",
    "PEER_RECORD_SIZE",
    "Zone",
    "ZonePeers",
    "ZoneSessions",
    "open_zone",
    "zone_size_for",
]

#: Processes that can hold one zone at a time.
MAX_PROCS = 256
#: Seconds between checks for dead processes.
REAP_INTERVAL = 1.0
#: nginx refuses a zone under 8 pages (``zone "NAME" is too small``).
MIN_ZONE_SIZE = 8 * 4096
MAX_ZONE_SIZE = 1 << 30
DEFAULT_ZONE_SIZE = 1 << 20
#: Reserves a file's blocks (absent on some systems: the zone is then sized only).
_fallocate: Callable[[int, int, int], None] | None = getattr(os, "posix_fallocate", None)
#: Longest server address (bytes) a zone stores: a 253-byte DNS name and a port.
MAX_ZONE_ADDRESS = 264

_MAGIC = 0x6C626B69745A4E32  # "lbkitZN2"
# Header (int64 indexes).
_SIZE, _KIND, _CAPACITY, _VERSION, _MGEN = 1, 2, 3, 4, 5
_PROCS_AT = 64  # bytes; MAX_PROCS x (pid, start time)
_DATA_AT = _PROCS_AT + MAX_PROCS * 16
_PEERS, _SESSIONS = 1, 2
_KIND_NAMES = {_PEERS: "upstream peers", _SESSIONS: "sticky learn sessions"}

# A peer record (byte offsets): key0, key1, upstream key; the server (flags, position,
# weight, max_fails, fail_timeout, max_conns, slow_start, address length, address); the
# state; room for a balancer's own per-peer numbers; one int32 count per process.
#: flags, position, weight, max_fails, fail_timeout, max_conns, slow_start, address
#: length, origin (a digest of the configuration the membership came from).
_CONFIG = struct.Struct("<9q")
_CONFIG_AT = 24
_ADDRESS_AT = _CONFIG_AT + _CONFIG.size
#: conns, current_weight, effective_weight, checked, weight, ramp_start (what a pick may
#: change: :data:`_HOT`), then draining, fails, accessed, requests, response_time.
_STATE = struct.Struct("<10qd")
_HOT = struct.Struct("<6q")
_STATE_AT = _ADDRESS_AT + MAX_ZONE_ADDRESS
#: A balancer's own per-peer numbers: least_time's ``PeerTimes`` (a flag, set once a
#: process stored them, and six ``ngx_msec_t``), shared as nginx's zone shares them.
_EXTRA_AT = _STATE_AT + _STATE.size
#: least_time's per-peer fields, in the order a zone record stores them (after a "stored" flag).
_TIME_FIELDS = tuple(field.name for field in attrs.fields(PeerTimes))
_time_fields = operator.attrgetter(*_TIME_FIELDS)
_TIMES = struct.Struct(f"<q{len(_TIME_FIELDS)}Q")
_COUNTS_AT = _EXTRA_AT + _TIMES.size
#: Bytes one peer takes in a zone.
PEER_RECORD_SIZE = _COUNTS_AT + 4 * MAX_PROCS
_RECORD_Q = PEER_RECORD_SIZE // 8
_MEMBER, _BACKUP, _DOWN, _RESOLVE = 1, 2, 4, 8
_NO_RAMP = -(1 << 63)
_KEYS = struct.Struct("<3q")
_KEY = struct.Struct("<2q")

_SESSION = 8  # int64s: key0, key1, expires_ms, sid_len, sid (32 bytes)
_PROBES = 16
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}\Z")


def zone_size_for(peers: int) -> int:
    """Bytes a zone needs to hold ``peers`` peers (all upstreams using it together)."""
    return max(MIN_ZONE_SIZE, _DATA_AT + peers * PEER_RECORD_SIZE)


def _peer_capacity(size: int) -> int:
    return (size - _DATA_AT) // PEER_RECORD_SIZE


def _kib(size: int) -> str:
    return f"{-(-size // 1024)}k"


def check_zone_fits(name: str, size: int, servers: Sequence[Server]) -> None:
    """Refuse (:class:`~lbkit.ConfigError`) ``servers`` a zone of ``size`` bytes cannot hold."""
    for server in servers:
        if len(server.address.encode()) > MAX_ZONE_ADDRESS:
            raise ConfigError(
                f"server address {server.address[:80]!r} is too long for zone {name!r}: "
                f"at most {MAX_ZONE_ADDRESS} bytes"
            )
    if len(servers) > _peer_capacity(size):
        raise ConfigError(
            f'zone "{name}" is too small for {len(servers)} peers: {size} bytes hold '
            f"{max(0, _peer_capacity(size))}; give at least {_kib(zone_size_for(len(servers)))}"
        )


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
    per name and process). Thread-safe; :meth:`locked` serialises across processes.

    ``size`` is the file's size when this process is the first to open it (or the first
    after every holder is gone); otherwise the zone keeps the size it was made with.
    """

    def __init__(
        self, name: str, size: int = DEFAULT_ZONE_SIZE, directory: Path | None = None
    ) -> None:
        if not isinstance(name, str) or not _NAME.match(name):
            raise ConfigError(
                f"invalid zone name {name!r}: expected 1-64 of letters, digits, '_', '.', '-'"
            )
        if not isinstance(size, int) or size < MIN_ZONE_SIZE:
            raise ConfigError(
                f'zone "{name}" is too small: size {size}, at least {MIN_ZONE_SIZE} bytes '
                "(8 pages, as nginx)"
            )
        if size > MAX_ZONE_SIZE:
            raise ConfigError(f'zone "{name}" size {size} is too large: at most {MAX_ZONE_SIZE}')
        self.name = name
        self.path = (directory or zone_directory()) / f"lbkit-zone-{name}"
        self._thread_lock = threading.RLock()
        self._depth = 0
        self._pid = 0
        self._proc = -1
        self._next_reap = 0.0
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            if os.fstat(fd).st_uid != os.getuid():
                raise ConfigError(f"zone file {self.path} belongs to another user")
            fcntl.lockf(fd, fcntl.LOCK_EX)
            try:
                self._attach(fd, size)
            finally:
                fcntl.lockf(fd, fcntl.LOCK_UN)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def _attach(self, fd: int, size: int) -> None:
        """Map the file (lock held); start it afresh if no live process holds it."""
        existing = os.fstat(fd).st_size
        if existing >= _DATA_AT:
            self._map_file(fd, existing)
            if self.q[0] != _MAGIC:
                self._unmap()
                raise ConfigError(f"{self.path} is not a zone of this lbkit version")
            self._reap(os.getpid())
            if any(self.q[_PROCS_AT // 8 + 2 * i] for i in range(MAX_PROCS)):
                self._own_proc()
                return
            self._unmap()
        os.ftruncate(fd, 0)  # nobody holds it: afresh, all zeroes, at the size asked for
        self._reserve(fd, size)
        self._map_file(fd, size)
        self.q[0] = _MAGIC
        self.q[_SIZE] = size
        self._own_proc()

    def _reserve(self, fd: int, size: int) -> None:
        """Size the file and take its memory now: a zone on a full ``/dev/shm`` is refused
        here, instead of killing the process (SIGBUS) at its first write to a page that
        has no room. Left empty on failure, so no other process attaches to half a zone."""
        try:
            os.ftruncate(fd, size)
            if _fallocate is not None:
                _fallocate(fd, 0, size)
        except OSError as exc:
            os.ftruncate(fd, 0)
            raise ConfigError(
                f'zone "{self.name}" of {size} bytes does not fit in {self.path.parent}: '
                f"{os.strerror(exc.errno) if exc.errno else exc} (free space there, or set "
                f"LBKIT_ZONE_DIR to a directory on a memory file system with room)"
            ) from None

    def _map_file(self, fd: int, size: int) -> None:
        self.map = mmap.mmap(fd, size)
        self.q = memoryview(self.map).cast("q")
        self.i32 = memoryview(self.map).cast("i")
        self.size = size

    def _unmap(self) -> None:
        self.q.release()
        self.i32.release()
        self.map.close()

    @property
    def capacity(self) -> int:
        """Records (peers or sessions) the zone holds; 0 until its use is decided."""
        return self.q[_CAPACITY]

    def claim(self, kind: int) -> None:
        """Decide the zone's use (peers or sessions) or check it is ``kind`` already."""
        with self.locked():
            q = self.q
            if q[_KIND] == 0:
                q[_KIND] = kind
                record = PEER_RECORD_SIZE if kind == _PEERS else _SESSION * 8
                q[_CAPACITY] = (self.size - _DATA_AT) // record
            elif q[_KIND] != kind:
                raise ConfigError(
                    f'zone "{self.name}" is already used for {_KIND_NAMES.get(q[_KIND], "?")}:'
                    f" give the {_KIND_NAMES[kind]} a zone of their own"
                )

    @contextlib.contextmanager
    def locked(self) -> Iterator[int]:
        """Hold the zone (threads and processes); yields this process's index."""
        proc = self.acquire()
        try:
            yield proc
        finally:
            self.release()

    def acquire(self) -> int:
        """Take the zone (reentrant; threads, then processes); this process's index.
        Pair with :meth:`release`."""
        self._thread_lock.acquire()
        if self._depth:
            self._depth += 1
            return self._proc
        try:
            fcntl.lockf(self._fd, fcntl.LOCK_EX)
        except BaseException:
            self._thread_lock.release()
            raise
        self._depth = 1
        if time.monotonic() < self._next_reap and os.getpid() == self._pid:
            return self._proc
        try:
            return self._own_proc()
        except BaseException:
            self.release()
            raise

    def release(self) -> None:
        """Give back what :meth:`acquire` took."""
        self._depth -= 1
        if self._depth == 0:
            fcntl.lockf(self._fd, fcntl.LOCK_UN)
        self._thread_lock.release()

    def _own_proc(self) -> int:
        """This process's index (claimed on first use and after a fork)."""
        now = time.monotonic()
        pid = os.getpid()
        if pid != self._pid or now >= self._next_reap:
            self._reap(pid)
            self._next_reap = now + REAP_INTERVAL
        if pid != self._pid:
            q = self.q
            start = _start_time(pid)
            for i in range(MAX_PROCS):
                at = _PROCS_AT // 8 + 2 * i
                if q[at] == 0:
                    q[at] = pid
                    q[at + 1] = start
                    self._pid, self._proc = pid, i
                    break
            else:
                raise ConfigError(f'zone "{self.name}" is full: at most {MAX_PROCS} processes')
        return self._proc

    def _reap(self, me: int) -> None:
        """Release the counts of processes that are gone (and free the records of removed
        peers nobody uses any more)."""
        q = self.q
        for i in range(MAX_PROCS):
            at = _PROCS_AT // 8 + 2 * i
            pid = q[at]
            if pid == 0 or (pid == me and i == self._proc):
                continue
            if pid != me and _alive(pid, q[at + 1]):
                continue
            if q[_KIND] == _PEERS:
                self._release_proc(i)
            q[at] = 0
            q[at + 1] = 0
            q[_VERSION] += 1

    def _release_proc(self, proc: int) -> None:
        """Drop a dead process's counts; every peer's total becomes the sum of the live
        processes' counts again (also mending a total the dead one left half-changed)."""
        i32, q = self.i32, self.q
        keys0 = q[_DATA_AT // 8 :: PEER_RECORD_SIZE // 8][: q[_CAPACITY]].tolist()
        for slot, k0 in enumerate(keys0):
            if not k0:
                continue
            at = _DATA_AT + slot * PEER_RECORD_SIZE
            counts = (at + _COUNTS_AT) // 4
            i32[counts + proc] = 0
            conns = sum(i32[counts : counts + MAX_PROCS].tolist())
            q[(at + _STATE_AT) // 8] = conns
            if conns <= 0 and not q[(at + _CONFIG_AT) // 8] & _MEMBER:
                self.free_record(at)

    def free_record(self, at: int) -> None:
        """Zero the record at byte offset ``at`` (lock held)."""
        self.map[at : at + PEER_RECORD_SIZE] = bytes(PEER_RECORD_SIZE)

    def close(self) -> None:
        """Unmap and close (the file stays for the other processes)."""
        with self._thread_lock:
            self._unmap()
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


def _server_of(config: tuple[int, ...], address: bytes) -> Server:
    flags, _, weight, max_fails, fail_timeout, max_conns, slow_start, _, _ = config
    return Server(
        address.decode(),
        weight=weight,
        max_fails=max_fails,
        fail_timeout=fail_timeout,
        backup=bool(flags & _BACKUP),
        down=bool(flags & _DOWN),
        max_conns=max_conns,
        slow_start=slow_start,
        resolve=bool(flags & _RESOLVE),
    )


class ZonePeers:
    """An upstream's peers in a zone: the shared membership (:meth:`join`,
    :meth:`publish`, :meth:`members`) and the shared state of each peer (:meth:`synced`)."""

    def __init__(self, zone: Zone, upstream: str) -> None:
        zone.claim(_PEERS)
        self.zone = zone
        self.upstream = upstream
        self._ukey = _key(upstream)[0]
        self._slots: dict[str, int] = {}
        self._slot_of: dict[PeerState, int] = {}
        self._whole: tuple[PeerState, ...] = ()
        self._members: frozenset[PeerState] = frozenset()
        self._whole_at: list[tuple[PeerState, int]] = []
        self._seen = -1  # the zone's version when our peers last matched it
        self._mgen = -1  # the membership generation we follow

    # -- membership ------------------------------------------------------------------

    def _record_key(self, address: str) -> tuple[int, int, int]:
        k0, k1 = _key(f"{self.upstream}\0{address}")
        return k0, k1, self._ukey

    def _index(self) -> tuple[dict[str, int], list[int]]:
        """This upstream's records by address (members and removed ones still in use)
        and the free slots (lock held)."""
        zone = self.zone
        q, buf, capacity = zone.q, zone.map, zone.capacity
        first = _DATA_AT // 8
        keys0 = q[first : first + capacity * _RECORD_Q : _RECORD_Q].tolist()
        ukeys = q[first + 2 : first + 2 + capacity * _RECORD_Q : _RECORD_Q].tolist()
        ours: dict[str, int] = {}
        free = []
        for slot, (k0, uk) in enumerate(zip(keys0, ukeys, strict=True)):
            if k0 == 0:
                free.append(slot)
            elif uk == self._ukey:
                at = _DATA_AT + slot * PEER_RECORD_SIZE
                length = q[(at + _CONFIG_AT) // 8 + 7]
                address = bytes(buf[at + _ADDRESS_AT : at + _ADDRESS_AT + length]).decode()
                ours[address] = slot
        return ours, free

    def _member_servers(self, index: dict[str, int]) -> tuple[Server, ...]:
        buf = self.zone.map
        found = []
        for address, slot in index.items():
            at = _DATA_AT + slot * PEER_RECORD_SIZE
            config = _CONFIG.unpack_from(buf, at + _CONFIG_AT)
            if config[0] & _MEMBER:
                found.append((config[1], _server_of(config, address.encode())))
        return tuple(server for _, server in sorted(found, key=lambda item: item[0]))

    def _follow(self, index: dict[str, int]) -> None:
        self._slots = index
        self._mgen = self.zone.q[_MGEN]
        self._seen = -1

    def join(self, servers: Sequence[Server]) -> tuple[Server, ...]:
        """The upstream's servers: the zone's if a process configured as this one (the
        same ``servers``) published them, changed since or not; else ``servers``,
        published (a new configuration, as an nginx reload). (ConfigError, before
        anything is written, if they do not fit.)"""
        origin = _origin(servers)
        with self.zone.locked():
            index, _ = self._index()
            current = self._member_servers(index)
            if current and self._stored_origin(index) == origin:
                self._follow(index)
                return current
            self.publish(servers, origin)
            return tuple(servers)

    def _stored_origin(self, index: dict[str, int]) -> int:
        """The configuration digest the upstream's records carry (0 if none)."""
        for slot in index.values():
            at = _DATA_AT + slot * PEER_RECORD_SIZE
            return int(self.zone.q[(at + _CONFIG_AT) // 8 + 8])
        return 0

    def changed(self) -> bool:
        """Whether another process changed the membership since :meth:`members` (a hint,
        read without the lock)."""
        return self.zone.q[_MGEN] != self._mgen

    def members(self) -> tuple[Server, ...]:
        """The zone's servers for this upstream, in order; follow them from now on."""
        with self.zone.locked():
            index, _ = self._index()
            self._follow(index)
            return self._member_servers(index)

    def publish(self, servers: Sequence[Server], origin: int | None = None) -> None:
        """Make ``servers`` the upstream's membership for every process: new addresses
        start fresh, staying ones keep their state and take the new parameters (as
        :meth:`PeerState.reconfigure`), removed ones are freed once no connection uses
        them. ConfigError, before anything is written, if the zone cannot hold them."""
        zone = self.zone
        check_zone_fits(zone.name, zone.size, servers)
        with zone.locked():
            q, buf = zone.q, zone.map
            index, free = self._index()
            if origin is None:  # an update: the membership keeps its configuration's mark
                origin = self._stored_origin(index)
            new = [s for s in servers if s.address not in index]
            if len(new) > len(free):
                in_use = zone.capacity - len(free)
                raise ConfigError(
                    f'zone "{zone.name}" is too small: {in_use} peers in use and {len(new)} new '
                    f"need {_kib(zone_size_for(in_use + len(new)))} (it has {zone.size} bytes)"
                )
            wanted = {s.address for s in servers}
            for address, slot in list(index.items()):
                if address not in wanted:
                    # Retired: out of the index (the address may come back, fresh); freed
                    # once the connections still running on it end.
                    del index[address]
                    at = _DATA_AT + slot * PEER_RECORD_SIZE
                    q[at // 8 + 2] = 0
                    q[(at + _CONFIG_AT) // 8] &= ~_MEMBER
                    if q[(at + _STATE_AT) // 8] <= 0:
                        zone.free_record(at)
            free.reverse()
            for position, server in enumerate(servers):
                raw = server.address.encode()
                kept = index.get(server.address)
                if kept is None:
                    index[server.address] = free[-1]
                    at = _DATA_AT + free.pop() * PEER_RECORD_SIZE
                    _KEYS.pack_into(buf, at, *self._record_key(server.address))
                    state = PeerState.from_server(server, position)
                else:
                    at = _DATA_AT + kept * PEER_RECORD_SIZE
                    config = _CONFIG.unpack_from(buf, at + _CONFIG_AT)
                    state = PeerState.from_server(_server_of(config, raw), position)
                    _load(state, _STATE.unpack_from(buf, at + _STATE_AT))
                    state.reconfigure(server, position)
                flags = (
                    _MEMBER
                    | (_BACKUP if server.backup else 0)
                    | (_DOWN if server.down else 0)
                    | (_RESOLVE if server.resolve else 0)
                )
                _CONFIG.pack_into(
                    buf,
                    at + _CONFIG_AT,
                    flags,
                    position,
                    server.weight,
                    server.max_fails,
                    server.fail_timeout,
                    server.max_conns,
                    server.slow_start,
                    len(raw),
                    origin,
                )
                buf[at + _ADDRESS_AT : at + _ADDRESS_AT + len(raw)] = raw
                _STATE.pack_into(buf, at + _STATE_AT, *_dump(state))
            q[_MGEN] += 1
            q[_VERSION] += 1
            self._follow(index)

    def bind(self, peers: Iterable[PeerState]) -> None:
        """Use ``peers`` (the process's states of the members) from now on; they are
        loaded from the zone at the next :meth:`synced`. States of removed peers keep
        their records while this process still has connections on them."""
        self._whole = tuple(peers)
        self._members = frozenset(self._whole)
        slots = self._slots
        slot_of = {peer: slots[peer.name] for peer in self._whole if peer.name in slots}
        buf, i32 = self.zone.map, self.zone.i32
        proc = self.zone._proc
        for peer, slot in self._slot_of.items():
            if peer not in slot_of:
                at = _DATA_AT + slot * PEER_RECORD_SIZE
                if (
                    _KEY.unpack_from(buf, at) == self._record_key(peer.name)[:2]
                    and i32[(at + _COUNTS_AT) // 4 + proc] > 0
                ):
                    slot_of[peer] = slot
        self._slot_of = slot_of
        self._whole_at = [
            (peer, _DATA_AT + slot_of[peer] * PEER_RECORD_SIZE)
            for peer in self._whole
            if peer in slot_of
        ]
        self._seen = -1

    def moved(self, peers: Iterable[PeerState]) -> set[str]:
        """Names of ``peers`` whose address the zone now keeps in another record (another
        process removed and added it again): they must start fresh here too."""
        slots = self._slots
        return {
            peer.name
            for peer in peers
            if peer.name in slots and self._slot_of.get(peer, slots[peer.name]) != slots[peer.name]
        }

    def forget(self, peer: PeerState) -> None:
        """Drop a removed peer whose record was freed."""
        self._slot_of.pop(peer, None)

    def ramping(self) -> list[PeerState]:
        """The members on their slow-start ramp (as last loaded from the zone)."""
        return [peer for peer in self._whole if peer.ramp_start is not None]

    # -- state ---------------------------------------------------------------------------

    def synced(self, peers: Sequence[PeerState] | None = None) -> _Synced:
        """Context manager: run the body on the zone's state of ``peers`` (all members if
        ``None``: a pick, which changes only the fields of :data:`_HOT`) and publish what it
        changed. A peer whose record another process removed meanwhile is taken as down
        until the upstream follows the new membership."""
        return _Synced(self, peers)


class _Synced:
    """:meth:`ZonePeers.synced`: load under the zone's lock (``with`` gives True when
    something was loaded), store and unlock at exit."""

    __slots__ = ("_current", "_held", "_peers", "_proc", "_stale", "_view")

    def __init__(self, view: ZonePeers, peers: Sequence[PeerState] | None) -> None:
        self._view = view
        self._peers = peers

    def __enter__(self) -> bool:
        view = self._view
        zone = view.zone
        self._proc = zone.acquire()
        try:
            q, buf = zone.q, zone.map
            current = self._current = q[_VERSION] == view._seen
            stale = self._stale = q[_MGEN] != view._mgen
            if current and not stale and self._peers is None:
                self._held = view._whole_at  # the common case: we made the last change
                return False
            slot_of = view._slot_of
            members = view._members
            peers = view._whole if self._peers is None else self._peers
            held = self._held = []
            for peer in peers:
                slot = slot_of.get(peer)
                if slot is None:
                    continue
                at = _DATA_AT + slot * PEER_RECORD_SIZE
                if stale and (
                    _KEY.unpack_from(buf, at) != view._record_key(peer.name)[:2]
                    or (self._peers is None and not q[(at + _CONFIG_AT) >> 3] & _MEMBER)
                ):
                    # Removed by another process: no pick until the upstream follows.
                    peer.down = True
                    peer.refresh()
                    continue
                if not current or peer not in members:
                    # (the version says nothing of removed peers still in use: load them)
                    _load(peer, _STATE.unpack_from(buf, at + _STATE_AT))
                    if peer.times is not None:
                        _load_times(peer.times, _TIMES.unpack_from(buf, at + _EXTRA_AT))
                held.append((peer, at))
            return not current
        except BaseException:
            zone.release()
            raise

    def __exit__(self, *exc: object) -> None:
        view = self._view
        zone = view.zone
        try:
            q, buf, i32 = zone.q, zone.map, zone.i32
            proc = self._proc
            whole = self._peers is None
            hot, state = _HOT.pack_into, _STATE.pack_into
            for peer, at in self._held:
                conns = peer.conns
                before = q[(at + _STATE_AT) >> 3]
                if whole:
                    ramp = peer.ramp_start
                    hot(
                        buf,
                        at + _STATE_AT,
                        conns,
                        peer.current_weight,
                        peer.effective_weight,
                        peer.checked,
                        peer.weight,
                        _NO_RAMP if ramp is None else ramp,
                    )
                else:
                    state(buf, at + _STATE_AT, *_dump(peer))
                times = peer.times
                if times is not None:
                    _TIMES.pack_into(buf, at + _EXTRA_AT, 1, *_time_fields(times))
                if conns != before:
                    i32[((at + _COUNTS_AT) >> 2) + proc] += conns - before
                    if conns <= 0 and not q[(at + _CONFIG_AT) >> 3] & _MEMBER:
                        zone.free_record(at)
                        view.forget(peer)
            q[_VERSION] += 1
            if self._current or (whole and not self._stale):
                view._seen = q[_VERSION]
        finally:
            zone.release()


def _load(peer: PeerState, state: tuple[int | float, ...]) -> None:
    """Set ``peer``'s runtime fields from a zone record's state."""
    conns, cw, ew, checked, weight, ramp, draining, fails, accessed, requests, rt = state
    peer.conns = int(conns)
    peer.current_weight = int(cw)
    peer.effective_weight = int(ew)
    peer.fails = int(fails)
    peer.accessed = int(accessed)
    peer.checked = int(checked)
    peer.weight = int(weight)
    peer.ramp_start = None if ramp == _NO_RAMP else int(ramp)
    peer.requests = int(requests)
    peer.response_time = None if math.isnan(rt) else rt
    if draining:
        peer.draining = True
        peer.down = True
    peer.refresh()


def _origin(servers: Sequence[Server]) -> int:
    """A digest of a configured server list (which process configuration a zone's
    membership came from)."""
    return _key("\n".join(repr(server) for server in servers))[0]


def _load_times(times: PeerTimes, stored: tuple[int, ...]) -> None:
    """Take least_time's shared times, once some process stored them."""
    if stored[0]:
        for name, value in zip(_TIME_FIELDS, stored[1:], strict=True):
            setattr(times, name, value)


def _dump(peer: PeerState) -> tuple[int | float, ...]:
    ramp = peer.ramp_start
    rt = peer.response_time
    return (
        peer.conns,
        peer.current_weight,
        peer.effective_weight,
        peer.checked,
        peer.weight,
        _NO_RAMP if ramp is None else ramp,
        int(peer.draining),
        peer.fails,
        peer.accessed,
        peer.requests,
        math.nan if rt is None else rt,
    )


class ZoneSessions:
    """``sticky learn`` sessions kept in a zone: every process of the host sees the same
    session -> server id table. Same interface as :class:`~lbkit.balancers.LearnedSessions`;
    ``capacity`` is what the zone's size holds (64 bytes a session), and a full probe
    window drops the session closest to expiry."""

    def __init__(
        self, zone: Zone, timeout: int = 600, clock: Callable[[], float] = time.monotonic
    ) -> None:
        zone.claim(_SESSIONS)
        self.zone = zone
        self.timeout = timeout
        self.capacity = zone.capacity
        self._clock = clock

    def _probe(self, session: str) -> tuple[int, int, list[int]]:
        k0, k1 = _key(session)
        start = (k0 & 0x7FFFFFFFFFFFFFFF) % self.capacity
        offsets = [
            _DATA_AT // 8 + ((start + i) % self.capacity) * _SESSION
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
        first = _DATA_AT // 8
        with self.zone.locked():
            return sum(
                1
                for i in range(self.capacity)
                if q[first + i * _SESSION] and q[first + i * _SESSION + 2] > now_ms
            )
