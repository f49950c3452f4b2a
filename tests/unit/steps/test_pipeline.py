"""layeringPipeline, step by step, on the graph nixpkgs' own tests use."""

from __future__ import annotations

import json
import random

import pytest

from builder.errors import BuildError
from builder.steps import closure, pipeline
from builder.steps.pipeline import PipelineGraph, load_pipeline, run_pipeline

# nixpkgs' flatten-references-graph test graph.
EDGES = [
    ("Root1", "A"),
    ("A", "B"),
    ("A", "C"),
    ("B", "D"),
    ("B", "E"),
    ("E", "F"),
    ("B", "G"),
    ("Root2", "B"),
    ("Root3", "C"),
]


def graph(edges=EDGES, sizes=None) -> closure.Graph:
    names = sorted({n for e in edges for n in e})
    refs = {n: [] for n in names}
    for a, b in edges:
        refs[a].append(b)
    return closure.Graph({"path": n, "references": refs[n] + [n], "narSize": (sizes or {}).get(n, 0)} for n in names)


def pg(edges=EDGES, sizes=None) -> PipelineGraph:
    return PipelineGraph.of(graph(edges, sizes))


def names(value):
    if isinstance(value, PipelineGraph):
        return sorted(value.order)
    if isinstance(value, dict):
        return {k: names(v) for k, v in value.items()}
    return [names(v) for v in value]


def test_graph_order_is_by_nar_size_then_path():
    g = pg(sizes={"G": 1, "A": 5, "Root1": 3})
    assert g.order[-3:] == ["G", "Root1", "A"]
    assert g.order[:3] == ["B", "C", "D"]


def test_subcomponent_out_and_in():
    assert names(pipeline.subcomponent("out", ["B"], pg())) == {
        "main": ["B", "D", "E", "F", "G"],
        "rest": ["A", "C", "Root1", "Root2", "Root3"],
    }
    assert names(pipeline.subcomponent("in", ["B"], pg())) == {
        "main": ["A", "B", "Root1", "Root2"],
        "rest": ["C", "D", "E", "F", "G", "Root3"],
    }
    # Paths not in the graph are ignored.
    assert names(pipeline.subcomponent("out", ["nope"], pg()))["main"] == []


def test_split_paths_main_and_rest():
    assert names(pipeline.split_paths(["B"], pg())) == {
        "main": ["B", "D", "E", "F", "G"],
        "rest": ["A", "C", "Root1", "Root2", "Root3"],
    }


def test_split_paths_common_dependencies():
    # D also refers to F: F is reached from the rest without E.
    got = names(pipeline.split_paths(["E"], pg(EDGES + [("D", "F")])))
    assert got == {
        "main": ["E"],
        "common": ["F"],
        "rest": ["A", "B", "C", "D", "G", "Root1", "Root2", "Root3"],
    }
    assert list(pipeline.split_paths(["E"], pg(EDGES + [("D", "F")]))) == ["main", "common", "rest"]


def test_split_paths_children_of():
    # The children of A are B and C.
    # Edges into split paths are cut: Root3 -> C does not make C common.
    got = names(pipeline.split_paths([{"children_of": "A"}], pg()))
    assert got == {"main": ["B", "C", "D", "E", "F", "G"], "rest": ["A", "Root1", "Root2", "Root3"]}


def test_split_paths_nothing_matching_or_the_only_root():
    assert names(pipeline.split_paths(["nope"], pg())) == {"rest": sorted(pg().order)}
    single = [("R", "X"), ("X", "Y")]
    assert names(pipeline.split_paths(["R"], pg(single))) == {"main": ["R", "X", "Y"]}


def test_popularity_contest_is_the_default_order():
    g = graph()
    got = [layer.order for layer in pipeline.popularity_contest(PipelineGraph.of(g))]
    assert got == [[p] for p in closure.popularity_order(g)]
    # A dependency always before what depends on it.
    position = {p[0]: i for i, p in enumerate(got)}
    for a, b in EDGES:
        assert position[b] < position[a]


