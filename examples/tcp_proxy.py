"""A plain asyncio TCP (L4) proxy balancing with an lbkit ``Upstream``.

``python examples/tcp_proxy.py --listen 127.0.0.1:9000 --upstream FILE`` where FILE holds
one nginx ``upstream { ... }`` block, e.g. ``hash $remote_addr consistent;`` so that a
client keeps its backend, or ``ip_hash;``. Like nginx's stream proxy
(``proxy_next_upstream on`` by default), a peer that refuses the connection or does not
accept it within ``--connect-timeout`` counts as failed and the next one is tried; once
connected, bytes are copied both ways (64 KiB at a time, half-closes passed on) and the
peer is reported done when both sides have closed. A cancelled connection (the server
closing) gives its peer back, so no connection stays counted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time

from lbkit import NoLiveUpstreams, Upstream
from lbkit.nginx import parse_upstream

__all__ = ["TCPProxy", "main"]

CHUNK = 64 * 1024


def _split(name: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` of a peer as written in its ``server`` line."""
    if name.startswith("["):
        host, _, port = name[1:].partition("]:")
        return host, int(port)
    host, _, port = name.rpartition(":")
    return host, int(port)


async def _copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> int:
    """Copy until EOF, then half-close the other side; returns the bytes copied."""
    total = 0
    try:
        while chunk := await reader.read(CHUNK):
            writer.write(chunk)
            await writer.drain()  # back-pressure: memory stays at one chunk per direction
            total += len(chunk)
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        writer.close()
    return total


class TCPProxy:
    """Accepts clients and connects each to a peer of ``upstream``.

    The hash key and client address given to the upstream are the client's IP text
    (nginx's ``$remote_addr``), for ``hash $remote_addr`` and ``ip_hash``. ``tries`` is
    ``proxy_next_upstream_tries`` (0: every peer); ``connect_timeout`` is in seconds.
    """

    def __init__(
        self, upstream: Upstream, *, connect_timeout: float = 60.0, tries: int = 0
    ) -> None:
        self.upstream = upstream
        self.connect_timeout = connect_timeout
        self.tries = tries

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Serve one client connection (an ``asyncio.start_server`` callback)."""
        client_addr = str(writer.get_extra_info("peername")[0])
        try:
            await self._proxy(client_addr, reader, writer)
        except NoLiveUpstreams:
            pass  # nginx closes the client connection: no peer could take it
        except asyncio.CancelledError:
            # The server is closing (the peer was given back on the way out). This task
            # is the top of the connection: asyncio's start_server logs a cancelled one.
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()

    async def _proxy(
        self, client_addr: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        up = self.upstream
        async with up.attempts_async(
            key=client_addr, client_addr=client_addr, tries=self.tries
        ) as attempts:
            async for peer in attempts:
                host, port = _split(peer.name)
                started = time.monotonic()
                try:
                    peer_reader, peer_writer = await asyncio.wait_for(
                        asyncio.open_connection(host, port), self.connect_timeout
                    )
                except (OSError, asyncio.TimeoutError):
                    up.done(peer, failed=True)  # the next peer, as proxy_next_upstream on
                    continue
                try:
                    await asyncio.gather(_copy(reader, peer_writer), _copy(peer_reader, writer))
                finally:
                    peer_writer.close()
                up.done(peer, elapsed=time.monotonic() - started)
                return


async def serve(proxy: TCPProxy, host: str, port: int) -> asyncio.base_events.Server:
    """Start listening; the caller runs the loop (``async with server: ...``)."""
    return await asyncio.start_server(proxy.handle, host, port)


def main(argv: list[str] | None = None) -> None:
    """Command line: listen and proxy until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--listen", default="127.0.0.1:9000", help="host:port to accept on")
    parser.add_argument("--upstream", required=True, help="a file with one upstream block")
    parser.add_argument("--connect-timeout", type=float, default=60.0)
    parser.add_argument("--tries", type=int, default=0)
    args = parser.parse_args(argv)
    with open(args.upstream, encoding="utf-8") as f:
        upstream = parse_upstream(f.read())
    host, port = _split(args.listen)
    proxy = TCPProxy(upstream, connect_timeout=args.connect_timeout, tries=args.tries)

    async def run() -> None:
        server = await serve(proxy, host, port)
        async with server:
            await server.serve_forever()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())


if __name__ == "__main__":
    main()
