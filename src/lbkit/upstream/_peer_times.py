"""nginx's per-peer time state: the averages and in-flight account least_time reads.

nginx keeps these fields in the peer itself (``ngx_http_upstream_rr_peer_t``: ``header_time``,
``response_time``, ``inflight_*``), beside connections and failures, so they survive as
long as the peer does. Here they hang off :class:`~lbkit.upstream.PeerState` as
:attr:`~lbkit.upstream.PeerState.times` (created by the method that uses them, kept across
:meth:`~lbkit.Upstream.update` for peers that stay); the arithmetic on them lives in
:mod:`lbkit.balancers` (``least_time``).
"""

from __future__ import annotations

import attrs

__all__ = ["MSEC_MASK", "MSEC_MAX", "PeerTimes", "response_time_avg"]

#: ``ngx_msec_t`` is an unsigned 64-bit integer: sums and differences of it wrap.
MSEC_MASK = (1 << 64) - 1
#: ``(ngx_msec_t) -1``: nginx's "not measured" time.
MSEC_MAX = MSEC_MASK


def response_time_avg(avg: int, sample: int) -> int:
    """nginx's ``ngx_http_upstream_response_time_avg``: the first sample as it is, then
    ``0.5 + (sample * 0.05 + avg * 0.95)`` in doubles, truncated (rounds half up).

    0 means "no sample yet", so an average that rounds down to 0 restarts from the next one.
    """
    if avg == 0:
        return sample
    # a double of 2**64 (both near the top of ngx_msec_t) becomes 0 as x86-64 converts it
    return int(0.5 + (sample * 0.05 + avg * 0.95)) & MSEC_MASK


@attrs.define(slots=True)
class PeerTimes:
    """One peer's times, all integer milliseconds as nginx keeps them (``ngx_msec_t``).

    ``header_time`` and ``response_time`` are averages (:func:`response_time_avg`) of the
    times to the response header and to its last byte; ``inflight_*`` account for the
    requests still running (``least_time ... inflight``): how many, since when
    (``inflight_reqs_changed``, on the upstream's millisecond clock), the time they had
    run by then (``inflight_last``) and the average of their estimated time
    (``inflight_time``).
    """

    header_time: int = 0
    response_time: int = 0
    inflight_time: int = 0
    inflight_last: int = 0
    inflight_reqs_changed: int = 0
    inflight_reqs: int = 0
