"""A straightforward transcription of nginx 1.31.5's least_time and round-robin C code.

Written from ``ngx_http_upstream_least_time_module.c`` and ``ngx_http_upstream_round_robin.c``
line by line (loops over peers, unsigned 64-bit ``ngx_msec_t``, no shortcuts), to check
lbkit's ``LeastTime`` against in property tests. Not a model of lbkit: nothing here is
imported from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

U64 = (1 << 64) - 1
NGX_PEER_FAILED = 2
NGX_PEER_NEXT = 4
NGX_HTTP_UPSTREAM_DRAINING = 8


def avg(value: int, v: int) -> int:
    # #define ngx_http_upstream_response_time_avg(avg, v)
    #     *(avg) = (*(avg) ? (0.5 + ((double) (v) * 0.05 + (double) (*(avg)) * 0.95)) : (v))
    if value:
        return int(0.5 + (float(v) * 0.05 + float(value) * 0.95)) & U64
    return v & U64


@dataclass
class RefPeer:
    name: str
    weight: int
    max_fails: int
    fail_timeout: int
    max_conns: int
    down: int
    sid: str = ""
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

    def __post_init__(self) -> None:
        self.effective_weight = self.weight


@dataclass
class RefPeers:
    peer: list[RefPeer]
    single: bool
    next: RefPeers | None = None
    tries: int = 0

    def __post_init__(self) -> None:
        self.tries = sum(1 for p in self.peer if not p.down)  # at configuration time


@dataclass
class RefRequest:
    """``ngx_http_upstream_lt_peer_data_t`` with its round-robin data and ``pc->tries``."""

    peers: RefPeers
    tries: int
    hint: str | None = None
    tried: set[int] = field(default_factory=set)
    current: RefPeer | None = None
    inflight: bool = False


class RefLeastTime:
    def __init__(
        self, primary: list[RefPeer], backup: list[RefPeer], header: bool, use_inflight: bool
    ) -> None:
        self.header = header
        self.use_inflight = use_inflight
        self.peers = RefPeers(primary, single=len(primary) == 1 and not backup)
        if backup:
            self.peers.next = RefPeers(backup, single=False)

    def init_peer(self, hint: str | None = None) -> RefRequest:
        tries = self.peers.tries + (self.peers.next.tries if self.peers.next else 0)
        return RefRequest(self.peers, tries, hint)

    def get_rr_peer_by_sid(self, rrp: RefRequest, now: int) -> tuple[RefPeer, int] | None:
        if rrp.hint is None:
            return None
        i = next((i for i, p in enumerate(rrp.peers.peer) if p.sid == rrp.hint), -1)
        if i < 0:
            return None
        peer = rrp.peers.peer[i]
        if i in rrp.tried:
            return None
        if peer.down & ~NGX_HTTP_UPSTREAM_DRAINING:
            return None
        if (
            peer.max_fails
            and peer.fails >= peer.max_fails
            and now - peer.checked <= peer.fail_timeout
        ):
            return None
        if peer.max_conns and peer.conns >= peer.max_conns:
            return None
        return peer, i

    def eta(self, peer: RefPeer, now: int) -> int:
        rt = peer.header_time if self.header else peer.response_time
        if now - peer.checked > peer.fail_timeout:
            rt >>= ((now - peer.checked) // (peer.fail_timeout + 1)) % 64
        if peer.inflight_reqs > 0:
            rt = max(rt, peer.inflight_time)
        if rt > 5000:
            rt = 5000
        else:
            rt += 20 - rt % 20
        return (rt * (1 + peer.conns)) & U64

    def get_round_robin_single(self, rrp: RefRequest, now: int) -> RefPeer | None:
        found = self.get_rr_peer_by_sid(rrp, now)
        if found is not None:
            peer = found[0]
        else:
            peer = rrp.peers.peer[0]
            if peer.down:
                return None
            if peer.max_conns and peer.conns >= peer.max_conns:
                return None
        rrp.current = peer
        peer.conns += 1
        return peer

    def get(self, ltp: RefRequest, now: int, current_msec: int) -> RefPeer | None:
        if ltp.peers.single:
            return self.get_round_robin_single(ltp, now)
        peers = ltp.peers
        best: RefPeer | None = None
        total = 0
        many = False
        p = 0
        best_eta = 0
        found = self.get_rr_peer_by_sid(ltp, now)
        if found is not None:
            best, p = found
            return self.best_chosen(ltp, best, p, now, current_msec)
        for i, peer in enumerate(peers.peer):
            if i in ltp.tried:
                continue
            if peer.down:
                continue
            if (
                peer.max_fails
                and peer.fails >= peer.max_fails
                and now - peer.checked <= peer.fail_timeout
            ):
                continue
            if peer.max_conns and peer.conns >= peer.max_conns:
                continue
            if peer.inflight_reqs > 0:
                ift = (
                    peer.inflight_last // peer.inflight_reqs
                    + ((current_msec - peer.inflight_reqs_changed) & U64)
                ) & U64
                peer.inflight_time = avg(peer.inflight_time, ift)
            eta = self.eta(peer, now)
            if best is None or (eta * best.weight) & U64 < (best_eta * peer.weight) & U64:
                best = peer
                best_eta = eta
                many = False
                p = i
            elif (eta * best.weight) & U64 == (best_eta * peer.weight) & U64:
                many = True
        if best is None:
            if peers.next is not None:
                ltp.peers = peers.next
                ltp.tried = set()
                return self.get(ltp, now, current_msec)
            return None
        if many:
            for i in range(p, len(peers.peer)):
                peer = peers.peer[i]
                if i in ltp.tried:
                    continue
                if peer.down:
                    continue
                eta = self.eta(peer, now)
                if (eta * best.weight) & U64 != (best_eta * peer.weight) & U64:
                    continue
                if (
                    peer.max_fails
                    and peer.fails >= peer.max_fails
                    and now - peer.checked <= peer.fail_timeout
                ):
                    continue
                if peer.max_conns and peer.conns >= peer.max_conns:
                    continue
                peer.current_weight += peer.effective_weight
                total += peer.effective_weight
                if peer.effective_weight < peer.weight:
                    peer.effective_weight += 1
                if peer.current_weight > best.current_weight:
                    best = peer
                    p = i
        best.current_weight -= total
        return self.best_chosen(ltp, best, p, now, current_msec)

    def best_chosen(
        self, ltp: RefRequest, best: RefPeer, p: int, now: int, current_msec: int
    ) -> RefPeer:
        if self.use_inflight:
            if best.inflight_reqs > 0:
                best.inflight_last = (
                    best.inflight_last
                    + ((current_msec - best.inflight_reqs_changed) & U64) * best.inflight_reqs
                ) & U64
            best.inflight_reqs_changed = current_msec
            best.inflight_reqs += 1
            ltp.inflight = True
        if now - best.checked > best.fail_timeout:
            best.checked = now
        best.conns += 1
        ltp.current = best
        ltp.tried.add(p)
        return best

    def inflight_done(self, ltp: RefRequest, peer: RefPeer, last: int, current_msec: int) -> None:
        if peer.inflight_reqs == 1:
            peer.inflight_last = 0
        else:
            peer.inflight_last = (
                peer.inflight_last
                + ((current_msec - peer.inflight_reqs_changed) & U64) * peer.inflight_reqs
                - last
            ) & U64
            peer.inflight_reqs_changed = current_msec
        peer.inflight_reqs -= 1
        ltp.inflight = False

    def notify_header(self, ltp: RefRequest, header_time: int, current_msec: int) -> None:
        if not self.use_inflight:  # peer.notify is set only with inflight
            return
        if not self.header:
            return
        peer = ltp.current
        assert peer is not None
        peer.header_time = avg(peer.header_time, header_time)
        if ltp.inflight:
            self.inflight_done(ltp, peer, header_time, current_msec)

    def free(
        self,
        ltp: RefRequest,
        state: int,
        header_time: int,
        response_time: int,
        now: int,
        current_msec: int,
    ) -> None:
        peer = ltp.current
        assert peer is not None
        if ltp.inflight:
            self.inflight_done(ltp, peer, response_time, current_msec)
        if not state & (NGX_PEER_FAILED | NGX_PEER_NEXT) and header_time != U64:
            peer.response_time = avg(peer.response_time, response_time)
            if not (self.use_inflight and self.header):
                peer.header_time = avg(peer.header_time, header_time)
        self.free_round_robin(ltp, state, now)

    def free_round_robin(self, rrp: RefRequest, state: int, now: int) -> None:
        peer = rrp.current
        assert peer is not None
        if rrp.peers.single:
            if peer.fails:
                peer.fails = 0
            peer.conns -= 1
            rrp.tries = 0
            return
        if state & NGX_PEER_FAILED:
            peer.fails += 1
            peer.accessed = now
            peer.checked = now
            if peer.max_fails:
                peer.effective_weight -= peer.weight // peer.max_fails
            if peer.effective_weight < 0:
                peer.effective_weight = 0
        elif peer.accessed < peer.checked:
            peer.fails = 0
        peer.conns -= 1
        if rrp.tries:
            rrp.tries -= 1
