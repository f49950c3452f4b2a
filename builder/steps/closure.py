"""Closure graph in, ordered store-path layers out.

The graph is what Nix's ``exportReferencesGraph`` gives: a list of
``{path, references, narHash, narSize, ...}``. Popularity follows the classic
rule (graham's "Nix and layered docker images"): every path's own subtree is
flattened and a path is as popular as the number of times it appears in all
of them, that is the number of reference chains, starting at any path, that
end at it. A dependency is thus always more popular than what depends on it,
so it lands in a lower layer. Counting is one pass over the graph in
topological order, linear in its size.
"""

from __future__ import annotations

from collections import Counter
from itertools import chain
from typing import Dict, Iterable, List, Sequence

from builder.errors import BuildError

__all__ = ["Graph", "chain_counts", "plan_layers", "popularity_order", "split_layers"]


class Graph:
    def __init__(self, nodes: Iterable[dict]):
        self.refs: Dict[str, List[str]] = {}
        self.info: Dict[str, dict] = {}
        refs, info = self.refs, self.info
        for node in nodes:
            path = node["path"]
            # Self-references are common in Nix and say nothing about layering.
            rs = set(node.get("references", ()))
            rs.discard(path)
            refs[path] = sorted(rs)
            info[path] = node
        if not set().union(*refs.values()).issubset(refs.keys()):
            for path, targets in refs.items():
                for r in targets:
                    if r not in refs:
                        raise BuildError(f"closure graph: {path} refers to {r}, which is not in the graph")

    def without(self, drop: Iterable[str]) -> Graph:
        drop = set(drop)
        g = Graph.__new__(Graph)
        g.refs = {p: [r for r in rs if r not in drop] for p, rs in self.refs.items() if p not in drop}
        g.info = {p: i for p, i in self.info.items() if p not in drop}
        return g

    def roots(self) -> List[str]:
        referenced = {r for rs in self.refs.values() for r in rs}
        return sorted(p for p in self.refs if p not in referenced)

    def topological(self) -> List[str]:
        """Parents before children; ties broken by path for stable output."""
        indegree = {p: 0 for p in self.refs}
        for rs in self.refs.values():
            for r in rs:
                indegree[r] += 1
        ready = sorted((p for p, d in indegree.items() if d == 0), reverse=True)
        order = []
        while ready:
            p = ready.pop()
            order.append(p)
            for r in self.refs[p]:
                indegree[r] -= 1
                if indegree[r] == 0:
                    ready.append(r)
        if len(order) != len(self.refs):
            # Store closures are acyclic apart from self-references; a cycle
            # means the graph did not come from Nix.
            raise BuildError("closure graph has a cycle")
        return order


# Chain counts grow exponentially with depth in a graph of diamonds; exact
# counts would then cost memory proportional to paths times depth. Counts
# saturate here instead: below 2^1024 (far beyond any real closure; a
# 50,000-path NixOS-like graph stays under 2^120) the order is exactly that of
# the exact counts. Paths at or above it tie, ties go by path name, and only
# there can a dependency come after a path that depends on it.
_CHAIN_CAP = (1 << 1024) - 1


def chain_counts(graph: Graph) -> Dict[str, int]:
    """For each path, the reference chains that end at it, starting at any
    path (itself included): one plus the counts of the paths referring to it.
    Saturates at ``_CHAIN_CAP``. One pass in topological order."""
    refs = graph.refs
    indegree = dict.fromkeys(refs, 0)
    indegree.update(Counter(chain.from_iterable(refs.values())))
    chains = dict.fromkeys(refs, 1)
    ready = [p for p, d in indegree.items() if not d]
    cap = _CHAIN_CAP
    done = 0
    while ready:
        p = ready.pop()
        done += 1
        c = chains[p]
        if c > cap:
            # Every parent has added its share by now: saturate once.
            c = chains[p] = cap
        for r in refs[p]:
            chains[r] += c
            d = indegree[r] - 1
            indegree[r] = d
            if not d:
                ready.append(r)
    if done != len(refs):
        # Store closures are acyclic apart from self-references; a cycle
        # means the graph did not come from Nix.
        raise BuildError("closure graph has a cycle")
    return chains


def popularity_order(graph: Graph) -> List[str]:
    """Every path, most popular first; ties by path name (stable across builds)."""
    chains = chain_counts(graph)
    order = sorted(chains)
    # Stable, and reverse keeps equal keys in their (path) order.
    order.sort(key=chains.__getitem__, reverse=True)
    return order


def split_layers(ordered: Sequence[str], budget: int) -> List[List[str]]:
    """One layer per path while the budget lasts; the rest in one bulk layer."""
    if budget < 1:
        raise BuildError("no layer left for the store paths")
    if len(ordered) <= budget:
        return [[p] for p in ordered]
    return [[p] for p in ordered[: budget - 1]] + [sorted(ordered[budget - 1 :])]


def plan_layers(graph: Graph, budget: int) -> List[List[str]]:
    if not graph.refs:
        return []
    return split_layers(popularity_order(graph), budget)
