"""Balancing methods. Each is a frozen config object whose ``bind()`` returns its picker."""

from lbkit.balancers.base import Method, Picker
from lbkit.balancers.hash import Hash
from lbkit.balancers.ip_hash import IpHash
from lbkit.balancers.least_conn import LeastConn
from lbkit.balancers.random import Random
from lbkit.balancers.round_robin import RoundRobin

__all__ = ["Hash", "IpHash", "LeastConn", "Method", "Picker", "Random", "RoundRobin"]
