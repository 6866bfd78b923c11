"""lbkit: nginx-exact load balancing, consistent hashing, routing and shared sessions.

>>> import lbkit.nginx
>>> up = lbkit.nginx.parse_upstream('''
...     upstream app { server 10.0.0.1:80 weight=2; server 10.0.0.2:80; }
... ''')
>>> [up.pick().name for _ in range(3)]  # doctest: +SKIP
['10.0.0.1:80', '10.0.0.2:80', '10.0.0.1:80']
"""

from lbkit.balancers import Hash, IpHash, LeastConn, Random, RoundRobin, SmoothSchedule
from lbkit.balancers import LeastTime as LeastTimeMethod
from lbkit.errors import (
    ConfigError,
    DiscoveryError,
    EmptyRingError,
    InvalidAddressError,
    InvalidHostError,
    InvalidStoreArgument,
    KeyTypeError,
    LbkitError,
    NoLiveUpstreams,
    ProtocolError,
    RegexLimitError,
    RequestError,
    ResolutionError,
    SessionConflict,
    SessionDataError,
    SessionInterrupted,
    SessionLocked,
    StoreError,
    StoreUnavailable,
    TriesExhausted,
    UnknownNodeError,
    UnknownPeerError,
    UnsupportedOperation,
    UsageError,
)
from lbkit.latency import Ewma, LeastTime, PeakEwma, PowerOfTwo
from lbkit.nginx import parse_servers, parse_upstream
from lbkit.rings import (
    FLAVORS,
    BoundedLoad,
    Flavor,
    JumpHash,
    Ketama,
    Maglev,
    Move,
    Rendezvous,
    ReshardPlan,
    jump_hash,
    plan_reshard,
)
from lbkit.routing import RouteMatch, Router, ServerBlock
from lbkit.upstream import (
    AsyncAttempts,
    Attempts,
    Method,
    MethodKind,
    Peer,
    PeerState,
    Server,
    Upstream,
)

__version__ = "0.1.0"

__all__ = [
    "FLAVORS",
    "AsyncAttempts",
    "Attempts",
    "BoundedLoad",
    "ConfigError",
    "DiscoveryError",
    "EmptyRingError",
    "Ewma",
    "Flavor",
    "Hash",
    "InvalidAddressError",
    "InvalidHostError",
    "InvalidStoreArgument",
    "IpHash",
    "JumpHash",
    "Ketama",
    "KeyTypeError",
    "LbkitError",
    "LeastConn",
    "LeastTime",
    "LeastTimeMethod",
    "Maglev",
    "Method",
    "MethodKind",
    "Move",
    "NoLiveUpstreams",
    "PeakEwma",
    "Peer",
    "PeerState",
    "PowerOfTwo",
    "ProtocolError",
    "Random",
    "RegexLimitError",
    "Rendezvous",
    "RequestError",
    "ReshardPlan",
    "ResolutionError",
    "RoundRobin",
    "RouteMatch",
    "Router",
    "Server",
    "ServerBlock",
    "SessionConflict",
    "SessionDataError",
    "SessionInterrupted",
    "SessionLocked",
    "SmoothSchedule",
    "StoreError",
    "StoreUnavailable",
    "TriesExhausted",
    "UnknownNodeError",
    "UnknownPeerError",
    "UnsupportedOperation",
    "Upstream",
    "UsageError",
    "__version__",
    "jump_hash",
    "parse_servers",
    "parse_upstream",
    "plan_reshard",
]
