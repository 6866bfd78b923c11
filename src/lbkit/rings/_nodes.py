"""What every ring and table shares: node weights, size bounds and distinct walks."""

from __future__ import annotations

from collections.abc import Collection, Hashable, Iterable, Iterator, Mapping, Sequence
from itertools import islice
from typing import TypeVar

from lbkit.errors import ConfigError, UnknownNodeError

__all__ = [
    "MAX_NODE_WEIGHT",
    "MAX_RING_POINTS",
    "check_known_node",
    "check_new_node",
    "check_ring_size",
    "check_weight",
    "node_weights",
    "take_distinct",
]

N = TypeVar("N", bound=Hashable)

#: Most points a ring may hold unless its ``max_points`` says otherwise: 160 points per
#: unit of weight makes this 6,553 units in all. A ring of this size takes about 0.6 s of
#: CPU and ~70 MB to build; ``hash $k consistent`` with ``weight=100000`` (16 million points,
#: over a minute and GBs) is refused with a ConfigError naming the bound.
MAX_RING_POINTS = 1 << 20
#: Largest weight a node of a ring or table may have (nginx's ``ngx_atoi`` bound).
MAX_NODE_WEIGHT = 2**63 - 1


def check_weight(node: object, weight: object) -> int:
    """``weight`` if it is an integer 1..MAX_NODE_WEIGHT, else a ConfigError naming ``node``."""
    if (
        isinstance(weight, bool)
        or not isinstance(weight, int)
        or not 1 <= weight <= MAX_NODE_WEIGHT
    ):
        raise ConfigError(
            f"invalid weight {weight!r} for node {node!r}: expected an integer 1..{MAX_NODE_WEIGHT}"
        )
    return weight


def check_new_node(nodes: Collection[object], node: object, where: str) -> None:
    """Refuse to add ``node`` twice: a ConfigError saying it is already ``where``."""
    if node in nodes:
        raise ConfigError(f"node {node!r} is already {where}")


def check_known_node(nodes: Collection[object], node: object, where: str) -> None:
    """Refuse to remove an unknown ``node``: an UnknownNodeError naming up to 10 known ones."""
    if node not in nodes:
        known = ", ".join(map(repr, islice(nodes, 10)))
        raise UnknownNodeError(f"node {node!r} is not {where} (nodes: {known})")


def check_ring_size(points: int, max_points: int, what: str) -> None:
    """Refuse a ring of more than ``max_points`` points with a ConfigError naming the bound."""
    if points > max_points:
        raise ConfigError(
            f"{what} would need {points:,} ring points: more than max_points={max_points:,} "
            "(lower the weights or raise max_points)"
        )


def check_max_points(max_points: object) -> int:
    """``max_points`` if it is an integer >= 1, else a ConfigError."""
    if isinstance(max_points, bool) or not isinstance(max_points, int) or max_points < 1:
        raise ConfigError(f"invalid max_points={max_points!r}: expected an integer >= 1")
    return max_points


def _weights_for(nodes: list[N], weights: Mapping[N, int] | Sequence[int] | None) -> dict[N, int]:
    if weights is None:
        return dict.fromkeys(nodes, 1)
    if isinstance(weights, Mapping):
        known = set(nodes)
        unknown = [n for n in weights if n not in known]
        if unknown:
            raise ConfigError(f"weights given for unknown nodes: {unknown[:5]!r}")
        return {n: weights.get(n, 1) for n in nodes}
    weight_list = list(weights)
    if len(weight_list) != len(nodes):
        raise ConfigError(
            f"{len(weight_list)} weights for {len(nodes)} nodes: give one weight per node"
        )
    return dict(zip(nodes, weight_list, strict=True))


def node_weights(nodes: list[N], weights: Mapping[N, int] | Sequence[int] | None) -> dict[N, int]:
    """Each node's weight, refusing duplicate nodes and weights that are not integers >= 1."""
    try:
        distinct = len(set(nodes))
    except TypeError:
        raise ConfigError("nodes must be hashable (str, int, tuple...)") from None
    if distinct != len(nodes):
        raise ConfigError("duplicate nodes: each node may appear once")
    out = _weights_for(nodes, weights)
    for node, weight in out.items():
        check_weight(node, weight)
    return out


def take_distinct(it: Iterable[N], count: int) -> Iterator[N]:
    """The first ``count`` distinct values of ``it``."""
    seen: set[N] = set()
    for node in it:
        if node not in seen:
            seen.add(node)
            yield node
            if len(seen) >= count:
                return
