"""``SqlStore`` / ``AsyncSqlStore``: sessions in PostgreSQL, MariaDB/MySQL or SQLite.

SQLAlchemy Core hides the dialects, so an application can hand over the engine it already
has. Every store call is a short plan of single statements, each its own autocommitted
transaction: a read is one ``SELECT``, a write one upsert or one ``UPDATE ... WHERE version =
:seen``, so a row lock lives for one statement and two writers can never deadlock on each
other's locks. The plans are sans-I/O generators (yield a statement, receive its outcome);
the sync and asyncio stores only drive them.

Table (``create_table()`` makes it; operators may create it themselves)::

    CREATE TABLE lbkit_sessions (
        id      VARCHAR(200) PRIMARY KEY,  -- MySQL: CHARACTER SET ascii COLLATE ascii_bin
        value   BYTEA NOT NULL,            -- MySQL: LONGBLOB, SQLite: BLOB
        version BIGINT NOT NULL,           -- random, never repeats for a key
        expires DOUBLE PRECISION NULL      -- Unix time in seconds; NULL = no TTL
    );
    CREATE INDEX lbkit_sessions_expires ON lbkit_sessions (expires);

Needs ``pip install 'lbkit[sql]'`` (SQLAlchemy 2, psycopg 3, PyMySQL, asyncmy).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Generator, Iterator
from types import TracebackType
from typing import Any

import attrs

from lbkit.errors import ConfigError, SessionConflict, StoreError, StoreUnavailable
from lbkit.sessions.base import (
    ABSENT,
    DEFAULT_MAX_VALUE,
    Version,
    check_set,
    check_ttl,
    new_version,
    validate_key,
)

try:
    import sqlalchemy as sa
    from sqlalchemy.dialects import mysql, postgresql, sqlite
    from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
except ImportError as _exc:  # pragma: no cover - depends on the environment
    raise ConfigError("SqlStore needs SQLAlchemy and drivers: pip install 'lbkit[sql]'") from _exc

__all__ = ["AsyncSqlStore", "SqlStore", "sessions_table"]

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}\Z")
#: Plain URL schemes and the driver each uses (sync, asyncio).
_DRIVERS = {
    "postgresql": ("postgresql+psycopg", "postgresql+psycopg"),
    "postgres": ("postgresql+psycopg", "postgresql+psycopg"),
    "mysql": ("mysql+pymysql", "mysql+asyncmy"),
    "mariadb": ("mysql+pymysql", "mysql+asyncmy"),
    "sqlite": ("sqlite", None),
}
#: SQLSTATEs / MySQL error numbers meaning "this statement lost a lock race: run it again".
_RETRY_SQLSTATES = frozenset({"40P01", "40001"})
_RETRY_MYSQL = frozenset({1213})
#: Driver errors meaning the database is down, restarting, or did not answer in time.
_UNAVAILABLE = (
    sa.exc.OperationalError,
    sa.exc.InterfaceError,
    sa.exc.InternalError,
    sa.exc.TimeoutError,
)


def sessions_table(name: str = "lbkit_sessions", metadata: sa.MetaData | None = None) -> sa.Table:
    """The sessions table as SQLAlchemy Core metadata (for ``create_table()`` or Alembic)."""
    if not _IDENTIFIER.match(name):
        raise ConfigError(
            f"invalid table name {name!r}: expected a letter or _ then up to 62 of A-Z a-z 0-9 _"
        )
    key_type = sa.String(200).with_variant(
        mysql.VARCHAR(200, charset="ascii", collation="ascii_bin"), "mysql", "mariadb"
    )
    value_type = sa.LargeBinary().with_variant(mysql.LONGBLOB(), "mysql", "mariadb")
    return sa.Table(
        name,
        metadata if metadata is not None else sa.MetaData(),
        sa.Column("id", key_type, primary_key=True),
        sa.Column("value", value_type, nullable=False),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("expires", sa.Double, nullable=True),
        sa.Index(f"{name}_expires", "expires"),
    )


@attrs.frozen
class _Outcome:
    """What the shell reports back for one statement."""

    rowcount: int
    rows: list[tuple[Any, ...]]
    #: The statement ran a second time after its connection broke: its first run may
    #: have committed, so "no row matched" may mean "my first run matched it".
    repeated: bool = False


class _Retry(Exception):
    """The statement was a deadlock victim (rolled back): run the plan again."""


class _Duplicate(Exception):
    """Thrown into a plan when its INSERT hit an existing key."""

    def __init__(self, repeated: bool) -> None:
        super().__init__("duplicate key")
        self.repeated = repeated


#: A plan yields statements, receives their outcomes, and returns the call's result.
_Plan = Generator[sa.Executable, _Outcome, Any]


@attrs.frozen
class _Statements:
    """The SQL of every store operation for one table and dialect (no I/O)."""

    table: sa.Table
    dialect: str
    max_value: int
    clock: Callable[[], float]

    def _live(self, now: float) -> sa.ColumnElement[bool]:
        t = self.table
        return sa.or_(t.c.expires.is_(None), t.c.expires > now)

    def read(self, key: str) -> _Plan:
        validate_key(key)
        t = self.table
        out = yield sa.select(t.c.value, t.c.version).where(t.c.id == key, self._live(self.clock()))
        return None if not out.rows else (bytes(out.rows[0][0]), int(out.rows[0][1]))

    def write(self, key: str, value: bytes, ttl: float | None, if_version: Version | None) -> _Plan:
        data, ttl = check_set(key, value, ttl, if_version, self.max_value)
        t = self.table
        now = self.clock()
        expires = None if ttl is None else now + ttl
        version = new_version(ABSENT if if_version is None else if_version)
        row = {"id": key, "value": data, "version": version, "expires": expires}
        if if_version is None:
            # a session is created once and saved many times: UPDATE first (on a hot row
            # MariaDB runs it twice as fast as an upsert), the upsert only for a new key
            out = yield sa.update(t).where(t.c.id == key).values(row)
            if out.rowcount != 1:
                yield self._upsert(row)
        elif if_version == ABSENT:
            # an expired row counts as absent: clear it, then a plain INSERT that fails if
            # another writer holds the key (each its own statement: no gap-lock deadlock)
            yield sa.delete(t).where(t.c.id == key, t.c.expires <= now)
            try:
                yield sa.insert(t).values(row)
            except _Duplicate as dup:
                if not (dup.repeated and (yield from self._holds(key, version))):
                    raise SessionConflict(f"session {key!r} exists: expected it absent") from None
        else:
            out = yield (
                sa.update(t)
                .where(t.c.id == key, t.c.version == if_version, self._live(now))
                .values(value=data, version=version, expires=expires)
            )
            if out.rowcount != 1 and not (out.repeated and (yield from self._holds(key, version))):
                raise SessionConflict(
                    f"session {key!r} changed, was deleted or expired since version {if_version}"
                )
        return version

    def _holds(self, key: str, version: Version) -> _Plan:
        """Whether ``key`` has ``version`` (random, so only this call can have written it)."""
        t = self.table
        out = yield sa.select(t.c.version).where(t.c.id == key)
        return bool(out.rows) and int(out.rows[0][0]) == version

    def _upsert(self, row: dict[str, Any]) -> sa.Executable:
        # the new columns come from the inserted row (excluded / VALUES()), so the value
        # travels once: a value near the limit stays within MySQL's max_allowed_packet
        fresh = ("value", "version", "expires")
        if self.dialect == "postgresql":
            pg = postgresql.insert(self.table).values(row)
            return pg.on_conflict_do_update(
                index_elements=["id"], set_={name: pg.excluded[name] for name in fresh}
            )
        if self.dialect in ("mysql", "mariadb"):
            my = mysql.insert(self.table).values(row)
            return my.on_duplicate_key_update({name: my.inserted[name] for name in fresh})
        if self.dialect == "sqlite":
            lite = sqlite.insert(self.table).values(row)
            return lite.on_conflict_do_update(
                index_elements=["id"], set_={name: lite.excluded[name] for name in fresh}
            )
        raise ConfigError(
            f"SqlStore does not support the {self.dialect!r} dialect: "
            "expected postgresql, mysql, mariadb or sqlite"
        )

    def remove(self, key: str) -> _Plan:
        validate_key(key)
        t = self.table
        now = self.clock()
        out = yield sa.delete(t).where(t.c.id == key, self._live(now))
        if out.rowcount == 0:
            yield sa.delete(t).where(t.c.id == key)  # an expired leftover, if any
        return out.rowcount > 0

    def extend(self, key: str, ttl: float) -> _Plan:
        validate_key(key)
        limit = check_ttl(ttl)
        t = self.table
        now = self.clock()
        expires = None if limit is None else now + limit
        out = yield sa.update(t).where(t.c.id == key, self._live(now)).values(expires=expires)
        return out.rowcount > 0

    def purge(self, batch_size: int) -> _Plan:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"invalid batch_size {batch_size!r}: expected an int >= 1")
        t = self.table
        total = 0
        while True:
            now = self.clock()
            found = yield sa.select(t.c.id).where(t.c.expires <= now).limit(batch_size)
            keys = [row[0] for row in found.rows]
            if not keys:
                return total
            gone = yield sa.delete(t).where(t.c.id.in_(keys), t.c.expires <= now)
            total += gone.rowcount
            if len(keys) < batch_size:
                return total


def _driver_url(url: str | sa.URL, asynchronous: bool) -> sa.URL:
    parsed = sa.make_url(url)
    drivers = _DRIVERS.get(parsed.drivername)
    if drivers is None:
        return parsed  # an explicit dialect+driver: used as given
    chosen = drivers[1 if asynchronous else 0]
    if chosen is None:
        raise ConfigError(
            f"AsyncSqlStore cannot use {parsed.drivername}: use AsyncSqliteStore for SQLite"
        )
    return parsed.set(drivername=chosen)


def _connect_args(url: sa.URL, timeout: float) -> dict[str, Any]:
    seconds = max(1, round(timeout))
    if url.get_backend_name() == "postgresql":
        ms = int(timeout * 1000)
        return {
            "connect_timeout": seconds,
            "options": f"-c statement_timeout={ms} -c lock_timeout={ms}",
        }
    if url.get_backend_name() in ("mysql", "mariadb"):
        args: dict[str, Any] = {"connect_timeout": seconds}
        if url.get_driver_name() == "pymysql":
            args |= {"read_timeout": timeout, "write_timeout": timeout}
        # a row-lock wait ends within the timeout (whole seconds, MySQL and MariaDB alike)
        args["init_command"] = f"SET SESSION innodb_lock_wait_timeout = {math.ceil(timeout)}"
        return args
    if url.get_backend_name() == "sqlite":
        return {"timeout": timeout, "check_same_thread": False}
    return {}


def _engine_options(pool_size: int, timeout: float) -> dict[str, Any]:
    if isinstance(pool_size, bool) or not isinstance(pool_size, int) or pool_size < 1:
        raise ConfigError(f"invalid pool_size {pool_size!r}: expected an int >= 1")
    return {
        "pool_size": pool_size,
        "max_overflow": pool_size,
        "pool_timeout": timeout,
        "pool_pre_ping": False,  # see _Repeat
        "isolation_level": "AUTOCOMMIT",
        # every statement commits by itself: nothing to roll back when a connection returns
        "pool_reset_on_return": None,
    }


class _Repeat:
    """Once per call, a statement whose connection broke runs again on a fresh one.

    The pool keeps connections without pinging them first (a ping per call costs 20-30%);
    after a database restart the first statement on an old connection fails as a
    disconnect, and runs again. Its first run may have committed: the plan is told
    (``repeated``) and confirms a write by its random version before acknowledging it.
    """

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.used = False
        self.now = False

    def allowed(self, exc: sa.exc.DBAPIError) -> bool:
        if self.used or not exc.connection_invalidated or time.monotonic() >= self.deadline:
            return False
        self.used = self.now = True
        return True


class _Watchdog:
    """Ends a sync call that outlives its deadline by shutting down its socket.

    psycopg's synchronous connection has no read timeout (against a hung server, stopped or
    partitioned, a statement would wait forever) and PyMySQL's bounds each read, not the
    call. Each call arms the watchdog with its
    connection's socket and deadline and disarms it when done; one thread per store sleeps
    until the earliest deadline and shuts down (never closes) the sockets that are late,
    so the blocked call fails at once as a broken connection.
    """

    def __init__(self) -> None:
        self._wake = threading.Condition()
        self._armed: dict[int, tuple[float, int]] = {}
        self._tokens = 0
        self._sleeping_until = float("inf")
        self._thread: threading.Thread | None = None
        self._closed = False

    def arm(self, fd: int, deadline: float) -> int:
        with self._wake:
            self._tokens += 1
            self._armed[self._tokens] = (deadline, fd)
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(
                    target=self._watch, name="lbkit-sql-watchdog", daemon=True
                )
                self._thread.start()
            elif deadline < self._sleeping_until:
                self._wake.notify()
            return self._tokens

    def disarm(self, token: int) -> None:
        with self._wake:
            self._armed.pop(token, None)

    def close(self) -> None:
        with self._wake:
            self._closed = True
            self._wake.notify()
            thread = self._thread
        if thread is not None:
            thread.join()

    def _watch(self) -> None:
        with self._wake:
            while not self._closed:
                now = time.monotonic()
                for token, (deadline, fd) in list(self._armed.items()):
                    if deadline <= now:
                        self._armed.pop(token, None)
                        _shut_down(fd)
                self._sleeping_until = min(
                    (deadline for deadline, _ in self._armed.values()), default=float("inf")
                )
                wait = self._sleeping_until - now
                self._wake.wait(None if wait == float("inf") else wait)


def _socket_of(connection: Any) -> int | None:
    """The socket of a psycopg (``fileno()``) or PyMySQL (``_sock``) connection, if any."""
    fileno = getattr(connection, "fileno", None)
    if fileno is None:
        sock = getattr(connection, "_sock", None)
        fileno = getattr(sock, "fileno", None)
    return None if fileno is None else int(fileno())


def _shut_down(fd: int) -> None:
    try:
        sock = socket.socket(fileno=os.dup(fd))
    except OSError:
        return
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    finally:
        sock.close()


class _DeadlineConnect:
    """Bounds a sync connection attempt by the calling store call's remaining time.

    Drivers bound connecting by their own whole-second timeouts (libpq: at least 2 s), and
    a call may reach the pool with little of its time left. A store call records its
    deadline here; the engine's ``do_connect`` hook then connects on a helper thread and
    waits only the remaining time. A late attempt is abandoned: its thread ends within the
    driver's connect timeout and closes the connection it may still get.
    """

    def __init__(self, late: Callable[[], Exception]) -> None:
        self._late = late
        self._local = threading.local()

    @contextlib.contextmanager
    def until(self, deadline: float) -> Iterator[None]:
        self._local.deadline = deadline
        try:
            yield
        finally:
            self._local.deadline = None

    def __call__(
        self, dialect: Any, _record: Any, cargs: list[Any], cparams: dict[str, Any]
    ) -> Any:
        deadline: float | None = getattr(self._local, "deadline", None)
        if deadline is None:
            return None  # not within a store call (create_table): the driver's own timeout
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise self._late()
        done = threading.Event()
        lock = threading.Lock()
        box: list[Any] = []
        abandoned = False

        def attempt() -> None:
            try:
                conn = dialect.connect(*cargs, **cparams)
            except BaseException as exc:  # handed to the caller, or dropped if it left
                box.append(exc)
                done.set()
                return
            with lock:
                if not abandoned:
                    box.append(conn)
                    done.set()
                    return
            with contextlib.suppress(Exception):
                conn.close()

        threading.Thread(target=attempt, name="lbkit-sql-connect", daemon=True).start()
        if not done.wait(remaining):
            with lock:
                if not done.is_set():
                    abandoned = True
                    raise self._late()
        if isinstance(box[0], BaseException):
            raise box[0]
        return box[0]


def _check_timeout(timeout: float) -> float:
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout < 1e6:
        raise ConfigError(f"invalid timeout {timeout!r}: expected seconds > 0")
    return float(timeout)


def _retryable(exc: sa.exc.DBAPIError) -> bool:
    orig = exc.orig
    if getattr(orig, "sqlstate", None) in _RETRY_SQLSTATES:
        return True
    args: tuple[Any, ...] = getattr(orig, "args", ())
    return bool(args) and args[0] in _RETRY_MYSQL


class _Shell:
    """What the sync and async stores share: configuration, statements, error mapping."""

    capabilities = frozenset({"ttl", "touch", "versions"})

    def _setup(
        self,
        engine: Any,
        table: str,
        max_value: int,
        timeout: float,
        clock: Callable[[], float],
    ) -> None:
        self.engine = engine
        self.max_value = max_value
        self.timeout = timeout
        self.address = engine.url.render_as_string(hide_password=True)
        self.table = sessions_table(table)
        self._sql = _Statements(self.table, engine.dialect.name, max_value, clock)
        #: Statements run again because the database chose them as a deadlock victim.
        self.deadlock_retries = 0
        self._count_lock = threading.Lock()

    def _unavailable(self, exc: BaseException) -> StoreUnavailable:
        err = StoreUnavailable(
            f"SQL store {self.address} unavailable: {type(exc).__name__}: {exc}",
            address=self.address,
        )
        err.__cause__ = exc
        return err

    def _late(self) -> StoreUnavailable:
        return StoreUnavailable(
            f"SQL store {self.address} did not answer within {self.timeout}s",
            address=self.address,
        )

    def _classify(self, exc: Exception, deadline: float) -> None:
        """Return if the plan may run again (a deadlock victim), else raise a store error."""
        if isinstance(exc, sa.exc.DBAPIError) and _retryable(exc) and time.monotonic() < deadline:
            with self._count_lock:
                self.deadlock_retries += 1
            return
        if isinstance(exc, _UNAVAILABLE):
            raise self._unavailable(exc) from exc
        if isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated:
            raise self._unavailable(exc) from exc
        if isinstance(exc, sa.exc.SQLAlchemyError):
            raise StoreError(
                f"SQL store {self.address} failed ({exc}); is the table {self.table.name} "
                "there? create it with create_table()"
            ) from exc
        raise exc


class _Exchange:
    """One run of a plan: feeds it what each statement returned, and maps how the run ended.

    Both shells drive a plan the same way; only how they execute a statement differs. Used as
    ``with``: the first statement is asked for on entry (the plan checks its arguments
    before any I/O); on exit the plan's return value becomes :attr:`result`, a database error
    becomes a store error (or :class:`_Retry` for a deadlock victim), and the plan is closed.
    """

    def __init__(self, shell: _Shell, plan: _Plan, deadline: float) -> None:
        self.shell = shell
        self.plan = plan
        self.deadline = deadline
        self.repeat = _Repeat(deadline)
        self.statement: sa.Executable | None = None
        self.result: Any = None

    def __enter__(self) -> _Exchange:
        try:
            self.statement = next(self.plan)
        except BaseException:
            self.plan.close()
            raise
        return self

    def answer(self, result: sa.CursorResult[Any]) -> None:
        """Send the plan what its statement returned; it yields the next one or ends."""
        rows = result.fetchall() if result.returns_rows else []
        outcome = _Outcome(result.rowcount, [tuple(r) for r in rows], self.repeat.now)
        self.repeat.now = False
        self.statement = self.plan.send(outcome)

    def duplicate(self) -> None:
        """Tell the plan its INSERT hit an existing key; it yields the next statement."""
        duplicate, self.repeat.now = _Duplicate(self.repeat.now), False
        self.statement = self.plan.throw(duplicate)

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool:
        try:
            if isinstance(exc, StopIteration):
                self.result = exc.value
                return True
            if isinstance(exc, sa.exc.SQLAlchemyError):
                if time.monotonic() >= self.deadline:
                    raise self.shell._late() from exc
                self.shell._classify(exc, self.deadline)
                raise _Retry from exc
            if isinstance(exc, _Duplicate):
                raise StoreError(
                    f"SQL store {self.shell.address}: unexpected constraint error"
                ) from exc
            return False
        finally:
            self.plan.close()


class SqlStore(_Shell):
    """Sessions in a SQL database shared by many web servers; safe to share across threads.

    ``url`` is ``postgresql://user:password@host:5432/db``, ``mysql://user@host:3306/db``
    (MariaDB too), ``sqlite:///path`` or a SQLAlchemy ``Engine`` the application already has.
    Each call ends within ``timeout`` seconds (pool wait, connect, statement and lock wait) or
    raises :class:`~lbkit.StoreUnavailable`; connections come from a pool of ``pool_size``
    (plus as many overflow); after the database restarts the store reconnects by itself (a
    statement whose connection broke runs once more on a fresh one, and a write it may
    already have made is confirmed by its version, never guessed).
    """

    def __init__(
        self,
        url: str | sa.URL | sa.Engine,
        *,
        table: str = "lbkit_sessions",
        max_value: int = DEFAULT_MAX_VALUE,
        timeout: float = 5.0,
        pool_size: int = 8,
        clock: Callable[[], float] = time.time,
    ) -> None:
        timeout = _check_timeout(timeout)
        engine: sa.Engine
        slots = 0  # connections the pool holds at most (0: not known, the pool waits)
        if isinstance(url, sa.Engine):
            engine = url.execution_options(isolation_level="AUTOCOMMIT")
            self._owned = False
        else:
            target = _driver_url(url, asynchronous=False)
            options = _engine_options(pool_size, timeout)
            if target.get_backend_name() == "sqlite":
                options.pop("max_overflow")
                options.pop("pool_size")
            else:
                slots = options["pool_size"] + options["max_overflow"]
            engine = sa.create_engine(
                target, connect_args=_connect_args(target, timeout), **options
            )
            self._owned = True
        self._setup(engine, table, max_value, timeout, clock)
        self._watchdog = _Watchdog()
        self._connect = _DeadlineConnect(self._late)
        sa.event.listen(engine, "do_connect", self._connect)
        # the pool's own wait (pool_timeout) is fixed per engine: a store call waits for
        # one of the pool's connections (plus overflow) here instead, for its remaining time
        self._slots = threading.BoundedSemaphore(slots) if slots else None

    def create_table(self) -> None:
        """Create the sessions table and its index if they do not exist."""
        try:
            self.table.metadata.create_all(self.engine, checkfirst=True)
        except sa.exc.SQLAlchemyError as exc:
            raise self._unavailable(exc) from exc

    def _run(self, plan_factory: Callable[[], _Plan]) -> Any:
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                return self._drive(plan_factory(), deadline)
            except _Retry:
                continue

    def _drive(self, plan: _Plan, deadline: float) -> Any:
        with _Exchange(self, plan, deadline) as exchange:
            while True:
                try:
                    with (
                        self._slot(deadline),
                        self._connect.until(deadline),
                        self.engine.connect() as conn,
                        self._guard(conn, deadline),
                    ):
                        while True:
                            if time.monotonic() >= deadline:
                                raise self._late()
                            try:
                                result = conn.execute(exchange.statement)
                            except sa.exc.IntegrityError:
                                exchange.duplicate()
                                continue
                            exchange.answer(result)
                except sa.exc.DBAPIError as exc:
                    if not exchange.repeat.allowed(exc):
                        raise
        return exchange.result

    @contextlib.contextmanager
    def _slot(self, deadline: float) -> Iterator[None]:
        """Wait for a free pool connection until ``deadline``, not the pool's own timeout."""
        if self._slots is None:
            yield
            return
        if not self._slots.acquire(timeout=max(0.0, deadline - time.monotonic())):
            raise self._late()
        try:
            yield
        finally:
            self._slots.release()

    @contextlib.contextmanager
    def _guard(self, conn: sa.Connection, deadline: float) -> Iterator[None]:
        fd = _socket_of(conn.connection.dbapi_connection)
        if fd is None:  # SQLite: no socket
            yield
            return
        token = self._watchdog.arm(fd, deadline)
        try:
            yield
        finally:
            self._watchdog.disarm(token)

    def get(self, key: str) -> bytes | None:
        """The value of ``key``, or None if missing or expired."""
        row = self._run(lambda: self._sql.read(key))
        return None if row is None else bytes(row[0])

    def get_versioned(self, key: str) -> tuple[bytes, Version] | None:
        """The value and version of ``key``, or None."""
        row: tuple[bytes, Version] | None = self._run(lambda: self._sql.read(key))
        return row

    def set(
        self,
        key: str,
        value: bytes,
        ttl: float | None = None,
        *,
        if_version: Version | None = None,
    ) -> Version:
        """Store ``value``: one upsert, or one ``UPDATE ... WHERE version`` when versioned."""
        version: Version = self._run(lambda: self._sql.write(key, value, ttl, if_version))
        return version

    def delete(self, key: str) -> bool:
        """Remove ``key``; returns whether it existed (and had not expired)."""
        return bool(self._run(lambda: self._sql.remove(key)))

    def touch(self, key: str, ttl: float) -> bool:
        """Give ``key`` a new TTL from now; returns whether it existed."""
        return bool(self._run(lambda: self._sql.extend(key, ttl)))

    def purge_expired(self, batch_size: int = 1000) -> int:
        """Delete expired rows ``batch_size`` at a time (short locks); returns how many."""
        return int(self._run(lambda: self._sql.purge(batch_size)))

    def close(self) -> None:
        """Close the pool's connections (an engine handed over stays the caller's)."""
        self._watchdog.close()
        if self._owned:
            self.engine.dispose()


