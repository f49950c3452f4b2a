"""Store paths in popularity order, and layers cut from it.

Graphs are drawn with the referring path above the path it refers to. A
path's popularity is the number of reference chains that end at it, starting
at any path (itself included): 1 + the popularity of every path that refers
to it. Most popular first; ties by path name.
"""

from __future__ import annotations

import random
import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from builder.errors import BuildError
from builder.steps import closure
from builder.steps.closure import Graph, plan_layers, popularity_order, split_layers


def P(name: str) -> str:
    return "/nix/store/" + name


def graph(edges: dict) -> Graph:
    """{name: [names it refers to]} -> Graph (paths under /nix/store)."""
    return Graph([{"path": P(n), "references": [P(r) for r in refs]} for n, refs in edges.items()])


def names(order):
    return [p.rsplit("/", 1)[1] for p in order]


# --- small graphs, exact order ------------------------------------------------


def test_chain():
    #   c        c: 1
    #   |
    #   b        b: 1 + c = 2
    #   |
    #   a        a: 1 + b = 3
    g = graph({"c": ["b"], "b": ["a"], "a": []})
    assert names(popularity_order(g)) == ["a", "b", "c"]


def test_diamond():
    #       top              top: 1
    #      /   \
    #   left   right         left: 2, right: 2 (a tie: by name)
    #      \   /
    #      glibc             glibc: 1 + 2 + 2 = 5
    g = graph({"top": ["left", "right"], "left": ["glibc"], "right": ["glibc"], "glibc": []})
    assert names(popularity_order(g)) == ["glibc", "left", "right", "top"]


def test_popular_leaf_beats_names_and_depth():
    #   z-app   y-app   x-app        three roots: 1 each
    #     |  \    |     /
    #     |   \   |    /
    #   m-lib  \  |   /              m-lib: 1 + z-app = 2
    #      \    \ |  /
    #       +--- a-glibc             a-glibc: 1 + m-lib + z + y + x = 6
    g = graph(
        {"z-app": ["m-lib", "a-glibc"], "y-app": ["a-glibc"], "x-app": ["a-glibc"], "m-lib": ["a-glibc"], "a-glibc": []}
    )
    assert names(popularity_order(g)) == ["a-glibc", "m-lib", "x-app", "y-app", "z-app"]


def test_two_roots_share_a_chain():
    #   r1     r2          r1, r2: 1
    #    \    /
    #     lib2             lib2: 3
    #      |
    #     lib1             lib1: 4
    #      |      \
    #     base   lonely    base: 5, lonely: 5 -> tie by name
    g = graph({"r1": ["lib2"], "r2": ["lib2"], "lib2": ["lib1"], "lib1": ["base", "lonely"], "base": [], "lonely": []})
    assert names(popularity_order(g)) == ["base", "lonely", "lib1", "lib2", "r1", "r2"]


def test_self_references_and_duplicates_ignored():
    #   app -> app (self), app -> lib twice
    #    |
    #   lib          lib: 2
    g = Graph(
        [{"path": P("app"), "references": [P("app"), P("lib"), P("lib")]}, {"path": P("lib"), "references": [P("lib")]}]
    )
    assert g.refs == {P("app"): [P("lib")], P("lib"): []}
    assert names(popularity_order(g)) == ["lib", "app"]


def test_unrelated_paths_tie_by_name():
    g = graph({"c": [], "a": [], "b": []})
    assert names(popularity_order(g)) == ["a", "b", "c"]


def test_counts():
    #   top -> mid -> leaf, top -> leaf
    #   top: 1, mid: 2, leaf: 1 + top + mid = 4
    g = graph({"top": ["mid", "leaf"], "mid": ["leaf"], "leaf": []})
    assert closure.chain_counts(g) == {P("top"): 1, P("mid"): 2, P("leaf"): 4}


def test_cycle_rejected():
    #   a -> b -> a
    with pytest.raises(BuildError, match="cycle"):
        popularity_order(graph({"a": ["b"], "b": ["a"]}))


def test_missing_reference_rejected():
    with pytest.raises(BuildError, match="refers to /nix/store/gone, which is not in the graph"):
        graph({"a": ["gone"]})


def test_without():
    g = graph({"top": ["mid"], "mid": ["leaf"], "leaf": []}).without([P("mid")])
    assert g.refs == {P("top"): [], P("leaf"): []}
    assert names(popularity_order(g)) == ["leaf", "top"]


def test_roots_and_topological_unchanged():
    g = graph({"top": ["left", "right"], "left": ["glibc"], "right": ["glibc"], "glibc": [], "solo": []})
    assert names(g.roots()) == ["solo", "top"]
    assert names(g.topological()) == ["solo", "top", "right", "left", "glibc"]


# --- layers -------------------------------------------------------------------

ORDERED = [P(n) for n in ("e", "d", "c", "b", "a")]


def test_budget_one_is_one_bulk_layer():
    assert split_layers(ORDERED, 1) == [sorted(ORDERED)]


def test_budget_at_least_paths_is_one_layer_each():
    for budget in (5, 6, 100):
        assert split_layers(ORDERED, budget) == [[p] for p in ORDERED]


def test_budget_one_short():
    assert split_layers(ORDERED, 4) == [[P("e")], [P("d")], [P("c")], [P("a"), P("b")]]


def test_budget_zero_rejected():
    with pytest.raises(BuildError):
        split_layers(ORDERED, 0)


def test_empty_graph_plans_nothing():
    assert plan_layers(Graph([]), 5) == []
    assert popularity_order(Graph([])) == []


# --- against brute force --------------------------------------------------------


