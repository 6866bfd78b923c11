"""nginx's ``least_time header|last_byte [inflight]`` (open source since 1.31), exactly.

A sans-I/O core: the caller passes the clock (milliseconds) and reports each attempt's
header and response times; the core keeps nginx's per-peer state and makes nginx's choice.
The rules, read in ``ngx_http_upstream_least_time_module.c`` and the round-robin header,
are written out in tests/golden/README.md; the core is checked against choices recorded
from nginx 1.31.5 (tests/golden/nginx_least_time.json).

Not thread-safe by itself: the caller serializes ``pick``/``header``/``done`` (one lock),
as nginx does with its peers lock.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Literal

import attrs

from lbkit.errors import ConfigError, RequestError

__all__ = ["LeastTimeAttempt", "LeastTimeMode", "LeastTimePeer", "NginxLeastTime", "eta", "ewma"]

LeastTimeMode = Literal["header", "last_byte"]

RT_CAP_MS = 5000
BUCKET_MS = 20
MSEC_MASK = (1 << 64) - 1  # ngx_msec_t is unsigned: in-flight sums wrap as in C


def ewma(avg: int, sample: int) -> int:
    """nginx's average: the first sample as is, then ``0.5 + (v*0.05 + avg*0.95)`` truncated.

    0 means "no sample yet", so an average that rounds to 0 restarts from the next sample.
    """
    if avg == 0:
        return sample
    return int(0.5 + (sample * 0.05 + avg * 0.95))


@attrs.define(slots=True, eq=False)
class LeastTimePeer:
    """One ``server`` line and nginx's mutable state for it (times in ms, ``checked`` in s)."""

    name: str
    weight: int = 1
    max_fails: int = 1
    fail_timeout: int = 10
    max_conns: int = 0
    down: bool = False
    current_weight: int = 0
    effective_weight: int = 0
    conns: int = 0
    fails: int = 0
    accessed: int = 0
    checked: int = 0
    header_time: int = 0
    response_time: int = 0
    inflight_time: int = 0
    inflight_last: int = 0
    inflight_reqs_changed: int = 0
    inflight_reqs: int = 0

    def __attrs_post_init__(self) -> None:
        self.effective_weight = self.weight

    def is_failed(self, now_s: int) -> bool:
        """Out of service after ``max_fails`` failures within ``fail_timeout``."""
        return bool(
            self.max_fails
            and self.fails >= self.max_fails
            and now_s - self.checked <= self.fail_timeout
        )

    def usable(self, now_s: int) -> bool:
        """Not down, not failed, not at ``max_conns``."""
        if self.down or self.is_failed(now_s):
            return False
        return not (self.max_conns and self.conns >= self.max_conns)


@attrs.define(slots=True, eq=False)
class LeastTimeAttempt:
    """One pick: the peer and whether it is still counted in flight."""

    peer: LeastTimePeer
    in_flight: bool = False
    single: bool = False


