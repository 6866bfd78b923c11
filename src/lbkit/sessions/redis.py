"""``RedisStore`` (and Redis Cluster): native TTL, versioned writes with Lua scripts.

Each session is a Redis hash ``{d: value, v: version}`` under ``prefix + key``; every write
is one Lua script, so a versioned write compares and sets atomically (also in a cluster:
each script touches one key). Needs redis-py (``pip install lbkit[redis]``).
"""

from __future__ import annotations

import math
from typing import Any

from lbkit.errors import ConfigError, SessionConflict, StoreUnavailable
from lbkit.sessions.base import DEFAULT_MAX_VALUE, Version, check_ttl, check_value, validate_key

__all__ = ["AsyncRedisStore", "RedisStore"]

# KEYS[1] key; ARGV: value, ttl ms (0 = none), expected version (-1 = any)
_SET = """
local cur = tonumber(redis.call('HGET', KEYS[1], 'v') or '0')
local want = tonumber(ARGV[3])
if want >= 0 and cur ~= want then return -1 - cur end
local v = cur + 1
redis.call('HSET', KEYS[1], 'd', ARGV[1], 'v', v)
local ttl = tonumber(ARGV[2])
if ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl) else redis.call('PERSIST', KEYS[1]) end
return v
"""
_DELETE = "return redis.call('DEL', KEYS[1])"


def _ms(ttl: float | None) -> int:
    return 0 if ttl is None else max(1, math.ceil(ttl * 1000))


def _import_redis() -> Any:
    try:
        import redis
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ConfigError("RedisStore needs redis-py: pip install 'lbkit[redis]'") from exc
    return redis


def _unavailable(url: str, exc: BaseException) -> StoreUnavailable:
    err = StoreUnavailable(f"redis at {url} unavailable: {exc}", address=url)
    err.__cause__ = exc
    return err


class RedisStore:
    """Sessions in Redis (``redis://``, ``rediss://``, ``unix://`` URLs).

    ``cluster=True`` talks to a Redis Cluster through redis-py's ``RedisCluster``. Every
    operation is bounded by ``timeout`` seconds, then :class:`~lbkit.StoreUnavailable`.
    """

    capabilities = frozenset({"ttl", "touch", "versions"})

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        prefix: str = "lbkit:session:",
        timeout: float = 5.0,
        cluster: bool = False,
        max_value: int = DEFAULT_MAX_VALUE,
    ) -> None:
        redis = _import_redis()
        self.url = url
        self.prefix = prefix
        self.max_value = max_value
        self._errors = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)
        kwargs: dict[str, Any] = {"socket_timeout": timeout, "socket_connect_timeout": timeout}
        self._r: Any
        if cluster:
            from redis.cluster import RedisCluster

            self._r = RedisCluster.from_url(url, **kwargs)
        else:
            self._r = redis.Redis.from_url(url, **kwargs)
        self._set = self._r.register_script(_SET)

    def _k(self, key: str) -> str:
        return self.prefix + validate_key(key)

    def get(self, key: str) -> bytes | None:
        """The value of ``key``, or None."""
        try:
            value = self._r.hget(self._k(key), "d")
        except self._errors as exc:
            raise _unavailable(self.url, exc) from exc
        return None if value is None else bytes(value)

    def get_versioned(self, key: str) -> tuple[bytes, Version] | None:
        """The value and version of ``key``, or None."""
        try:
            value, version = self._r.hmget(self._k(key), ["d", "v"])
        except self._errors as exc:
            raise _unavailable(self.url, exc) from exc
        return None if value is None else (bytes(value), int(version))

    def set(
        self,
        key: str,
        value: bytes,
        ttl: float | None = None,
        *,
        if_version: Version | None = None,
    ) -> Version:
        """Store ``value`` with one Lua script (compare-and-set when ``if_version``)."""
        k = self._k(key)
        data = check_value(value, self.max_value)
        ttl = check_ttl(ttl)
        want = -1 if if_version is None else int(if_version)
        try:
            result = int(self._set(keys=[k], args=[data, _ms(ttl), want]))
        except self._errors as exc:
            raise _unavailable(self.url, exc) from exc
        if result < 0:
            raise SessionConflict(
                f"session {key!r} changed: version {-1 - result}, expected {if_version}"
            )
        return result

    def delete(self, key: str) -> bool:
        """Remove ``key``."""
        try:
            return bool(self._r.delete(self._k(key)))
        except self._errors as exc:
            raise _unavailable(self.url, exc) from exc

    def touch(self, key: str, ttl: float) -> bool:
        """Give ``key`` a new TTL from now."""
        k = self._k(key)
        limit = check_ttl(ttl)
        try:
            return bool(self._r.pexpire(k, _ms(limit)))
        except self._errors as exc:
            raise _unavailable(self.url, exc) from exc

    def close(self) -> None:
        """Close the connection pool."""
        self._r.close()