def brute_force_counts(refs: dict) -> dict:
    """Walk every chain from every start: the definition, literally."""
    counts = {p: 0 for p in refs}

    def walk(p):
        counts[p] += 1
        for r in refs[p]:
            walk(r)

    for p in refs:
        walk(p)
    return counts


@st.composite
def dags(draw, max_nodes=9):
    n = draw(st.integers(min_value=0, max_value=max_nodes))
    # Few distinct letters so that ties happen; the index keeps names unique.
    labels = draw(st.lists(st.sampled_from("abc"), min_size=n, max_size=n))
    node_names = [f"{lbl}{i}" for i, lbl in enumerate(labels)]
    perm = draw(st.permutations(range(n)))
    edges = {}
    for i in range(n):
        # Edges only to later nodes of a hidden order: acyclic.
        later = [perm[j] for j in range(i + 1, n)]
        targets = draw(st.lists(st.sampled_from(later), unique=True)) if later else []
        edges[node_names[perm[i]]] = [node_names[t] for t in targets]
    return edges


@settings(max_examples=300, deadline=None)
@given(dags())
def test_matches_brute_force(edges):
    g = graph(edges)
    counts = brute_force_counts(g.refs)
    assert closure.chain_counts(g) == counts
    assert popularity_order(g) == sorted(g.refs, key=lambda p: (-counts[p], p))
    # A dependency always comes before what depends on it.
    pos = {p: i for i, p in enumerate(popularity_order(g))}
    for p, rs in g.refs.items():
        for r in rs:
            assert pos[r] < pos[p]


@settings(max_examples=300, deadline=None)
@given(dags(), st.integers(min_value=1, max_value=12))
def test_layers_keep_every_path_once(edges, budget):
    g = graph(edges)
    layers = plan_layers(g, budget)
    flat = [p for layer in layers for p in layer]
    assert sorted(flat) == sorted(g.refs)  # none lost, none twice
    assert len(layers) <= budget
    assert all(layers)  # no empty layer
    order = popularity_order(g)
    if len(order) > budget:
        assert layers[:-1] == [[p] for p in order[: budget - 1]]
        assert layers[-1] == sorted(order[budget - 1 :])
    else:
        assert layers == [[p] for p in order]


# --- big graphs: time and memory ------------------------------------------------


def synthetic(n: int, seed: int = 3):
    """A NixOS-like closure: a few leaves nearly everything uses (glibc ...),
    a layered body, long chains, and wide roots."""
    rng = random.Random(seed)
    paths = [P("%032x-p%d" % (rng.getrandbits(128), i)) for i in range(n)]
    hot = paths[:8]
    refs = {p: [] for p in paths}
    for i in range(1, 8):
        refs[hot[i]] = [hot[0]]
    chain_start = n - n // 10 - 20
    for i in range(8, chain_start):
        r = {hot[0]} if rng.random() < 0.95 else set()
        r.update(h for h in hot[1:] if rng.random() < 0.15)
        for _ in range(min(int(rng.expovariate(0.25)) + 1, 60)):
            r.add(paths[max(8, i - 1 - int(rng.expovariate(1 / 300)))] if i > 8 else hot[0])
        refs[paths[i]] = list(r)
    for i in range(chain_start, n - 20):  # long chains of wrappers
        prev = paths[i - 1] if (i - chain_start) % 500 else paths[rng.randrange(8, chain_start)]
        refs[paths[i]] = [prev, hot[0], paths[rng.randrange(8, chain_start)]]
    for i in range(n - 20, n):  # wide roots
        refs[paths[i]] = rng.sample(paths[: n - 20], 5000 if i == n - 1 else rng.randint(50, 2000))
    nodes = [{"path": p, "references": refs[p] + [p]} for p in paths]
    rng.shuffle(nodes)
    return nodes


def test_50k_paths_are_all_layered():
    # How fast is measured by bench/bench.py (figure "layering"), not here.
    g = Graph(synthetic(50_000))
    order = popularity_order(g)
    layers = split_layers(order, 99)
    assert len(order) == 50_000 and sum(map(len, layers)) == 50_000
    # The leaves everyone uses come first.
    assert g.refs[order[0]] == []


def _peak(fn):
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def ladder(levels: int) -> Graph:
    """Diamonds on diamonds: chain counts double at every level.

    0a   0b
    | \\ / |
    |  X  |
    | / \\ |
    1a   1b
     ...
    """
    nodes = []
    for i in range(levels):
        nxt = [P("%06d-a" % (i + 1)), P("%06d-b" % (i + 1))] if i + 1 < levels else []
        nodes.append({"path": P("%06d-a" % i), "references": nxt})
        nodes.append({"path": P("%06d-b" % i), "references": nxt})
    return Graph(nodes)


def test_memory_linear_even_when_counts_explode():
    small, big = ladder(5_000), ladder(10_000)
    a = _peak(lambda: popularity_order(small))
    b = _peak(lambda: popularity_order(big))
    assert b < 2.6 * a, (a, b)
    assert b < 40e6


def test_saturation_keeps_order_below_the_cap_and_ties_above():
    levels = 1200
    g = ladder(levels)
    counts = closure.chain_counts(g)
    order = popularity_order(g)
    assert len(order) == 2 * levels
    # Exact while small: level k has 2^(k+1) - 1 chains.
    for k in range(0, 1000):
        assert counts[P("%06d-a" % k)] == 2 ** (k + 1) - 1
    saturated = [p for p in order if counts[p] == closure._CHAIN_CAP]
    assert saturated and saturated == sorted(saturated)
    assert order[: len(saturated)] == saturated
    rest = order[len(saturated) :]
    assert [counts[p] for p in rest] == sorted((counts[p] for p in rest), reverse=True)
