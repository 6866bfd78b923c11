"""A watched file as a discovery source: re-read when it changes, refused whole if bad.

Two formats: ``"lines"`` (one entry a line, ``KEY VALUE...``: for an upstream nginx
``server`` texts such as ``10.0.0.1:80 weight=2``, for routes ``NAME TARGET``) and
``"hosts"`` (``ADDRESS NAME [NAME...]``, read as name -> address). ``#`` starts a comment.
Write the file by renaming a new one over it; a file that fails to parse, or disappears,
leaves the last good view in force.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

from lbkit.discovery.source import ErrorHandler, PollingSource, Sink
from lbkit.errors import ConfigError, DiscoveryError
from lbkit.routing import parse_hosts

__all__ = ["FileSource", "parse_lines"]

FileFormat = Literal["lines", "hosts"]

MAX_FILE_BYTES = 16 * 1024 * 1024


def parse_lines(text: str) -> dict[str, str]:
    """Parse ``KEY VALUE...`` lines into key -> value; a repeated key is a ConfigError."""
    view: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split("#", 1)[0].split()
        if not fields:
            continue
        key, rest = fields[0], " ".join(fields[1:])
        if key in view:
            raise ConfigError(f"{key!r} is listed twice", line=number)
        view[key] = rest
    return view


class FileSource(PollingSource):
    """Feeds its sinks from a file, checked every ``interval`` seconds (by mtime, size, inode)."""

    _thread_name = "lbkit-file-source"

    def __init__(
        self,
        path: str | os.PathLike[str],
        sinks: Iterable[Sink] = (),
        *,
        format: FileFormat = "lines",
        interval: float = 1.0,
        on_error: ErrorHandler | None = None,
    ) -> None:
        if format not in ("lines", "hosts"):
            raise ConfigError(f"invalid format={format!r}: expected 'lines' or 'hosts'")
        if isinstance(interval, bool) or not isinstance(interval, (int, float)) or interval <= 0:
            raise ConfigError(f"invalid interval={interval!r}: expected seconds > 0")
        super().__init__(sinks, on_error)
        self.path = Path(path)
        self.format = format
        self.interval = float(interval)
        self._seen: tuple[int, int, int] | None = None

    def _poll(self) -> float:
        """Re-read the file if it changed and publish a changed view."""
        try:
            st = self.path.stat()
            stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
            if stamp == self._seen:
                return self.interval
            if st.st_size > MAX_FILE_BYTES:
                raise ConfigError(
                    f"{self.path} is {st.st_size} bytes: expected at most {MAX_FILE_BYTES}"
                )
            text = self.path.read_text(encoding="utf-8")
            view = parse_hosts(text) if self.format == "hosts" else parse_lines(text)
        except ConfigError as exc:
            self._report(ConfigError(f"{self.path}: {exc}"))
            self._seen = stamp
            return self.interval
        except (OSError, UnicodeDecodeError) as exc:
            self._report(DiscoveryError(f"cannot read {self.path}: {exc}"))
            return self.interval
        self._seen = stamp
        self._publish(view)
        return self.interval
