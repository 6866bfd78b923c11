"""nginx's ``ip_hash``: the client's address picks the peer (IPv4: first three octets)."""

from __future__ import annotations

import bisect
import ipaddress
import socket

import attrs

from lbkit.balancers.round_robin import get_round_robin_peer
from lbkit.errors import InvalidAddressError
from lbkit.peer import PeerGroup, PeerState, RequestState

__all__ = ["MAX_ADDRESS_TEXT", "IpHash", "IpHashPicker", "client_address_bytes"]

#: Longest client address text accepted (an IPv6 address with a scope id fits easily).
MAX_ADDRESS_TEXT = 128


def client_address_bytes(client_addr: str | bytes) -> bytes:
    """The bytes nginx hashes for a client: 3 octets of IPv4, all 16 bytes of IPv6.

    Raises :class:`~lbkit.InvalidAddressError` for anything that is not an IP address.
    """
    if isinstance(client_addr, bytes):
        try:
            text = client_addr.decode("ascii")
        except UnicodeDecodeError:
            raise InvalidAddressError(
                f"invalid client address {client_addr[:64]!r}: expected IPv4 or IPv6 text"
            ) from None
    elif isinstance(client_addr, str):
        text = client_addr
    else:
        raise InvalidAddressError(
            f"invalid client address {client_addr!r}: expected IPv4 or IPv6 text (str or bytes)"
        )
    if len(text) > MAX_ADDRESS_TEXT:
        raise InvalidAddressError(
            f"invalid client address {text[:64]!r}...: longer than {MAX_ADDRESS_TEXT} characters"
        )
    # fast path: the C parser for plain dotted-quad and IPv6 text
    try:
        return socket.inet_pton(socket.AF_INET, text)[:3]
    except OSError:
        pass
    if ":" in text and "%" not in text:
        try:
            return socket.inet_pton(socket.AF_INET6, text)
        except OSError:
            pass
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise InvalidAddressError(
            f"invalid client address {text!r}: expected IPv4 (192.0.2.1) or IPv6 (2001:db8::1) text"
        ) from None
    if address.version == 4:
        return address.packed[:3]
    return address.packed


def ip_hash_step(hash_value: int, addr: bytes) -> int:
    """One round of nginx's ip_hash: ``hash = (hash * 113 + byte) % 6271`` over ``addr``."""
    for byte in addr:
        hash_value = (hash_value * 113 + byte) % 6271
    return hash_value


def weighted_index(group: PeerGroup, w: int) -> PeerState:
    """The peer whose weight range holds ``w`` (0 <= w < total weight), in config order.

    nginx walks the ranges one by one; a bisect over their starts finds the same peer.
    (Weights of hash methods never change at run time: slow_start is refused for them.)
    """
    return group.peers[bisect.bisect_right(group.starts, w) - 1]


@attrs.frozen(slots=True)
class IpHashPicker:
    """Runtime side of :class:`IpHash`."""

    def begin(self, request: RequestState) -> None:
        """nginx starts every request's hash at 89."""
        request.hash = 89

    def get(self, request: RequestState, now: int) -> PeerState | None:
        """nginx's ``ngx_http_upstream_get_ip_hash_peer``."""
        group = request.group
        if request.hash_tries > 20 or group.single:
            return get_round_robin_peer(request, now)
        hash_value = request.hash
        while True:
            hash_value = ip_hash_step(hash_value, request.addr)
            peer = weighted_index(group, hash_value % group.total_weight)
            if not (request.tried >> peer.index & 1) and peer.is_available(now):
                break
            request.hash_tries += 1
            if request.hash_tries > 20:
                return get_round_robin_peer(request, now)
        peer.conns += 1
        if now - peer.checked > peer.fail_timeout:
            peer.checked = now
        request.tried |= 1 << peer.index
        request.hash = hash_value
        return peer


@attrs.frozen(slots=True)
class IpHash:
    """nginx's ``ip_hash`` directive: needs ``client_addr=`` on every pick."""

    supports_backup = False
    needs_key = False
    needs_client_addr = True

    def bind(self, primary: PeerGroup) -> IpHashPicker:
        """ip_hash needs no precomputed structure."""
        return IpHashPicker()

    def to_nginx(self) -> str:
        """The directive text."""
        return "ip_hash;"