class AsyncSqlStore(_Shell):
    """The asyncio twin of :class:`SqlStore` (psycopg's asyncio mode, asyncmy).

    Takes the same URLs, or an ``AsyncEngine``; every call is bounded by ``timeout`` with
    ``asyncio.wait_for`` (cancellation returns the connection to the pool or drops it).
    """

    def __init__(
        self,
        url: str | sa.URL | AsyncEngine,
        *,
        table: str = "lbkit_sessions",
        max_value: int = DEFAULT_MAX_VALUE,
        timeout: float = 5.0,
        pool_size: int = 8,
        clock: Callable[[], float] = time.time,
    ) -> None:
        timeout = _check_timeout(timeout)
        engine: AsyncEngine
        if isinstance(url, AsyncEngine):
            engine = url.execution_options(isolation_level="AUTOCOMMIT")
            self._owned = False
        else:
            target = _driver_url(url, asynchronous=True)
            engine = create_async_engine(
                target,
                connect_args=_connect_args(target, timeout),
                **_engine_options(pool_size, timeout),
            )
            self._owned = True
        self._setup(engine, table, max_value, timeout, clock)
        self._abandoned: set[asyncio.Future[Any]] = set()

    async def create_table(self) -> None:
        """Create the sessions table and its index if they do not exist."""
        try:
            async with self.engine.begin() as conn:
                await conn.run_sync(self.table.metadata.create_all, checkfirst=True)
        except sa.exc.SQLAlchemyError as exc:
            raise self._unavailable(exc) from exc

    async def _run(self, plan_factory: Callable[[], _Plan]) -> Any:
        deadline = time.monotonic() + self.timeout
        sockets: list[int] = []
        task = asyncio.ensure_future(self._attempts(plan_factory, deadline, sockets))
        try:
            done, _ = await asyncio.wait({task}, timeout=self.timeout)
        except asyncio.CancelledError:
            self._abandon(task, sockets)
            raise
        if task in done:
            return task.result()
        self._abandon(task, sockets)
        raise self._late()

    def _abandon(self, task: asyncio.Future[Any], sockets: list[int]) -> None:
        # psycopg answers a cancellation by asking the server to cancel, for up to 10 s:
        # against a hung server, shut the socket down first so the call ends at once
        if not task.done() and sockets:
            _shut_down(sockets[-1])
        task.cancel()
        self._abandoned.add(task)
        task.add_done_callback(self._forget)

    def _forget(self, task: asyncio.Future[Any]) -> None:
        self._abandoned.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: never "exception was never retrieved"

    async def _attempts(
        self, plan_factory: Callable[[], _Plan], deadline: float, sockets: list[int]
    ) -> Any:
        while True:
            try:
                return await self._drive(plan_factory(), deadline, sockets)
            except _Retry:
                continue

    async def _drive(self, plan: _Plan, deadline: float, sockets: list[int]) -> Any:
        with _Exchange(self, plan, deadline) as exchange:
            while True:
                try:
                    async with self.engine.connect() as conn:
                        raw = (await conn.get_raw_connection()).driver_connection
                        fileno = getattr(raw, "fileno", None)
                        if fileno is not None:  # psycopg; asyncmy stops when cancelled
                            sockets.append(fileno())
                        while True:
                            try:
                                result = await conn.execute(exchange.statement)
                            except sa.exc.IntegrityError:
                                exchange.duplicate()
                                continue
                            exchange.answer(result)
                except sa.exc.DBAPIError as exc:
                    if not exchange.repeat.allowed(exc):
                        raise
        return exchange.result

    async def get(self, key: str) -> bytes | None:
        """See :meth:`SqlStore.get`."""
        row = await self._run(lambda: self._sql.read(key))
        return None if row is None else bytes(row[0])

    async def get_versioned(self, key: str) -> tuple[bytes, Version] | None:
        """See :meth:`SqlStore.get_versioned`."""
        row: tuple[bytes, Version] | None = await self._run(lambda: self._sql.read(key))
        return row

    async def set(
        self,
        key: str,
        value: bytes,
        ttl: float | None = None,
        *,
        if_version: Version | None = None,
    ) -> Version:
        """See :meth:`SqlStore.set`."""
        version: Version = await self._run(lambda: self._sql.write(key, value, ttl, if_version))
        return version

    async def delete(self, key: str) -> bool:
        """See :meth:`SqlStore.delete`."""
        return bool(await self._run(lambda: self._sql.remove(key)))

    async def touch(self, key: str, ttl: float) -> bool:
        """See :meth:`SqlStore.touch`."""
        return bool(await self._run(lambda: self._sql.extend(key, ttl)))

    async def purge_expired(self, batch_size: int = 1000) -> int:
        """See :meth:`SqlStore.purge_expired`."""
        return int(await self._run(lambda: self._sql.purge(batch_size)))

    async def close(self) -> None:
        """Close the pool's connections (an engine handed over stays the caller's).

        Waits for calls abandoned at their timeout to finish cancelling first.
        """
        if self._abandoned:
            await asyncio.wait(set(self._abandoned))
        if self._owned:
            await self.engine.dispose()
