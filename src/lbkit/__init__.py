"""lbkit: nginx-exact load balancing, consistent hashing, routing and shared sessions.

>>> import lbkit.nginx
>>> up = lbkit.nginx.parse_upstream('''
...     upstream app { server 10.0.0.1:80 weight=2; server 10.0.0.2:80; }
... ''')
>>> [up.pick().name for _ in range(3)]  # doctest: +SKIP
['10.0.0.1:80', '10.0.0.2:80', '10.0.0.1:80']
"""

from lbkit.balancers import Hash, IpHash, LeastConn, Method, Random, RoundRobin
from lbkit.errors import (
    ConfigError,
    InvalidAddressError,
    LbkitError,
    NoLiveUpstreams,
    TriesExhausted,
    UsageError,
)
from lbkit.peer import Peer, PeerState
from lbkit.server import Server
from lbkit.upstream import Upstream

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "Hash",
    "InvalidAddressError",
    "IpHash",
    "LbkitError",
    "LeastConn",
    "Method",
    "NoLiveUpstreams",
    "Peer",
    "PeerState",
    "Random",
    "RoundRobin",
    "Server",
    "TriesExhausted",
    "Upstream",
    "UsageError",
    "__version__",
]
