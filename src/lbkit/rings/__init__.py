"""Node structures that map keys to nodes, apart from any upstream: consistent-hash rings
(ketama in three flavours, nginx's among them), Maglev tables, rendezvous and jump hashing,
bounded loads, and resharding plans.

Every structure here is safe to look up from many threads while one thread changes its
membership: a change builds new tables and swaps one reference.
"""

from lbkit.rings._bounded import BoundedLoad
from lbkit.rings._jump import JumpHash, jump_hash
from lbkit.rings._ketama import (
    FLAVORS,
    POINTS_PER_WEIGHT,
    Flavor,
    Ketama,
    nginx_points,
    nginx_ring,
    split_address,
)
from lbkit.rings._maglev import DEFAULT_TABLE_SIZE, MAX_TABLE_SIZE, Maglev
from lbkit.rings._nodes import MAX_NODE_WEIGHT, MAX_RING_POINTS, node_weights
from lbkit.rings._rendezvous import Rendezvous
from lbkit.rings._reshard import Move, ReshardPlan, plan_reshard

__all__ = [
    "DEFAULT_TABLE_SIZE",
    "FLAVORS",
    "MAX_NODE_WEIGHT",
    "MAX_RING_POINTS",
    "MAX_TABLE_SIZE",
    "POINTS_PER_WEIGHT",
    "BoundedLoad",
    "Flavor",
    "JumpHash",
    "Ketama",
    "Maglev",
    "Move",
    "Rendezvous",
    "ReshardPlan",
    "jump_hash",
    "nginx_points",
    "nginx_ring",
    "node_weights",
    "plan_reshard",
    "split_address",
]
