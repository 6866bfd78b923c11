"""PhpSerializer: PHP's session formats both ways, checked against Debian's php-cli."""

from __future__ import annotations

import contextlib
import math
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lbkit.errors import ConfigError, LbkitError, SessionDataError
from lbkit.sessions import PhpSerializer

from .php import php_binary

HERE = Path(__file__).parent
HANDLERS = ["php", "php_serialize"]

# What PHP itself writes for one session (recorded with PHP 8.2's session_encode()).
SAMPLE = {"user": "alice", "n": 3}
PHP_BYTES = {
    "php": b'user|s:5:"alice";n|i:3;',
    "php_serialize": b'a:2:{s:4:"user";s:5:"alice";s:1:"n";i:3;}',
}


def php_reencode(handler: str, raw: bytes, tmp: Path) -> bytes:
    """Let PHP's own session code decode ``raw`` and encode it again."""
    out = subprocess.run(
        [php_binary(), str(HERE / "reencode.php"), handler, str(tmp)],
        input=raw,
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert out.returncode == 0, out.stderr.decode()
    return out.stdout


@pytest.mark.parametrize("handler", HANDLERS)
def test_reads_and_writes_phps_bytes(handler: str) -> None:
    s = PhpSerializer(handler=handler)  # type: ignore[arg-type]
    assert s.loads(PHP_BYTES[handler]) == SAMPLE
    assert s.dumps(SAMPLE) == PHP_BYTES[handler]


def test_arrays_lists_and_scalars() -> None:
    s = PhpSerializer("php_serialize")
    raw = (
        b'a:6:{s:4:"user";s:5:"alice";s:1:"n";i:3;s:1:"f";d:0.1;s:1:"g";d:1.0E+100;'
        b's:1:"l";a:2:{i:0;i:1;i:1;i:2;}s:1:"m";a:2:{s:1:"x";b:1;i:5;N;}}'
    )
    assert s.loads(raw) == {
        "user": "alice",
        "n": 3,
        "f": 0.1,
        "g": 1e100,
        "l": [1, 2],
        "m": {"x": True, 5: None},
    }
    inf = s.loads(b'a:3:{s:1:"a";d:INF;s:1:"b";d:-INF;s:1:"c";d:NAN;}')
    assert inf["a"] == math.inf
    assert inf["b"] == -math.inf
    assert math.isnan(inf["c"])
    assert s.loads(b"") == {}
    assert PhpSerializer("php").loads(b"") == {}


def test_non_utf8_strings_are_bytes() -> None:
    s = PhpSerializer("php")
    assert s.loads(b'k|s:2:"\xff\xfe";') == {"k": b"\xff\xfe"}
    assert s.dumps({"k": b"\xff\xfe"}) == b'k|s:2:"\xff\xfe";'
    # lengths count bytes, as PHP does
    assert s.dumps({"k": "é"}) == b'k|s:2:"\xc3\xa9";'


@pytest.mark.parametrize(
    ("raw", "what"),
    [
        (b'o|O:8:"stdClass":0:{}', "objects"),
        (b'o|C:3:"Foo":0:{}', "objects"),
        (b'o|E:7:"Foo:Bar";', "enums"),
        (b'a|a:1:{i:0;s:1:"x";}b|R:2;', "references"),
        (b'a|s:99:"short";', "runs past the end"),
        (b"a|a:999999999:{}", "runs past the end"),
        (b"a|i:99999999999999999999;", "64 bits"),
        (b"a|b:2;", "boolean"),
        (b"a|x:1;", "unknown type"),
        (b"noseparator", "name|"),
        (b"a|i:1", "expected ';'"),
    ],
)
def test_refuses_objects_and_broken_data(raw: bytes, what: str) -> None:
    with pytest.raises(SessionDataError, match=what):
        PhpSerializer("php").loads(raw)


def test_depth_and_size_are_bounded() -> None:
    deep = b"k|" + b"a:1:{i:0;" * 100 + b"N;" + b"}" * 100
    with pytest.raises(SessionDataError, match="deeper than 64"):
        PhpSerializer("php").loads(deep)
    assert PhpSerializer("php", max_depth=200).loads(deep)["k"] is not None
    with pytest.raises(SessionDataError, match="exceeds 10"):
        PhpSerializer("php", max_size=10).loads(b'k|s:20:"' + b"x" * 20 + b'";')
    nested: Any = None
    for _ in range(100):
        nested = [nested]
    with pytest.raises(SessionDataError, match="deeper than 64"):
        PhpSerializer("php").dumps({"k": nested})


def test_refuses_what_php_cannot_hold() -> None:
    with pytest.raises(SessionDataError, match=r"'\|'"):
        PhpSerializer("php").dumps({"a|b": 1})
    with pytest.raises(SessionDataError, match="not object"):
        PhpSerializer("php").dumps({"a": object()})
    with pytest.raises(SessionDataError, match="64-bit"):
        PhpSerializer("php_serialize").dumps({"a": 2**64})
    with pytest.raises(ConfigError, match="igbinary"):
        PhpSerializer("igbinary")  # type: ignore[arg-type]


# Data PHP sessions can hold, as lbkit reads it back: lists for 0..n-1 keys, dicts with
# str keys that are not canonical integers (PHP turns "5" into 5) or int keys.
_key = st.one_of(
    st.text(max_size=8).filter(lambda k: not k.lstrip("-").isdigit()),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
)
_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False),
    st.text(max_size=20),
)
_value = st.recursive(
    _scalar,
    lambda inner: st.one_of(
        st.lists(inner, min_size=1, max_size=4),
        st.dictionaries(_key, inner, max_size=4).filter(lambda d: list(d) != list(range(len(d)))),
    ),
    max_leaves=12,
)
_session = st.dictionaries(
    st.text(min_size=1, max_size=10).filter(lambda k: "|" not in k and not k.isdigit()),
    _value,
    max_size=5,
)


