"""One sort of a whole ring: every node's 32-bit points ascending, ties in node order.

Each node gives its points as one ``bytes`` of little-endian 32-bit values (signed for the
``fast`` flavour); :func:`sort_points` returns the sorted points and, for each, the rank of
its node (its index in the list). A 10,000-node ring holds 1.6 million points, so the work
is done by C loops over buffers rather than a Python step per point:

- the points and ranks are written side by side into 8-byte records that read as doubles,
  ``2**52 + point * 2**16 + rank`` (one strided copy per field);
- one ``list.sort`` of those doubles (CPython's fastest comparison) orders by (point, rank);
- the sorted doubles are packed back into records, and the points and ranks are read out
  of them by strided copies again.

The records need 16-bit ranks and a machine whose doubles and integers are little-endian
(every common one); past 65,536 nodes, or elsewhere, plain integers ``point << bits | rank``
are sorted instead, with the same result.
"""

from __future__ import annotations

import bisect
import operator
import struct
import sys
from array import array
from itertools import repeat

__all__ = ["MAX_RECORD_NODES", "sort_points"]

#: Nodes the record sort can rank (16 bits beside the 32-bit point in a double).
MAX_RECORD_NODES = 1 << 16

#: The top two bytes of a record: the sign and exponent of 2.0**52, under which a double's
#: 52 mantissa bits read as the integer they hold (point * 2**16 + rank).
_RECORD_TOP = 0x4330
#: The lowest record holding a negative signed point (its bits read unsigned >= 2**31).
_FIRST_NEGATIVE = float(2**52 + (2**31 << 16))


def _records_readable() -> bool:
    """Whether doubles, 16- and 32-bit integers lie in memory as the records assume."""
    if sys.byteorder != "little" or array("I").itemsize != 4 or array("H").itemsize != 2:
        return False
    probe = struct.pack("<HIH", 7, 5, _RECORD_TOP)
    value: float = struct.unpack("d", probe)[0]
    return value == 2**52 + (5 << 16) + 7


_RECORDS_READABLE = _records_readable()


def sort_points(blobs: list[bytes], signed: bool) -> tuple[array[int], array[int]]:
    """The points of every blob in ascending order, and the rank (blob index) of each.

    ``blobs[rank]`` holds one node's points as little-endian 32-bit integers (signed if
    ``signed``); equal points keep the order of their ranks.
    """
    if _RECORDS_READABLE and len(blobs) <= MAX_RECORD_NODES:
        return _sort_records(blobs, signed)
    return _sort_ints(blobs, signed)


def _sort_records(blobs: list[bytes], signed: bool) -> tuple[array[int], array[int]]:
    ranks = array("H")
    for rank, blob in enumerate(blobs):
        ranks += array("H", (rank,)) * (len(blob) >> 2)
    n = len(ranks)
    size = 8 * n
    # record i: bytes 0-1 rank, 2-5 point, 6-7 the top of 2.0**52 (8 spare bytes at the end
    # let a 32-bit view start at byte 2)
    records = bytearray(size + 8)
    view = memoryview(records)
    view[2 : size + 2].cast("I")[::2] = memoryview(b"".join(blobs)).cast("I")
    halves = view[:size].cast("H")
    halves[::4] = ranks
    halves[3::4] = array("H", (_RECORD_TOP,)) * n
    del halves, ranks
    made = view[:size].cast("d").tolist()
    doubles = sorted(made)
    struct.pack_into(f"{n}d", records, 0, *doubles)
    # signed points sort as unsigned bits: the negative ones come last; start with them
    first = bisect.bisect_left(doubles, _FIRST_NEGATIVE) if signed else 0
    # free the floats in the order they were made: in sorted order each is a cache miss
    del doubles, made
    points = array("i" if signed else "I")
    owner_ranks = array("H")
    for lo, hi in ((first, n), (0, first)):
        points.frombytes(view[8 * lo + 2 : 8 * hi + 2].cast("I")[::2].tobytes())
        owner_ranks.frombytes(view[8 * lo : 8 * hi].cast("H")[::4].tobytes())
    return points, owner_ranks


def _sort_ints(blobs: list[bytes], signed: bool) -> tuple[array[int], array[int]]:
    bits = max(1, (len(blobs) - 1).bit_length())
    code = "<%di" if signed else "<%dI"
    packed: list[int] = []
    lshift, or_ = operator.lshift, operator.or_
    for rank, blob in enumerate(blobs):
        values = struct.unpack(code % (len(blob) >> 2), blob)
        packed += map(or_, map(lshift, values, repeat(bits)), repeat(rank))
    packed.sort()
    points = array("q", map(operator.rshift, packed, repeat(bits)))
    ranks = array("Q" if bits > 32 else "I", map(operator.and_, packed, repeat((1 << bits) - 1)))
    return points, ranks
