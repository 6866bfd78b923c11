"""The sharedance codec (hypothesis) and the server's robustness against arbitrary bytes."""

from __future__ import annotations

import contextlib
import socket
import struct
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lbkit import sessions
from lbkit.sharedance import (
    ProtocolError,
    RequestParser,
    encode_delete,
    encode_fetch,
    encode_store,
    is_valid_key,
)

# valid keys drawn directly (bytes 32..126 other than "." and "/"), not filtered from random bytes
_KEY_BYTES = [b for b in range(32, 127) if b not in (0x2E, 0x2F)]
keys = st.lists(st.sampled_from(_KEY_BYTES), min_size=1, max_size=64).map(bytes)


@given(keys, st.binary(max_size=2000), st.integers(1, 64))
def test_store_roundtrip_in_any_chunking(key: bytes, data: bytes, chunk: int) -> None:
    wire = encode_store(key, data)
    assert wire[:1] == b"S"
    assert struct.unpack(">II", wire[1:9]) == (len(key), len(data))
    parser = RequestParser()
    result = None
    for i in range(0, len(wire), chunk):
        assert result is None
        result = parser.feed(wire[i : i + chunk])
    assert result is not None
    assert (result.command, result.key, result.data) == ("store", key, data)


@given(keys)
def test_fetch_and_delete_roundtrip(key: bytes) -> None:
    for wire, command in ((encode_fetch(key), "fetch"), (encode_delete(key), "delete")):
        req = RequestParser().feed(wire)
        assert req is not None
        assert (req.command, req.key) == (command, key)


@given(st.binary(max_size=300))
def test_parser_never_crashes(data: bytes) -> None:
    parser = RequestParser(max_size=1000)
    with contextlib.suppress(ProtocolError):
        parser.feed(data)


def test_parser_rejects_extra_bytes_bad_keys_and_oversize() -> None:
    with pytest.raises(ProtocolError, match="beyond"):
        RequestParser().feed(encode_fetch(b"abc") + b"x")
    with pytest.raises(ProtocolError, match="invalid sharedance key"):
        RequestParser().feed(b"F" + struct.pack(">I", 5) + b"../x/")
    with pytest.raises(ProtocolError, match="exceeds"):
        RequestParser(max_size=100).feed(b"S" + struct.pack(">II", 3, 1000))
    with pytest.raises(ProtocolError, match="unknown command"):
        RequestParser().feed(b"X")
    with pytest.raises(ProtocolError):
        encode_store(b"a.b", b"x")


def _raw(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
        return out


def test_wire_bytes_match_the_protocol_notes(sharedance_proc: Any) -> None:
    port = sharedance_proc.port
    assert _raw(port, b"S" + struct.pack(">II", 3, 5) + b"keyvalue") == b"OK\n"
    assert _raw(port, b"F" + struct.pack(">I", 3) + b"key") == b"value"
    assert _raw(port, b"D" + struct.pack(">I", 3) + b"key") == b"OK\n"
    assert _raw(port, b"F" + struct.pack(">I", 3) + b"key") == b""
    assert _raw(port, b"D" + struct.pack(">I", 3) + b"key") == b""  # missing: no reply


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_break_the_server(sharedance_proc: Any, data: bytes) -> None:
    with contextlib.suppress(OSError):
        _raw(sharedance_proc.port, data)
    assert sharedance_proc.proc.poll() is None
    store = sessions.SharedanceStore("127.0.0.1", sharedance_proc.port, timeout=5)
    store.set("alive", b"yes")
    assert store.get("alive") == b"yes"


def test_server_expires_entries_by_age(tmp_path: Path) -> None:
    import time

    from tests.conformance.stores import sharedance_server

    proc = sharedance_server(tmp_path / "d", expiration=1)
    try:
        store = sessions.SharedanceStore("127.0.0.1", proc.port)
        store.set("old", b"value")
        assert store.get("old") == b"value"
        time.sleep(2.2)
        assert store.get("old") is None
    finally:
        proc.stop()


@given(keys, st.sampled_from([b for b in range(256) if b not in _KEY_BYTES]), st.data())
def test_is_valid_key_refuses_any_byte_outside_the_alphabet(
    key: bytes, bad: int, data: Any
) -> None:
    assert is_valid_key(key)
    at = data.draw(st.integers(0, len(key)))
    assert not is_valid_key(key[:at] + bytes([bad]) + key[at:])
    assert not is_valid_key(b"")
