"""``RedisStore`` (and Redis Cluster): native TTL, versioned writes with Lua scripts.

Each session is a Redis hash ``{d: value, v: version}`` under ``prefix + key``; every write
is one Lua script, so a versioned write compares and sets atomically (also in a cluster:
each script touches one key). Versions are random 62-bit tokens chosen by the client and
compared as strings, so they never repeat after a delete or expiry. Each command is built
and decoded once, in :class:`_RedisCommands`; :class:`RedisStore` and
:class:`AsyncRedisStore` only drive it. Needs redis-py (``pip install lbkit[redis]``).
"""

from __future__ import annotations

import math
from typing import Any, Literal

from lbkit.errors import ConfigError, SessionConflict, SessionDataError, StoreUnavailable
from lbkit.sessions._flow import Call, Flow, arun, run
from lbkit.sessions.base import (
    DEFAULT_MAX_VALUE,
    Version,
    check_ttl,
    check_value,
    check_version,
    new_version,
    validate_key,
)

__all__ = ["AsyncRedisStore", "RedisStore"]

# KEYS[1] key; ARGV: value, ttl ms ("0" = none), expected version ("" = any, "0" = absent),
# new version. Versions stay strings: Lua numbers are doubles and would round 62-bit tokens.
_SET = """
local cur = redis.call('HGET', KEYS[1], 'v')
local want = ARGV[3]
if want ~= '' then
  if want == '0' then
    if cur then return {0, cur} end
  elseif cur ~= want then
    return {0, cur or '0'}
  end
end
redis.call('HSET', KEYS[1], 'd', ARGV[1], 'v', ARGV[4])
local ttl = tonumber(ARGV[2])
if ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl) else redis.call('PERSIST', KEYS[1]) end
return {1, ARGV[4]}
"""


def _ms(ttl: float | None) -> int:
    return 0 if ttl is None else max(1, math.ceil(ttl * 1000))


def _import_redis() -> Any:
    try:
        import redis
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ConfigError("RedisStore needs redis-py: pip install 'lbkit[redis]'") from exc
    return redis


class _RedisCommands:
    """Every Redis request and reply decoding, as flows over a sync or asyncio client."""

    def __init__(self, client: Any, url: str, prefix: str, max_value: int) -> None:
        redis = _import_redis()
        self.client = client
        self.url = url
        self.prefix = prefix
        self.max_value = max_value
        self.script = client.register_script(_SET)
        self.errors: tuple[type[BaseException], ...] = (redis.exceptions.RedisError,)

    def _k(self, key: str) -> str:
        return self.prefix + validate_key(key)

    def _send(self, call: Call) -> Flow[Any]:
        try:
            return (yield call)
        except self.errors as exc:
            if "WRONGTYPE" in str(exc):  # e.g. a php-redis string read as a hash
                raise SessionDataError(
                    f"redis at {self.url}: {exc}: the key was written with another layout "
                    "(RedisStore(layout='hash') keeps hashes, layout='string' plain strings)"
                ) from exc
            raise StoreUnavailable(
                f"redis at {self.url} unavailable: {exc}", address=self.url
            ) from exc

    def get(self, key: str) -> Flow[bytes | None]:
        value = yield from self._send(Call(self.client, "hget", (self._k(key), "d")))
        return None if value is None else bytes(value)

    def get_versioned(self, key: str) -> Flow[tuple[bytes, Version] | None]:
        reply = yield from self._send(Call(self.client, "hmget", (self._k(key), ["d", "v"])))
        value, version = reply
        return None if value is None else (bytes(value), int(version))

    def set(
        self, key: str, value: bytes, ttl: float | None, if_version: Version | None
    ) -> Flow[Version]:
        version = new_version(0)
        yield from self._set_by_script(key, value, ttl, if_version, str(version))
        return version

    def _set_by_script(
        self, key: str, value: bytes, ttl: float | None, if_version: Version | None, *extra: str
    ) -> Flow[Version]:
        """Check a write, run the layout's set script (value, ms, expected version, ``extra``).

        Returns the version the script reports, or raises SessionConflict when it refused.
        """
        k = self._k(key)
        data = check_value(value, self.max_value)
        ms = _ms(check_ttl(ttl))
        want = "" if check_version(if_version) is None else str(if_version)
        ok, have = yield from self._send(
            Call(self.script, "__call__", (), {"keys": [k], "args": [data, ms, want, *extra]})
        )
        if int(ok) != 1:
            raise SessionConflict(
                f"session {key!r} changed: version {int(have)}, expected {if_version}"
            )
        return int(have)

    def delete(self, key: str) -> Flow[bool]:
        return bool((yield from self._send(Call(self.client, "delete", (self._k(key),)))))

    def touch(self, key: str, ttl: float) -> Flow[bool]:
        k = self._k(key)
        ms = _ms(check_ttl(ttl))
        return bool((yield from self._send(Call(self.client, "pexpire", (k, ms)))))


