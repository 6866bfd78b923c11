"""A tiny HTTP/1.0 client over raw sockets: full control of source address and headers."""

from __future__ import annotations

import socket

import attrs


@attrs.frozen
class Reply:
    """Status, headers (lower-cased names) and body of one response."""

    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def upstream_addrs(self) -> list[str]:
        """nginx's ``$upstream_addr`` split into the peers it tried, in order."""
        value = self.headers.get("x-upstream-addr", "")
        return [part.strip() for part in value.replace(" : ", ", ").split(",") if part.strip()]


def get(
    port: int,
    path: str,
    *,
    headers: dict[str, str] | None = None,
    source: str | None = None,
    timeout: float = 10.0,
) -> Reply:
    """Send ``GET path`` to 127.0.0.1:port (optionally from ``source``) and read the reply."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        if source is not None:
            sock.bind((source, 0))
        sock.connect(("127.0.0.1", port))
        lines = [f"GET {path} HTTP/1.0", "Host: conformance.test"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        chunks = []
        while True:
            data = sock.recv(65536)
            if not data:
                break
            chunks.append(data)
    finally:
        sock.close()
    raw = b"".join(chunks)
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    parsed = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        parsed[name.strip().lower()] = value.strip()
    return Reply(int(status_line.split()[1]), parsed, body)


def get_with_headers(port: int, uri: str, headers: list[tuple[str, str]]) -> tuple[int, str]:
    """Send ``GET uri`` with header lines exactly as given (repeated names, any case, the
    Host line among them) to 127.0.0.1:port; return the status and the body as text."""
    lines = [f"GET {uri} HTTP/1.0", *(f"{k}: {v}" for k, v in headers)]
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        chunks = []
        while data := sock.recv(65536):
            chunks.append(data)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    return int(head.split()[1]), body.decode()
