"""The read-modify-write increment the no-lost-update tests run from threads and processes."""

from __future__ import annotations

from typing import Any

import lbkit
from lbkit import sessions


def increment(store: Any, key: str, times: int) -> int:
    """Add 1 to the integer at ``key`` ``times`` times with versioned writes; count conflicts."""
    conflicts = 0
    for _ in range(times):
        while True:
            found = store.get_versioned(key)
            count, version = (0, sessions.ABSENT) if found is None else (int(found[0]), found[1])
            try:
                store.set(key, str(count + 1).encode(), if_version=version)
                break
            except lbkit.SessionConflict:
                conflicts += 1
    return conflicts
