"""Real redis-server, memcached and lbkit's sharedance server for the PHP interop tests:
the session tests' fixtures."""

from __future__ import annotations

from tests.sessions.conftest import memcached_proc, redis_proc, sharedance_proc

__all__ = ["memcached_proc", "redis_proc", "sharedance_proc"]