class AsyncRedisStore:
    """The asyncio twin of :class:`RedisStore` (redis-py's asyncio client)."""

    capabilities = frozenset({"ttl", "touch", "versions"})

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        prefix: str = "lbkit:session:",
        timeout: float = 5.0,
        cluster: bool = False,
        max_value: int = DEFAULT_MAX_VALUE,
    ) -> None:
        redis = _import_redis()
        import redis.asyncio as aredis

        self.url = url
        self.prefix = prefix
        self.max_value = max_value
        self._errors = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)
        kwargs: dict[str, Any] = {"socket_timeout": timeout, "socket_connect_timeout": timeout}
        self._r: Any
        if cluster:
            from redis.asyncio.cluster import RedisCluster

            self._r = RedisCluster.from_url(url, **kwargs)
        else:
            self._r = aredis.Redis.from_url(url, **kwargs)
        self._set = self._r.register_script(_SET)

    def _k(self, key: str) -> str:
        return self.prefix + validate_key(key)

    async def get(self, key: str) -> bytes | None:
        """See :meth:`RedisStore.get`."""
        try:
            value = await self._r.hget(self._k(key), "d")
        except self._errors as exc:
            raise _unavailable(self.url, exc) from exc
        return None if value is None else bytes(value)

    async def get_versioned(self, key: str) -> tuple[bytes, Version] | None:
        """See :meth:`RedisStore.get_versioned`."""
        try:
            value, version = await self._r.hmget(self._k(key), ["d", "v"])
        except self._errors as exc:
            raise _unavailable(self.url, exc) from exc
        return None if value is None else (bytes(value), int(version))

    async def set(
        self,
        key: str,
        value: bytes,
        ttl: float | None = None,
        *,
        if_version: Version | None = None,
    ) -> Version:
        """See :meth:`RedisStore.set`."""
        k = self._k(key)
        data = check_value(value, self.max_value)
        ttl = check_ttl(ttl)
        want = -1 if if_version is None else int(if_version)
        try:
            result = int(await self._set(keys=[k], args=[data, _ms(ttl), want]))
        except self._errors as exc:
            raise _unavailable(self.url, exc) from exc
        if result < 0:
            raise SessionConflict(
                f"session {key!r} changed: version {-1 - result}, expected {if_version}"
            )
        return result

    async def delete(self, key: str) -> bool:
        """See :meth:`RedisStore.delete`."""
        try:
            return bool(await self._r.delete(self._k(key)))
        except self._errors as exc:
            raise _unavailable(self.url, exc) from exc

    async def touch(self, key: str, ttl: float) -> bool:
        """See :meth:`RedisStore.touch`."""
        k = self._k(key)
        limit = check_ttl(ttl)
        try:
            return bool(await self._r.pexpire(k, _ms(limit)))
        except self._errors as exc:
            raise _unavailable(self.url, exc) from exc

    async def close(self) -> None:
        """Close the connection pool."""
        await self._r.aclose()
