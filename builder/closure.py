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

from typing import Dict, Iterable, List, Sequence

from .errors import BuildError

__all__ = ["Graph", "popularity_order", "split_layers", "plan_layers"]


class Graph:
    def __init__(self, nodes: Iterable[dict]):
        self.refs: Dict[str, List[str]] = {}
        self.info: Dict[str, dict] = {}
        for node in nodes:
            path = node["path"]
            # Self-references are common in Nix and say nothing about layering.
            self.refs[path] = sorted({r for r in node.get("references", ()) if r != path})
            self.info[path] = node
        for path, refs in self.refs.items():
            for r in refs:
                if r not in self.refs:
                    raise BuildError(f"closure graph: {path} refers to {r}, which is not in the graph")

    def without(self, drop: Iterable[str]) -> "Graph":
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


def popularity_order(graph: Graph) -> List[str]:
    """Every path, most popular first; ties by path name (stable across builds)."""
    # Every path starts one chain: itself.
    chains: Dict[str, int] = {p: 1 for p in graph.refs}
    for p in graph.topological():
        c = chains[p]
        for r in graph.refs[p]:
            chains[r] += c
    return sorted(chains, key=lambda p: (-chains[p], p))


def split_layers(ordered: Sequence[str], budget: int) -> List[List[str]]:
    """One layer per path while the budget lasts; the rest in one bulk layer."""
    if budget < 1:
        raise BuildError("no layer left for the store paths")
    if len(ordered) <= budget:
        return [[p] for p in ordered]
    return [[p] for p in ordered[: budget - 1]] + [sorted(ordered[budget - 1:])]


def plan_layers(graph: Graph, budget: int) -> List[List[str]]:
    if not graph.refs:
        return []
    return split_layers(popularity_order(graph), budget)
