"""``RedisStore(layout="string")``: each session a plain Redis string, as php-redis keeps it.

php-redis's session handler reads ``GET PHPREDIS_SESSION:<id>`` and writes ``SETEX`` with
the session lifetime; a Python app sharing those sessions must use the same layout. A
string has no room for a version, so the version is derived from the content (52 bits of
its SHA-1, plus one; :data:`~lbkit.sessions.ABSENT` is "no key") and a versioned write is
a compare-and-set on the content, in one Lua script. A key of another Redis type (a
``layout="hash"`` session, say) is refused with :class:`~lbkit.errors.SessionDataError`
(by :class:`_RedisCommands`, for both layouts).
"""

from __future__ import annotations

import hashlib
from typing import Any

from lbkit.sessions._flow import Call, Flow
from lbkit.sessions._redis import _RedisCommands
from lbkit.sessions.base import Version

__all__ = ["RedisStringCommands", "content_version"]

# KEYS[1] key; ARGV: value, ttl ms ("0" = none), expected version ("" = any, "0" = absent).
# Versions are 52-bit numbers (exact in Lua's doubles). Returns {1, new} or {0, current}.
_SET = """
local cur = redis.call('GET', KEYS[1])
local curv = 0
if cur then curv = tonumber(string.sub(redis.sha1hex(cur), 1, 13), 16) + 1 end
if ARGV[3] ~= '' and curv ~= tonumber(ARGV[3]) then return {0, curv} end
local ttl = tonumber(ARGV[2])
if ttl > 0 then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl)
else
  redis.call('SET', KEYS[1], ARGV[1])
end
return {1, tonumber(string.sub(redis.sha1hex(ARGV[1]), 1, 13), 16) + 1}
"""


def content_version(value: bytes) -> Version:
    """The version of a string-layout value: 52 bits of its SHA-1, plus one (never ABSENT)."""
    return int(hashlib.sha1(value).hexdigest()[:13], 16) + 1  # noqa: S324 - not for security


class RedisStringCommands(_RedisCommands):
    """:class:`_RedisCommands` for plain string values (``get``, ``get_versioned``, ``set``
    differ; ``delete`` and ``touch`` are the same commands on any key)."""

    def __init__(self, client: Any, url: str, prefix: str, max_value: int) -> None:
        super().__init__(client, url, prefix, max_value)
        self.script = client.register_script(_SET)

    def get(self, key: str) -> Flow[bytes | None]:
        found = yield from self.get_versioned(key)
        return None if found is None else found[0]

    def get_versioned(self, key: str) -> Flow[tuple[bytes, Version] | None]:
        value = yield from self._send(Call(self.client, "get", (self._k(key),)))
        return None if value is None else (bytes(value), content_version(bytes(value)))

    def set(
        self, key: str, value: bytes, ttl: float | None, if_version: Version | None
    ) -> Flow[Version]:
        return (yield from self._set_by_script(key, value, ttl, if_version))
