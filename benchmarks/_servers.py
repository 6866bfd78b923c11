"""Real servers for the benchmarks: the helpers the tests start them with, stopped by PID.

The benchmarks reuse ``tests/conformance`` (free ports, waiting for a port, starting
redis-server, memcached and any other program as a :class:`Process`) so that one piece of
code knows how to start, wait for and stop each server. Importing it needs pytest (the
helpers fail a test with ``pytest.fail`` when a program is missing): ``tox -e bench``
installs the ``test`` extra.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.conformance.servers import free_port, free_ports, wait_for_port  # noqa: E402
from tests.conformance.stores import Process, memcached_server, redis_server  # noqa: E402

__all__ = [
    "ROOT",
    "Process",
    "free_port",
    "free_ports",
    "memcached_server",
    "redis_server",
    "running",
    "wait_for_port",
]


@contextmanager
def running(server: Process) -> Iterator[Process]:
    """Yield ``server`` (already listening) and stop it by its PID on every exit path."""
    try:
        yield server
    finally:
        server.stop()
