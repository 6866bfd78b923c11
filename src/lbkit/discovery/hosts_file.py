"""A sink that writes host names as a hosts file for dnsmasq and makes it reload (SIGHUP).

Proxies that resolve names through DNS (nginx's ``resolver``) then see the same names as the
route registry. The file is replaced atomically (a temporary file in the same directory,
fsynced, renamed over the old one), and only when its text changes; dnsmasq re-reads its
``--addn-hosts`` files on SIGHUP.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import signal
import tempfile
from pathlib import Path

from lbkit.discovery.source import View
from lbkit.errors import ConfigError, DiscoveryError, ResolutionError
from lbkit.routing import validate_name

__all__ = ["HostsFileSink", "render_hosts"]

_HEADER = "# written by lbkit's HostsFileSink: edits are overwritten\n"


def _is_wildcard(name: str) -> bool:
    return name.startswith(("*.", ".")) or name.endswith(".*")


def render_hosts(view: View) -> str:
    """Hosts-file text for name -> address, one ``ADDRESS NAME`` line per name, sorted.

    Wildcard names (``*.example.com``) cannot be written in a hosts file and are left out.
    A name or address that is not valid raises ConfigError naming it (before any write).
    """
    lines = []
    for name, address in sorted(view.items()):
        if _is_wildcard(name):
            continue
        try:
            ip = ipaddress.ip_address(address.strip())
        except ValueError:
            raise ConfigError(
                f"invalid address {address!r} for {name!r}: expected an IPv4 or IPv6 address"
            ) from None
        try:
            host = validate_name(name)
        except ResolutionError as exc:
            raise ConfigError(f"invalid host name {name!r} for a hosts file: {exc}") from None
        lines.append(f"{ip} {host}\n")
    return _HEADER + "".join(lines)


class HostsFileSink:
    """Writes each view (host name -> address) to ``path`` and signals dnsmasq to reload.

    ``pid`` (or ``pid_file``, read at each reload) names the dnsmasq process to send
    ``signal.SIGHUP``; with neither, only the file is written. ``mode`` is the file's
    permission bits (0644 by default: dnsmasq often reads it as another user). Thread-safe
    only through its source, which applies views one at a time.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        pid: int | None = None,
        pid_file: str | os.PathLike[str] | None = None,
        mode: int = 0o644,
    ) -> None:
        if pid is not None and (isinstance(pid, bool) or not isinstance(pid, int) or pid < 1):
            raise ConfigError(f"invalid pid={pid!r}: expected a process id >= 1")
        if pid is not None and pid_file is not None:
            raise ConfigError("give pid= or pid_file=, not both")
        if isinstance(mode, bool) or not isinstance(mode, int) or not 0 <= mode <= 0o777:
            raise ConfigError(f"invalid mode={mode!r}: expected permission bits 0..0o777")
        self.path = Path(path)
        self.pid = pid
        self.pid_file = Path(pid_file) if pid_file is not None else None
        self.mode = mode
        self.writes = 0
        self.reloads = 0
        self._reload_pending = False

    def apply(self, view: View) -> None:
        """Write the view if it changes the file, then reload dnsmasq."""
        text = render_hosts(view)
        if self._current() != text:
            self._write(text)
            self.writes += 1
            self._reload_pending = True
        if self._reload_pending:
            self._reload()

    def _current(self) -> str | None:
        try:
            return self.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return None

    def _write(self, text: str) -> None:
        directory = self.path.parent
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=directory)
        except OSError as exc:
            raise DiscoveryError(f"cannot write hosts file {self.path}: {exc}") from None
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fchmod(f.fileno(), self.mode)
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise DiscoveryError(f"cannot write hosts file {self.path}: {exc}") from None

    def _reload(self) -> None:
        pid = self.pid
        if self.pid_file is not None:
            try:
                pid = int(self.pid_file.read_text().split()[0])
            except (OSError, ValueError, IndexError) as exc:
                raise DiscoveryError(
                    f"cannot read dnsmasq pid from {self.pid_file}: {exc}"
                ) from None
        if pid is None:
            self._reload_pending = False
            return
        try:
            os.kill(pid, signal.SIGHUP)
        except OSError as exc:
            raise DiscoveryError(f"cannot signal dnsmasq (pid {pid}) to reload: {exc}") from None
        self._reload_pending = False
        self.reloads += 1
