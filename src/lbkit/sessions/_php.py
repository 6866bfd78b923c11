"""PHP's session formats, so Python and PHP apps can share sessions on one store.

PHP writes ``$_SESSION`` with ``session.serialize_handler``:

- ``php`` (PHP's default): ``name|value`` for each key, values in ``serialize()`` syntax:
  ``user|s:5:"alice";n|i:3;``
- ``php_serialize``: the whole array through ``serialize()``:
  ``a:2:{s:4:"user";s:5:"alice";s:1:"n";i:3;}``

Only data survives the trip: null, bool, int, float, string and arrays. PHP arrays become
Python lists when their keys are 0..n-1 in order, dicts otherwise. Strings that are not
UTF-8 become ``bytes``. Objects, enums and references are refused (never instantiated), as
is anything deeper than ``max_depth`` or larger than ``max_size`` bytes; only
:class:`~lbkit.errors.SessionDataError` escapes the parser.
"""

from __future__ import annotations

import math
import re
from typing import Any, Literal

from lbkit.errors import ConfigError, SessionDataError

__all__ = ["PhpSerializer"]

Handler = Literal["php", "php_serialize"]

# PHP's ``serialize()`` lexer (ext/standard/var_unserializer.re) reads integers as
# [+-]?[0-9]+ and floats as iv | nv | nvexp | INF | -INF | NAN.
_INT = re.compile(rb"[+-]?[0-9]+")
_FLOAT = re.compile(rb"[+-]?(?:[0-9]*\.?[0-9]+|[0-9]+\.[0-9]*)(?:[eE][+-]?[0-9]+)?|-?INF|NAN")
# What PHP's arrays turn into integer keys: canonical decimal strings within 64 bits.
_CANONICAL_INT = re.compile(r"(?:0|-?[1-9][0-9]{0,18})\Z")
_INT_MIN, _INT_MAX = -(2**63), 2**63 - 1
_REFUSED = {
    ord("O"): "objects",
    ord("C"): "objects",
    ord("E"): "enums",
    ord("r"): "references",
    ord("R"): "references",
}


class _Reader:
    """A bounded recursive-descent reader over one ``serialize()`` byte string."""

    def __init__(self, raw: bytes, max_depth: int) -> None:
        self.raw = raw
        self.pos = 0
        self.max_depth = max_depth

    def fail(self, what: str) -> SessionDataError:
        return SessionDataError(f"invalid PHP session data at byte {self.pos}: {what}")

    def expect(self, token: bytes) -> None:
        if not self.raw.startswith(token, self.pos):
            raise self.fail(f"expected {token.decode()!r}")
        self.pos += len(token)

    def number(self, pattern: re.Pattern[bytes], end: bytes) -> bytes:
        m = pattern.match(self.raw, self.pos)
        if m is None or len(m.group()) > 400:
            raise self.fail("expected a number")
        self.pos = m.end()
        self.expect(end)
        return m.group()

    def integer(self, end: bytes) -> int:
        value = int(self.number(_INT, end))
        if not _INT_MIN <= value <= _INT_MAX:
            raise self.fail(f"integer {value} does not fit in 64 bits")
        return value

    def string(self) -> str | bytes:
        length = self.integer(b':"')
        if length < 0 or self.pos + length + 2 > len(self.raw):
            raise self.fail(f"string length {length} runs past the end")
        data = self.raw[self.pos : self.pos + length]
        self.pos += length
        self.expect(b'";')
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            return data

    def value(self, depth: int) -> Any:
        if self.pos >= len(self.raw):
            raise self.fail("unexpected end")
        tag = self.raw[self.pos]
        if tag in _REFUSED:
            raise self.fail(f"PHP {_REFUSED[tag]} are refused (only data is read)")
        self.pos += 1
        if tag == ord("N"):
            self.expect(b";")
            return None
        self.expect(b":")
        if tag == ord("b"):
            flag = self.integer(b";")
            if flag not in (0, 1):
                raise self.fail(f"boolean {flag}")
            return bool(flag)
        if tag == ord("i"):
            return self.integer(b";")
        if tag == ord("d"):
            text = self.number(_FLOAT, b";").decode("ascii")
            return float(text.replace("INF", "inf").replace("NAN", "nan"))
        if tag == ord("s"):
            return self.string()
        if tag == ord("a"):
            return self.array(depth + 1)
        raise self.fail(f"unknown type {chr(tag)!r}")

    def array(self, depth: int) -> dict[Any, Any] | list[Any]:
        if depth > self.max_depth:
            raise self.fail(f"arrays nested deeper than {self.max_depth}")
        count = self.integer(b":{")
        # every element takes at least 4 bytes ("i:0;N;" is 6): refuse counts the input
        # cannot hold before building anything
        if count < 0 or count * 4 > len(self.raw) - self.pos:
            raise self.fail(f"array of {count} elements runs past the end")
        items: dict[Any, Any] = {}
        for _ in range(count):
            if self.raw.startswith(b"i:", self.pos):
                self.pos += 2
                key: int | str | bytes = self.integer(b";")
            elif self.raw.startswith(b"s:", self.pos):
                self.pos += 2
                key = self.string()
            else:
                raise self.fail("array keys are integers or strings")
            if isinstance(key, str) and _CANONICAL_INT.match(key):
                key = int(key)  # PHP stores "5" as the integer key 5
            items[key] = self.value(depth)
        self.expect(b"}")
        if list(items) == list(range(len(items))):
            return list(items.values())
        return items


