"""nginx's balancing methods. Each is a frozen config object whose ``bind()`` gives the
picker an :class:`~lbkit.Upstream` drives; passive health and peer state live in the model
(:mod:`lbkit.upstream`). Also the O(1) precomputed smooth round-robin schedule.
"""

from lbkit.balancers._hash import Hash
from lbkit.balancers._ip_hash import IpHash
from lbkit.balancers._least_conn import LeastConn
from lbkit.balancers._least_time import LeastTime
from lbkit.balancers._random import Random
from lbkit.balancers._round_robin import RoundRobin
from lbkit.balancers._schedule import SmoothSchedule, smooth_wrr_cycle
from lbkit.balancers._sticky import LearnedSessions, Sticky, StickyMethod, server_id
from lbkit.upstream import set_default_method

__all__ = [
    "Hash",
    "IpHash",
    "LearnedSessions",
    "LeastConn",
    "LeastTime",
    "Random",
    "RoundRobin",
    "SmoothSchedule",
    "Sticky",
    "StickyMethod",
    "server_id",
    "smooth_wrr_cycle",
]

set_default_method(RoundRobin)