@pytest.mark.parametrize("handler", HANDLERS)
@given(data=_session)
def test_round_trip(handler: str, data: dict[str, Any]) -> None:
    s = PhpSerializer(handler=handler)  # type: ignore[arg-type]
    assert s.loads(s.dumps(data)) == data


@pytest.mark.parametrize("handler", HANDLERS)
@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=_session)
def test_php_reads_what_lbkit_writes(handler: str, data: dict[str, Any], tmp_path: Path) -> None:
    s = PhpSerializer(handler=handler)  # type: ignore[arg-type]
    assert s.loads(php_reencode(handler, s.dumps(data), tmp_path)) == data


@pytest.mark.parametrize("handler", HANDLERS)
@settings(max_examples=2000)
@given(raw=st.binary(max_size=200))
def test_fuzz_only_lbkit_errors_escape(handler: str, raw: bytes) -> None:
    with contextlib.suppress(LbkitError):
        PhpSerializer(handler=handler).loads(raw)  # type: ignore[arg-type]


_fragments = st.sampled_from(
    [b"a:", b"i:", b"s:", b"d:", b"b:", b"N;", b"O:", b"R:", b"{", b"}", b";", b":", b'"',
     b"|", b"1", b"2", b"-", b"9999999999", b"INF", b"E+9", b"k", b"\xff"]
)  # fmt: skip


@pytest.mark.parametrize("handler", HANDLERS)
@settings(max_examples=2000)
@given(parts=st.lists(_fragments, max_size=40))
def test_fuzz_grammar_fragments(handler: str, parts: list[bytes]) -> None:
    with contextlib.suppress(LbkitError):
        PhpSerializer(handler=handler).loads(b"".join(parts))  # type: ignore[arg-type]


_anything = st.recursive(
    st.one_of(
        st.none(), st.booleans(), st.integers(), st.floats(), st.text(), st.binary(),
        st.complex_numbers(), st.sets(st.integers(), max_size=3), st.builds(object),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.tuples(inner, inner),
        st.dictionaries(st.one_of(st.text(), st.integers(), st.booleans(), st.none()), inner,
                        max_size=3),
    ),
    max_leaves=10,
)  # fmt: skip


@pytest.mark.parametrize("handler", HANDLERS)
@settings(max_examples=500)
@given(data=st.dictionaries(st.one_of(st.text(), st.integers()), _anything, max_size=4))
def test_fuzz_dumps_only_lbkit_errors_and_php_reads_back(handler: str, data: Any) -> None:
    s = PhpSerializer(handler=handler)  # type: ignore[arg-type]
    try:
        raw = s.dumps(data)
    except LbkitError:
        return
    s.loads(raw)  # whatever is written, the reader takes back