@pytest.mark.parametrize("budget", [1, 2, 5, 9, 10, 50])
def test_the_default_pipeline_equals_the_layering_without_one(budget):
    rng = random.Random(budget)
    nodes = [f"/nix/store/{i:02d}-p" for i in range(30)]
    edges = [(nodes[i], nodes[j]) for i in range(30) for j in range(i + 1, 30) if rng.random() < 0.15]
    g = graph(edges + [(n, n) for n in nodes])
    assert run_pipeline([["popularity_contest"], ["limit_layers", budget]], g) == closure.plan_layers(g, budget)


def test_limit_layers_and_split_every():
    g = pg()
    layers = pipeline.popularity_contest(g)
    limited = pipeline.limit_layers(3, layers)
    assert len(limited) == 3 and [len(x) for x in limited] == [1, 1, len(g) - 2]
    assert pipeline.limit_layers(20, layers) == layers
    chunks = pipeline.split_every(4, g)
    assert [c.order for c in chunks] == [g.order[0:4], g.order[4:8], g.order[8:]]


def test_remove_paths_flatten_reverse():
    assert names(pipeline.remove_paths(["B", "nope"], pg())) == [
        "A",
        "C",
        "D",
        "E",
        "F",
        "G",
        "Root1",
        "Root2",
        "Root3",
    ]
    x, y = PipelineGraph(["x"], {"x": []}), PipelineGraph(["y"], {"y": []})
    assert list(pipeline.flatten({"main": [x, {"a": y}], "rest": x})) == [x, y, x]


def test_a_whole_pipeline():
    # B's subtree in its own layers by popularity, the rest in one layer, reversed.
    got = run_pipeline(
        [
            ["split_paths", ["B"]],
            ["over", "main", ["pipe", [["popularity_contest"], ["limit_layers", 2]]]],
            ["over", "rest", ["remove_paths", "Root3"]],
            ["over", "absent", ["popularity_contest"]],
            ["flatten"],
            ["reverse"],
        ],
        graph(),
    )
    # In B's subtree F is the most popular (B->E->F); D, E, G tie; B last.
    assert got == [["A", "C", "Root1", "Root2"], ["B", "D", "E", "G"], ["F"]]
    # map applies a step to every element.
    mapped = run_pipeline([["subcomponent_out", "E"], ["flatten"], ["map", ["split_every", 1]]], graph())
    assert mapped == [[p] for p in pg().order if p in {"E", "F"}] + [[p] for p in pg().order if p not in {"E", "F"}]


def test_empty_parts_are_dropped_and_the_result_is_sorted():
    got = run_pipeline([["subcomponent_out", ["nope"]]], graph())
    assert got == [sorted(graph().refs)]


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"a": 1}, "must be a list of steps"),
        ([["nope"]], 'step 1: unknown step "nope"'),
        ([["limit_layers"]], r"step 1 \(limit_layers\): takes 1 argument, got 0"),
        ([["limit_layers", 0]], r"limit_layers\): expects an integer of at least 1"),
        ([["split_paths", ["B"]], ["popularity_contest"]], r"step 2 \(popularity_contest\): takes a graph, got a set"),
        ([["popularity_contest"], ["over", "main", ["flatten"]]], r"step 2 \(over\): takes a set of graphs"),
        ([["over", "main", ["frobnicate"]]], r'step 1 \(over\) step: unknown step "frobnicate"'),
        ([["subcomponent_out", 3]], "expects a store path or a list of store paths"),
        ([["split_paths", [{"parent_of": "A"}]]], "children_of"),
        ([["popularity_contest"], ["map", ["split_every", 1]], ["limit_layers", 1]], "can merge graphs only"),
        ("popularity_contest", "must be a list of steps"),
    ],
)
def test_mistakes_name_the_step(bad, message):
    with pytest.raises(BuildError, match="layeringPipeline: .*" + message):
        run_pipeline(bad, graph())


def test_load_pipeline_from_a_file(tmp_path):
    p = tmp_path / "pipeline.json"
    p.write_text(json.dumps([["popularity_contest"]]))
    assert load_pipeline(str(p)) == [["popularity_contest"]]
    assert load_pipeline([["flatten"]]) == [["flatten"]]
    (tmp_path / "bad.json").write_text("[")
    with pytest.raises(BuildError, match="layeringPipeline: .*bad.json is not JSON"):
        load_pipeline(str(tmp_path / "bad.json"))
    with pytest.raises(BuildError, match="layeringPipeline: cannot read .*missing"):
        load_pipeline(str(tmp_path / "missing"))
