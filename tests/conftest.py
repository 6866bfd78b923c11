"""Session-wide test setup."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import pytest
from hypothesis import HealthCheck, settings

# Hypothesis times each example (a 200 ms deadline) and its data generation by default: on a
# loaded CI machine (load 10-20 on 2 cores) they fail tests that are correct. Tests assert
# behaviour, never timing: no deadline, no "too slow" health check, for every test.
# Under CI (the CI variable set, as .ci/run does) the examples are derived from each test
# itself, so one commit always runs the same cases; everywhere else Hypothesis draws new
# ones each run and keeps failures in its local database, which is where new bugs are found.
settings.register_profile(
    "lbkit",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=bool(os.environ.get("CI")),
)
settings.load_profile("lbkit")


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"stopped by signal {signum}")


def pytest_configure(config: pytest.Config) -> None:
    """A run stopped with SIGTERM (``timeout``, a CI runner) unwinds as Ctrl-C does, so the
    fixtures stop the servers they started instead of leaving them to init."""
    signal.signal(signal.SIGTERM, _interrupt)


@pytest.fixture(autouse=True, scope="session")
def private_zone_directory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Zones (``zone NAME SIZE;``) of the tests live in a private directory, not /dev/shm,
    so that no state is shared between test runs or with other programs."""
    path = tmp_path_factory.mktemp("zones")
    before = os.environ.get("LBKIT_ZONE_DIR")
    os.environ["LBKIT_ZONE_DIR"] = str(path)
    yield path
    if before is None:
        os.environ.pop("LBKIT_ZONE_DIR", None)
    else:
        os.environ["LBKIT_ZONE_DIR"] = before
