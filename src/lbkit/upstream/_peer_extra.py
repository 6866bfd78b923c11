"""The fields of a peer that only some peers ever set: kept apart from the hot ones.

Every peer needs its weights, connections and health cache on every pick; only a peer
that failed needs nginx's ``fails`` and ``accessed``, only a ramping one ``ramp_start``,
only a drained one ``draining``, only one whose response times are reported
``response_time``, and only least_time's peers ``times``. :class:`~lbkit.upstream.PeerState`
holds these in one :class:`PeerExtra`, created the first time one of them is set, and
reads them through properties: a peer that never uses them pays one empty slot.
"""

from __future__ import annotations

import attrs

from lbkit.upstream._peer_times import PeerTimes

__all__ = ["PeerExtra"]


@attrs.define(slots=True, eq=False, weakref_slot=False)
class PeerExtra:
    """The rarely set fields of one peer (see :class:`~lbkit.upstream.PeerState`, whose
    properties of the same names read and write them)."""

    fails: int = 0
    accessed: int = 0
    response_time: float | None = None
    ramp_start: int | None = None
    draining: bool = False
    times: PeerTimes | None = None
