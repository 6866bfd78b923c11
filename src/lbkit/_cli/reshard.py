"""``lbkit reshard``: which keys move between two upstream definitions or ring node lists."""

from __future__ import annotations

import argparse
import csv
from collections import Counter
from collections.abc import Sequence

import attrs

from lbkit import FLAVORS, ConfigError, Ketama, Upstream
from lbkit._cli.diagnostics import located
from lbkit._cli.sources import ConfigFile, load_upstream, read_config
from lbkit._cli.terminal import table
from lbkit.nginx import render_method
from lbkit.upstream import parse_count

__all__ = ["KeyMoves", "add_parser", "node_list", "upstream_owners"]

#: Most keys one run reads.
MAX_KEYS = 5_000_000


@attrs.frozen
class KeyMoves:
    """Where each key lives before and after."""

    keys: tuple[str, ...]
    before: tuple[str, ...]
    after: tuple[str, ...]

    def moved(self) -> list[tuple[str, str, str]]:
        """(key, old owner, new owner) of every key that changes owner."""
        return [
            (k, a, b) for k, a, b in zip(self.keys, self.before, self.after, strict=True) if a != b
        ]


def node_list(source: ConfigFile) -> tuple[list[str], list[int]]:
    """A ring's nodes from ``NODE [WEIGHT]`` lines (``#`` starts a comment)."""
    nodes: list[str] = []
    weights: list[int] = []
    with located(source.path, source.text):
        for number, raw in enumerate(source.text.splitlines(), start=1):
            words = raw.split("#", 1)[0].split()
            if not words:
                continue
            # ASCII digits of a bounded number only ("²" passes str.isdigit(), not int())
            weight = parse_count(words[1]) if len(words) == 2 else 1
            if len(words) > 2 or weight is None:
                raise ConfigError(
                    f'invalid node line "{raw.strip()}": expected NODE or NODE WEIGHT', line=number
                )
            nodes.append(words[0])
            weights.append(weight)
        if not nodes:
            raise ConfigError(f"no nodes in {source.path}: write one NODE [WEIGHT] per line")
    return nodes, weights


def upstream_owners(upstream: Upstream, keys: Sequence[str]) -> tuple[str, ...]:
    """The server each key reaches on a fresh ``upstream``: the key is the evaluated
    ``hash`` key, or for ``ip_hash`` the client address."""
    method = upstream.method
    if method.needs_key:
        argument = "key"
    elif method.needs_client_addr:
        argument = "client_addr"
    else:
        shown = render_method(method).rstrip(";") or "round robin"
        raise ConfigError(
            f'upstream "{upstream.name}" uses {shown}, '
            "which does not place keys: reshard needs hash KEY [consistent] or ip_hash"
        )
    owners = []
    for key in keys:
        peer = upstream.pick(**{argument: key})
        upstream.done(peer)
        owners.append(peer.name)
    return tuple(owners)


def _is_nginx(source: ConfigFile) -> bool:
    return "{" in source.text


def _moves(old: ConfigFile, new: ConfigFile, keys: list[str], args: argparse.Namespace) -> KeyMoves:
    if _is_nginx(old) != _is_nginx(new):
        raise ValueError(
            "OLD and NEW must both be nginx upstream blocks or both be node lists "
            f"({old.path} is {'nginx' if _is_nginx(old) else 'a node list'}, "
            f"{new.path} is {'nginx' if _is_nginx(new) else 'a node list'})"
        )
    if _is_nginx(old):
        before = upstream_owners(load_upstream(old, args.upstream), keys)
        after = upstream_owners(load_upstream(new, args.upstream), keys)
        return KeyMoves(tuple(keys), before, after)
    old_nodes, old_weights = node_list(old)
    new_nodes, new_weights = node_list(new)
    old_ring = Ketama(old_nodes, old_weights, flavor=args.flavor)
    new_ring = Ketama(new_nodes, new_weights, flavor=args.flavor)
    return KeyMoves(
        tuple(keys), tuple(old_ring.lookup_many(keys)), tuple(new_ring.lookup_many(keys))
    )


def _read_keys(path: str) -> list[str]:
    source = read_config(path)
    keys = [line for line in source.text.splitlines() if line]
    if len(keys) > MAX_KEYS:
        raise ValueError(f"{path} has {len(keys)} keys: at most {MAX_KEYS}")
    if not keys:
        raise ValueError(f"no keys in {path}: write one key per line")
    return keys


def summary(moves: KeyMoves) -> str:
    """The report: keys moved, keys per node before and after, and the routes they take."""
    moved = moves.moved()
    total = len(moves.keys)
    lines = [f"{len(moved)} of {total} keys move ({len(moved) / total:.1%})", ""]
    before, after = Counter(moves.before), Counter(moves.after)
    nodes = list(dict.fromkeys([*moves.before, *moves.after]))
    lines.append(
        table(
            ["node", "keys before", "keys after", "change"],
            [[n, before[n], after[n], f"{after[n] - before[n]:+d}"] for n in sorted(nodes)],
        )
    )
    routes = Counter((a, b) for _, a, b in moved)
    if routes:
        lines.append("")
        lines.append(
            table(
                ["from", "to", "keys"],
                [[a, b, n] for (a, b), n in sorted(routes.items(), key=lambda r: (-r[1], r[0]))],
            )
        )
    return "\n".join(lines)


def _run(args: argparse.Namespace) -> int:
    old, new = read_config(args.old), read_config(args.new)
    keys = _read_keys(args.keys)
    moves = _moves(old, new, keys, args)
    print(summary(moves))
    if args.csv:
        with open(args.csv, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["key", "old", "new"])
            writer.writerows(moves.moved())
        print(f"\nmoved keys written to {args.csv}")
    return 0


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``lbkit reshard``."""
    p = sub.add_parser(
        "reshard",
        help="which keys move between two upstreams or ring node lists",
        description="Compare two nginx upstream blocks (hash KEY [consistent], ip_hash) or two "
        "ring node lists (NODE [WEIGHT] per line) and report which keys change owner.",
    )
    p.add_argument("old", help="the current upstream file or node list")
    p.add_argument("new", help="the planned upstream file or node list")
    p.add_argument("--keys", required=True, help="file with one key per line ('-' for stdin)")
    p.add_argument("--upstream", help="which upstream, when the files have several")
    p.add_argument("--flavor", choices=FLAVORS, default="nginx", help="ring flavour for node lists")
    p.add_argument("--csv", metavar="OUT.csv", help="write every moved key as key,old,new")
    p.set_defaults(func=_run)