def eta(peer: LeastTimePeer, mode: LeastTimeMode, now_s: int) -> int:
    """nginx's estimate for ``peer``: its time (decayed, bucketed) times ``1 + conns``."""
    rt = peer.header_time if mode == "header" else peer.response_time
    idle = now_s - peer.checked
    if idle > peer.fail_timeout:
        # once per fail_timeout + 1 seconds the time halves; C's shift takes the count mod 64
        rt >>= (idle // (peer.fail_timeout + 1)) & 63
    if peer.inflight_reqs > 0:
        rt = max(rt, peer.inflight_time)
    if rt > RT_CAP_MS:
        rt = RT_CAP_MS
    else:
        rt += BUCKET_MS - rt % BUCKET_MS
    return rt * (1 + peer.conns)


class NginxLeastTime:
    """nginx's least_time over a primary and an optional backup group of peers.

    ``pick(now_ms)`` returns the chosen peer (or None when every peer is unusable);
    ``header(peer, header_ms, now_ms)`` reports that its response header arrived;
    ``done(peer, header_ms, response_ms, now_ms, failed=...)`` ends the attempt (``header_ms``
    None when no header came). ``tried`` holds the peers already tried in this request.
    """

    def __init__(
        self,
        peers: Sequence[LeastTimePeer],
        backup: Sequence[LeastTimePeer] = (),
        *,
        mode: LeastTimeMode = "header",
        inflight: bool = False,
    ) -> None:
        if mode not in ("header", "last_byte"):
            raise ConfigError(f"invalid least_time mode {mode!r}: expected header or last_byte")
        if not peers:
            raise ConfigError("least_time needs at least one peer")
        names = [p.name for p in (*peers, *backup)]
        if len(set(names)) != len(names):
            raise ConfigError(f"duplicate peer names in {names!r}")
        for p in (*peers, *backup):
            if isinstance(p.weight, bool) or not 1 <= p.weight <= 1000:
                raise ConfigError(f"invalid weight={p.weight!r} for {p.name!r}: expected 1..1000")
        self.peers = list(peers)
        self.backup = list(backup)
        self.mode: LeastTimeMode = mode
        self.inflight = inflight
        self._inflight_taken: set[int] = set()

    def pick(self, now_ms: int, tried: Iterable[LeastTimePeer] = ()) -> LeastTimeAttempt | None:
        """Choose a peer as nginx's ``get_least_time_peer`` does, and take it (conns += 1)."""
        skip = {id(p) for p in tried}
        now_s = now_ms // 1000
        for group in (self.peers, self.backup):
            if not group:
                continue
            if len(group) == 1 and group is self.peers and not self.backup:
                one = self._single(group[0], skip)
                if one is not None:
                    return LeastTimeAttempt(one, in_flight=False, single=True)
                continue
            best = self._choose(group, skip, now_ms, now_s)
            if best is not None:
                return LeastTimeAttempt(best, in_flight=self.inflight)
        return None

    def _single(self, peer: LeastTimePeer, skip: set[int]) -> LeastTimePeer | None:
        # peers->single: round robin's one-peer path (no failure check, no inflight)
        if id(peer) in skip or peer.down or (peer.max_conns and peer.conns >= peer.max_conns):
            return None
        peer.conns += 1
        return peer

    def _choose(
        self, group: list[LeastTimePeer], skip: set[int], now_ms: int, now_s: int
    ) -> LeastTimePeer | None:
        best: LeastTimePeer | None = None
        best_eta = 0
        best_index = 0
        many = False
        for i, peer in enumerate(group):
            if id(peer) in skip or not peer.usable(now_s):
                continue
            if peer.inflight_reqs > 0:
                ift = (
                    peer.inflight_last // peer.inflight_reqs + (now_ms - peer.inflight_reqs_changed)
                ) & MSEC_MASK
                peer.inflight_time = ewma(peer.inflight_time, ift)
            e = eta(peer, self.mode, now_s)
            if best is None or e * best.weight < best_eta * peer.weight:
                best, best_eta, best_index, many = peer, e, i, False
            elif e * best.weight == best_eta * peer.weight:
                many = True
        if best is None:
            return None
        total = 0
        if many:
            for peer in group[best_index:]:
                if id(peer) in skip or peer.down:
                    continue
                if eta(peer, self.mode, now_s) * best.weight != best_eta * peer.weight:
                    continue
                if not peer.usable(now_s):
                    continue
                peer.current_weight += peer.effective_weight
                total += peer.effective_weight
                if peer.effective_weight < peer.weight:
                    peer.effective_weight += 1
                if peer.current_weight > best.current_weight:
                    best = peer
        best.current_weight -= total
        if self.inflight:
            if best.inflight_reqs > 0:
                best.inflight_last = (
                    best.inflight_last + (now_ms - best.inflight_reqs_changed) * best.inflight_reqs
                ) & MSEC_MASK
            best.inflight_reqs_changed = now_ms
            best.inflight_reqs += 1
        if now_s - best.checked > best.fail_timeout:
            best.checked = now_s
        best.conns += 1
        return best

    def header(self, attempt: LeastTimeAttempt, header_ms: int, now_ms: int) -> None:
        """The response header arrived (nginx's notify; it acts only with ``header inflight``).

        The header time is averaged now and the attempt leaves the in-flight account.
        """
        _check_ms("header_ms", header_ms)
        if not (self.inflight and self.mode == "header"):
            return
        peer = attempt.peer
        peer.header_time = ewma(peer.header_time, header_ms)
        if attempt.in_flight:
            self._inflight_done(peer, header_ms, now_ms)
            attempt.in_flight = False

    def done(
        self,
        attempt: LeastTimeAttempt,
        header_ms: int | None,
        response_ms: int,
        now_ms: int,
        *,
        failed: bool = False,
        passed_on: bool = False,
    ) -> None:
        """The attempt ended (nginx's free): averages on success, failure accounting, conns.

        ``header_ms`` is None when no header came; ``passed_on`` is a response nginx passed
        to the next peer without counting a failure (``NGX_PEER_NEXT``).
        """
        _check_ms("response_ms", response_ms)
        if header_ms is not None:
            _check_ms("header_ms", header_ms)
        peer = attempt.peer
        if attempt.in_flight:
            self._inflight_done(peer, response_ms, now_ms)
            attempt.in_flight = False
        if not (failed or passed_on) and header_ms is not None:
            peer.response_time = ewma(peer.response_time, response_ms)
            if not (self.inflight and self.mode == "header"):
                peer.header_time = ewma(peer.header_time, header_ms)
        now_s = now_ms // 1000
        if attempt.single:
            peer.fails = 0
        elif failed:
            peer.fails += 1
            peer.accessed = now_s
            peer.checked = now_s
            if peer.max_fails:
                peer.effective_weight -= peer.weight // peer.max_fails
            peer.effective_weight = max(peer.effective_weight, 0)
        elif peer.accessed < peer.checked:
            peer.fails = 0
        peer.conns -= 1

    @staticmethod
    def _inflight_done(peer: LeastTimePeer, last: int, now_ms: int) -> None:
        if peer.inflight_reqs == 1:
            peer.inflight_last = 0
        else:
            peer.inflight_last = (
                peer.inflight_last
                + (now_ms - peer.inflight_reqs_changed) * peer.inflight_reqs
                - last
            ) & MSEC_MASK
            peer.inflight_reqs_changed = now_ms
        peer.inflight_reqs -= 1


def _check_ms(label: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise RequestError(f"invalid {label}={value!r}: expected milliseconds >= 0")
