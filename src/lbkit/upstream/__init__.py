"""The model: configured servers, peer state and passive health, and the ``Upstream``.

Independent of any configuration syntax (:mod:`lbkit.nginx` builds these objects from nginx
text and renders them back) and of any balancing method (methods, in
:mod:`lbkit.balancers`, implement the :class:`Method` protocol declared here).
"""

from lbkit.upstream._attempts import AsyncAttempts, Attempts
from lbkit.upstream._durations import parse_duration
from lbkit.upstream._method import (
    AttemptOutcome,
    AttemptTimer,
    Method,
    MethodKind,
    Picker,
    default_method,
    set_default_method,
)
from lbkit.upstream._peer_extra import PeerExtra
from lbkit.upstream._peer_times import MSEC_MASK, MSEC_MAX, PeerTimes, response_time_avg
from lbkit.upstream._peers import (
    AVAILABLE,
    MAX_HASH_TRIES,
    Peer,
    PeerGroup,
    PeerState,
    RequestState,
    TimedPeer,
    can_take,
    hash_tries_exhausted,
    release_attempt,
    release_peer,
    take_first,
    take_peer,
    take_single_peer,
)
from lbkit.upstream._server import (
    MAX_ADDRESS_LENGTH,
    MAX_NGX_INT,
    SERVER_PARAMETERS,
    Server,
    parse_count,
    parse_server_line,
    server_from_params,
)
from lbkit.upstream._upstream import MAX_KEY_LENGTH, RESPONSE_TIME_ALPHA, Upstream
from lbkit.upstream._validation import (
    MAX_SERVERS,
    ServerConfigError,
    check_keepalive,
    check_servers,
)
from lbkit.upstream._zone import Zone, ZonePeers, ZoneSessions, open_zone, zone_size_for

__all__ = [
    "AVAILABLE",
    "MAX_ADDRESS_LENGTH",
    "MAX_HASH_TRIES",
    "MAX_KEY_LENGTH",
    "MAX_NGX_INT",
    "MAX_SERVERS",
    "MSEC_MASK",
    "MSEC_MAX",
    "RESPONSE_TIME_ALPHA",
    "SERVER_PARAMETERS",
    "AsyncAttempts",
    "AttemptOutcome",
    "AttemptTimer",
    "Attempts",
    "Method",
    "MethodKind",
    "Peer",
    "PeerExtra",
    "PeerGroup",
    "PeerState",
    "PeerTimes",
    "Picker",
    "RequestState",
    "Server",
    "ServerConfigError",
    "TimedPeer",
    "Upstream",
    "Zone",
    "ZonePeers",
    "ZoneSessions",
    "can_take",
    "check_keepalive",
    "check_servers",
    "default_method",
    "hash_tries_exhausted",
    "open_zone",
    "parse_count",
    "parse_duration",
    "parse_server_line",
    "release_attempt",
    "release_peer",
    "response_time_avg",
    "server_from_params",
    "set_default_method",
    "take_first",
    "take_peer",
    "take_single_peer",
    "zone_size_for",
]
