"""lbkit: nginx-exact load balancing, consistent hashing, routing and shared sessions.

>>> import lbkit.nginx
>>> up = lbkit.nginx.parse_upstream('''
...     upstream app { server 10.0.0.1:80 weight=2; server 10.0.0.2:80; }
... ''')
>>> [up.pick().name for _ in range(3)]  # doctest: +SKIP
['10.0.0.1:80', '10.0.0.2:80', '10.0.0.1:80']
"""

from lbkit.balancers import Hash, IpHash, LeastConn, Method, Random, RoundRobin
from lbkit.balancers.bounded import BoundedLoad
from lbkit.balancers.ketama import FLAVORS, Ketama
from lbkit.balancers.least_time import Ewma, LeastTime, PeakEwma, PowerOfTwo
from lbkit.balancers.maglev import Maglev
from lbkit.balancers.rendezvous import JumpHash, Rendezvous, jump_hash
from lbkit.balancers.schedule import SmoothSchedule
from lbkit.errors import (
    ConfigError,
    EmptyRingError,
    InvalidAddressError,
    InvalidHostError,
    LbkitError,
    NoLiveUpstreams,
    RegexLimitError,
    ResolutionError,
    SessionConflict,
    SessionDataError,
    SessionLocked,
    StoreError,
    StoreUnavailable,
    TriesExhausted,
    UnsupportedOperation,
    UsageError,
)
from lbkit.nginx.servers import parse_servers
from lbkit.peer import Peer, PeerState
from lbkit.reshard import Move, ReshardPlan, plan_reshard
from lbkit.routing import RouteMatch, Router, ServerBlock
from lbkit.server import Server
from lbkit.upstream import Upstream

__version__ = "0.1.0"

__all__ = [
    "FLAVORS",
    "BoundedLoad",
    "ConfigError",
    "EmptyRingError",
    "Ewma",
    "Hash",
    "InvalidAddressError",
    "InvalidHostError",
    "IpHash",
    "JumpHash",
    "Ketama",
    "LbkitError",
    "LeastConn",
    "LeastTime",
    "Maglev",
    "Method",
    "Move",
    "NoLiveUpstreams",
    "PeakEwma",
    "Peer",
    "PeerState",
    "PowerOfTwo",
    "Random",
    "RegexLimitError",
    "Rendezvous",
    "ReshardPlan",
    "ResolutionError",
    "RoundRobin",
    "RouteMatch",
    "Router",
    "Server",
    "ServerBlock",
    "SessionConflict",
    "SessionDataError",
    "SessionLocked",
    "SmoothSchedule",
    "StoreError",
    "StoreUnavailable",
    "TriesExhausted",
    "UnsupportedOperation",
    "Upstream",
    "UsageError",
    "__version__",
    "jump_hash",
    "parse_servers",
    "plan_reshard",
]
