"""Finding Debian's php-cli and its session extensions (tests fail saying what to install)."""

from __future__ import annotations

import functools
import shutil
import subprocess

import pytest

PHP_HINT = (
    "install the Debian packages php-cli, php-redis and php-memcached "
    "(apt-get install -y php-cli php-redis php-memcached, or run .ci/install-deps)"
)


@functools.cache
def php_binary() -> str:
    """Path of php-cli, or fail the test saying what to install."""
    path = shutil.which("php")
    if path is None:
        pytest.fail(f"php not found on PATH: {PHP_HINT}")
    return path


def require_extension(name: str) -> None:
    """Fail unless php-cli has the extension ``name`` (redis, memcached, session)."""
    out = subprocess.run([php_binary(), "-m"], capture_output=True, text=True, check=True)
    if name not in out.stdout.split():
        pytest.fail(f"php has no {name} extension: {PHP_HINT}")