class _RedisStoreBase:
    """The constructor both Redis stores share; ``_client`` makes the sync or async client."""

    capabilities = frozenset({"ttl", "touch", "versions"})

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        prefix: str = "lbkit:session:",
        timeout: float = 5.0,
        cluster: bool = False,
        max_value: int = DEFAULT_MAX_VALUE,
        layout: Literal["hash", "string"] = "hash",
    ) -> None:
        if layout not in ("hash", "string"):
            raise ConfigError(f"invalid redis layout {layout!r}: expected 'hash' or 'string'")
        options = {"socket_timeout": timeout, "socket_connect_timeout": timeout}
        client = self._client(url, cluster, options)
        commands = _RedisCommands
        if layout == "string":  # php-redis's plain strings: see _redis_string
            from lbkit.sessions._redis_string import RedisStringCommands

            commands = RedisStringCommands
        self._commands = commands(client, url, prefix, max_value)
        self.layout = layout
        self.url = url
        self.prefix = prefix
        self.max_value = max_value

    @staticmethod
    def _client(url: str, cluster: bool, options: dict[str, Any]) -> Any:
        raise NotImplementedError


class RedisStore(_RedisStoreBase):
    """Sessions in Redis (``redis://``, ``rediss://``, ``unix://`` URLs).

    ``layout="string"`` keeps each session as a plain string (php-redis's layout, with
    ``prefix="PHPREDIS_SESSION:"``); the default ``"hash"`` keeps a value and a version.

    ``cluster=True`` talks to a Redis Cluster through redis-py's ``RedisCluster``. Every
    operation is bounded by ``timeout`` seconds, then :class:`~lbkit.StoreUnavailable`.
    Thread-safe: redis-py takes a pooled connection for each command.
    """

    @staticmethod
    def _client(url: str, cluster: bool, options: dict[str, Any]) -> Any:
        redis = _import_redis()
        if cluster:
            from redis.cluster import RedisCluster

            return RedisCluster.from_url(url, **options)
        return redis.Redis.from_url(url, **options)

    def get(self, key: str) -> bytes | None:
        """The value of ``key``, or None."""
        return run(self._commands.get(key))

    def get_versioned(self, key: str) -> tuple[bytes, Version] | None:
        """The value and version of ``key``, or None."""
        return run(self._commands.get_versioned(key))

    def set(
        self,
        key: str,
        value: bytes,
        ttl: float | None = None,
        *,
        if_version: Version | None = None,
    ) -> Version:
        """Store ``value`` with one Lua script (compare-and-set when ``if_version``)."""
        return run(self._commands.set(key, value, ttl, if_version))

    def delete(self, key: str) -> bool:
        """Remove ``key``."""
        return run(self._commands.delete(key))

    def touch(self, key: str, ttl: float) -> bool:
        """Give ``key`` a new TTL from now."""
        return run(self._commands.touch(key, ttl))

    def close(self) -> None:
        """Close the connection pool."""
        self._commands.client.close()


class AsyncRedisStore(_RedisStoreBase):
    """The asyncio twin of :class:`RedisStore` (redis-py's asyncio client)."""

    @staticmethod
    def _client(url: str, cluster: bool, options: dict[str, Any]) -> Any:
        _import_redis()
        if cluster:
            from redis.asyncio.cluster import RedisCluster

            return RedisCluster.from_url(url, **options)
        import redis.asyncio as aredis

        return aredis.Redis.from_url(url, **options)

    async def get(self, key: str) -> bytes | None:
        """See :meth:`RedisStore.get`."""
        return await arun(self._commands.get(key))

    async def get_versioned(self, key: str) -> tuple[bytes, Version] | None:
        """See :meth:`RedisStore.get_versioned`."""
        return await arun(self._commands.get_versioned(key))

    async def set(
        self,
        key: str,
        value: bytes,
        ttl: float | None = None,
        *,
        if_version: Version | None = None,
    ) -> Version:
        """See :meth:`RedisStore.set`."""
        return await arun(self._commands.set(key, value, ttl, if_version))

    async def delete(self, key: str) -> bool:
        """See :meth:`RedisStore.delete`."""
        return await arun(self._commands.delete(key))

    async def touch(self, key: str, ttl: float) -> bool:
        """See :meth:`RedisStore.touch`."""
        return await arun(self._commands.touch(key, ttl))

    async def close(self) -> None:
        """Close the connection pool."""
        await self._commands.client.aclose()