def _write(value: Any, out: list[bytes], depth: int, max_depth: int) -> None:
    if value is None:
        out.append(b"N;")
    elif isinstance(value, bool):
        out.append(b"b:1;" if value else b"b:0;")
    elif isinstance(value, int):
        if not _INT_MIN <= value <= _INT_MAX:
            raise SessionDataError(f"integer {value} does not fit in PHP's 64-bit int")
        out.append(b"i:%d;" % value)
    elif isinstance(value, float):
        if math.isnan(value):
            out.append(b"d:NAN;")
        elif math.isinf(value):
            out.append(b"d:INF;" if value > 0 else b"d:-INF;")
        else:
            out.append(b"d:" + repr(value).encode("ascii") + b";")
    elif isinstance(value, (str, bytes)):
        data = value.encode("utf-8") if isinstance(value, str) else value
        out.append(b's:%d:"%s";' % (len(data), data))
    elif isinstance(value, (list, tuple, dict)):
        if depth >= max_depth:
            raise SessionDataError(f"session data nested deeper than {max_depth} levels")
        pairs = value.items() if isinstance(value, dict) else enumerate(value)
        body: list[bytes] = []
        count = 0
        for key, item in pairs:
            _write_key(key, body)
            _write(item, body, depth + 1, max_depth)
            count += 1
        out.append(b"a:%d:{" % count)
        out.extend(body)
        out.append(b"}")
    else:
        raise SessionDataError(
            f"PHP sessions hold None, bool, int, float, str, bytes, list and dict, "
            f"not {type(value).__name__}"
        )


def _write_key(key: Any, out: list[bytes]) -> None:
    if isinstance(key, str) and _CANONICAL_INT.match(key):
        key = int(key)
    if isinstance(key, bool) or not isinstance(key, (int, str, bytes)):
        raise SessionDataError(f"PHP array keys are int or str, not {type(key).__name__}")
    _write(key, out, 0, 1)


class PhpSerializer:
    """Reads and writes PHP's session formats (``serializer=`` of a session manager).

    ``handler`` is PHP's ``session.serialize_handler``: ``"php"`` (PHP's default) or
    ``"php_serialize"``. PHP deletes a session it cannot decode: write only the types listed
    in the module docstring, and keys without ``|`` for the ``php`` handler.
    """

    def __init__(
        self,
        handler: Handler = "php",
        *,
        max_depth: int = 64,
        max_size: int = 1024 * 1024,
    ) -> None:
        if handler not in ("php", "php_serialize"):
            raise ConfigError(
                f"invalid PHP session handler {handler!r}: expected 'php' or 'php_serialize'"
            )
        if max_depth < 1 or max_size < 1:
            raise ConfigError(f"max_depth and max_size must be >= 1, got {max_depth}, {max_size}")
        self.handler: Handler = handler
        self.max_depth = max_depth
        self.max_size = max_size

    def dumps(self, data: dict[str, Any]) -> bytes:
        """``data`` in PHP's format (raises SessionDataError for what PHP cannot hold)."""
        if not isinstance(data, dict):
            raise SessionDataError(f"session data is a dict, not {type(data).__name__}")
        out: list[bytes] = []
        if self.handler == "php_serialize":
            _write(data, out, 0, self.max_depth)
        else:
            for key, value in data.items():
                if not isinstance(key, str) or "|" in key:
                    raise SessionDataError(
                        f"PHP's 'php' session handler needs str keys without '|', got {key!r}"
                    )
                out.append(key.encode("utf-8") + b"|")
                _write(value, out, 1, self.max_depth)
        raw = b"".join(out)
        if len(raw) > self.max_size:
            raise SessionDataError(f"session data of {len(raw)} bytes exceeds {self.max_size}")
        return raw

    def loads(self, raw: bytes) -> dict[str, Any]:
        """The session in ``raw`` (raises SessionDataError for anything else)."""
        if not isinstance(raw, (bytes, bytearray, memoryview)):
            raise SessionDataError(f"session data is bytes, not {type(raw).__name__}")
        raw = bytes(raw)
        if len(raw) > self.max_size:
            raise SessionDataError(f"session data of {len(raw)} bytes exceeds {self.max_size}")
        reader = _Reader(raw, self.max_depth)
        if self.handler == "php_serialize":
            if not raw:
                return {}  # PHP writes an empty session as ""
            top = reader.value(0)
            if reader.pos != len(raw):
                raise reader.fail("trailing bytes")
            if not isinstance(top, (dict, list)):
                raise SessionDataError("php_serialize session data is not an array")
            items = top.items() if isinstance(top, dict) else enumerate(top)
            return {_text_key(k): v for k, v in items}
        data: dict[str, Any] = {}
        while reader.pos < len(raw):
            bar = raw.find(b"|", reader.pos)
            if bar < 0:
                raise reader.fail("expected 'name|' before a value")
            name = raw[reader.pos : bar]
            reader.pos = bar + 1
            data[_text_key(name)] = reader.value(1)
        return data


def _text_key(key: int | str | bytes) -> str:
    if isinstance(key, bytes):
        try:
            return key.decode("utf-8")
        except UnicodeDecodeError:
            raise SessionDataError(f"session key {key!r} is not UTF-8") from None
    return str(key)
