"""A backend for the proxy tests: an ASGI app under uvicorn that says who it is.

``python -m tests.examples.backend NAME PORT``. Every response has ``X-Backend: NAME`` and
echoes the Host and X-Forwarded-For it got. Paths: ``/hold`` waits until ``/release``;
``/slow`` sleeps 30 s; ``/break`` drops the connection mid-body; ``/status/NNN`` answers
NNN; ``/fail/NAME`` answers 503 on backend NAME only; ``/bytes/N`` streams N bytes;
``POST /count`` reads the body as it comes and answers its length and sha256.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sys
from typing import Any

import uvicorn

NAME = sys.argv[1] if len(sys.argv) > 1 else "backend"
released = asyncio.Event()


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
    path: str = scope["path"]
    status = 200
    info: dict[str, Any] = {
        "backend": NAME,
        "path": path,
        "query": scope["query_string"].decode(),
        "method": scope["method"],
        "host": headers.get("host"),
        "xff": headers.get("x-forwarded-for"),
        "session": headers.get("x-session-id"),
        "connection": headers.get("connection"),
    }
    if path == "/count":
        digest = hashlib.sha256()
        size = 0
        more = True
        while more:
            message = await receive()
            chunk = message.get("body", b"")
            digest.update(chunk)
            size += len(chunk)
            more = message.get("more_body", False)
        info.update(size=size, sha256=digest.hexdigest())
    elif path.startswith("/bytes/"):
        total = int(path.rsplit("/", 1)[1])
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"x-backend", NAME.encode()),
                                (b"content-length", str(total).encode())]})  # fmt: skip
        block = bytes(range(256)) * 256  # 64 KiB
        left = total
        while left:
            part = block[: min(left, len(block))]
            left -= len(part)
            await send({"type": "http.response.body", "body": part, "more_body": left > 0})
        return
    elif path == "/break":  # promises 1 MiB, sends 64 KiB, then drops the connection
        promise = [(b"x-backend", NAME.encode()), (b"content-length", b"1048576")]
        await send({"type": "http.response.start", "status": 200, "headers": promise})
        await send({"type": "http.response.body", "body": b"x" * 65536, "more_body": True})
        raise RuntimeError("backend gave up mid-body")
    elif path == "/hold":
        await released.wait()
    elif path == "/release":
        released.set()
        await asyncio.sleep(0)
        released.clear()
    elif path == "/slow":
        await asyncio.sleep(30)
    elif path.startswith("/status/"):
        status = int(path.rsplit("/", 1)[1])
    elif path.startswith("/fail/") and path.rsplit("/", 1)[1] == NAME:
        status = 503
    body = json.dumps(info).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"x-backend", NAME.encode()), (b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})  # fmt: skip
    await send({"type": "http.response.body", "body": body})


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning",
                lifespan="off")  # fmt: skip
