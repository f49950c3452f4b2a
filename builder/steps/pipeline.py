"""``layeringPipeline``: nixpkgs' language for splitting a closure into layers.

A pipeline is a list of steps, each a list ``[NAME, ARG...]``, applied in
turn to the closure graph (the store paths of the image, with their
references). A value between steps is a graph, a list of values, or a
dict of named values (what ``split_paths`` and ``subcomponent_*`` return).
At the end everything is flattened, in order, into layers: the first graph
is the lowest layer. The steps, as nixpkgs' flatten-references-graph has them:

- ``["popularity_contest"]``: graph -> one single-path graph per path, most
  popular first (the same order as the layering without a pipeline,
  ``closure.popularity_order``: a dependency before what depends on it).
- ``["limit_layers", N]``: list -> at most N elements; the N-th and the
  ones after it merged into one.
- ``["split_every", N]``: graph -> graphs of N paths each, in graph order.
- ``["subcomponent_out", PATHS]``: graph -> ``{main, rest}``: main holds
  PATHS and everything they refer to, transitively; rest the others.
- ``["subcomponent_in", PATHS]``: likewise, main holding PATHS and
  everything that refers to them.
- ``["split_paths", PATHS]``: graph -> ``{main, common, rest}``: main is
  PATHS with the dependencies only they reach, rest what the other roots
  reach without going through PATHS, common what both reach. An element of
  PATHS may be ``{"children_of": PATH or PATHS}``: the paths those refer
  to. Empty parts are left out; no PATHS in the graph gives ``{rest}``.
- ``["remove_paths", PATHS]``: graph -> the graph without PATHS (they are
  not in the image at all).
- ``["over", KEY, STEP]``: dict -> the dict with STEP applied to its KEY
  (left as it is when it has no KEY: a part ``split_paths`` left out).
- ``["map", STEP]``: list -> STEP applied to every element.
- ``["pipe", PIPELINE]``: the steps of PIPELINE applied in turn.
- ``["flatten"]``: nested lists and dicts -> one list of graphs.
- ``["reverse"]``: list -> reversed.

PATHS is a store path or a list of them; paths not in the graph are
ignored. A graph's own order is by NAR size, smallest first, then by path.
Everything here is pure: graphs in, graphs out.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Set

from builder.errors import BuildError
from builder.steps import closure

__all__ = ["PipelineGraph", "load_pipeline", "run_pipeline"]


class PipelineGraph:
    """Store paths in order, with their references among themselves."""

    __slots__ = ("order", "refs")

    def __init__(self, order: List[str], refs: Dict[str, List[str]]):
        self.order = order
        self.refs = refs

    @classmethod
    def of(cls, graph: closure.Graph) -> PipelineGraph:
        def size(p: str) -> int:
            n = graph.info.get(p, {}).get("narSize", 0)
            return n if isinstance(n, int) else 0

        order = sorted(graph.refs, key=lambda p: (size(p), p))
        return cls(order, {p: list(graph.refs[p]) for p in order})

    def induced(self, keep: Set[str]) -> PipelineGraph:
        order = [p for p in self.order if p in keep]
        return PipelineGraph(order, {p: [r for r in self.refs[p] if r in keep] for p in order})

    def without(self, drop: Set[str]) -> PipelineGraph:
        return self.induced(set(self.order) - drop)

    def reach(self, starts: Iterable[str], mode: str) -> Set[str]:
        """``starts`` and every path reached from them following references
        (``out``) or references backwards (``in``)."""
        edges = self.refs if mode == "out" else self._referrers()
        seen: Set[str] = set()
        todo = [p for p in starts if p in self.refs]
        while todo:
            p = todo.pop()
            if p in seen:
                continue
            seen.add(p)
            todo.extend(edges[p])
        return seen

    def _referrers(self) -> Dict[str, List[str]]:
        back: Dict[str, List[str]] = {p: [] for p in self.order}
        for p in self.order:
            for r in self.refs[p]:
                back[r].append(p)
        return back

    def __len__(self) -> int:
        return len(self.order)

    def __repr__(self) -> str:
        return f"PipelineGraph({self.order!r})"


Step = Callable[[Any], Any]


class _Where:
    """Where in the pipeline a step is, for messages: ``step 2 (over)``."""

    def __init__(self, trail: str):
        self.trail = trail

    def fail(self, message: str) -> BuildError:
        return BuildError(f"layeringPipeline: {self.trail}: {message}")


def _describe(value: Any) -> str:
    if isinstance(value, PipelineGraph):
        return "a graph"
    if isinstance(value, dict):
        return f"a set of graphs ({', '.join(value) or 'empty'})"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


def _paths_arg(where: _Where, value: Any) -> List[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(p, str) for p in value):
        return list(value)
    raise where.fail(f"expects a store path or a list of store paths, got {json.dumps(value)[:80]}")


def _int_arg(where: _Where, value: Any, least: int) -> int:
    if type(value) is not int or value < least:
        raise where.fail(f"expects an integer of at least {least}, got {json.dumps(value)[:80]}")
    return value


def _graph_in(where: _Where, value: Any) -> PipelineGraph:
    if not isinstance(value, PipelineGraph):
        hint = " (use over KEY or flatten first)" if isinstance(value, dict) else " (use map)"
        raise where.fail(f"takes a graph, got {_describe(value)}{hint}")
    return value


def _list_in(where: _Where, value: Any) -> List[Any]:
    if isinstance(value, PipelineGraph):
        return [value]
    if isinstance(value, dict):
        raise where.fail(f"takes a list, got {_describe(value)} (use over KEY or flatten first)")
    if not isinstance(value, list):
        raise where.fail(f"takes a list, got {_describe(value)}")
    return value


# --- the steps, each pure ---------------------------------------------------------------


def popularity_contest(graph: PipelineGraph) -> List[PipelineGraph]:
    if not graph.order:
        return []
    nodes = [{"path": p, "references": graph.refs[p]} for p in graph.order]
    return [graph.induced({p}) for p in closure.popularity_order(closure.Graph(nodes))]


def merge(graphs: Sequence[PipelineGraph]) -> PipelineGraph:
    order: List[str] = []
    seen: Set[str] = set()
    for g in graphs:
        order.extend(p for p in g.order if p not in seen)
        seen.update(g.order)
    refs = {p: sorted({r for g in graphs if p in g.refs for r in g.refs[p]}) for p in order}
    return PipelineGraph(order, refs)


def limit_layers(count: int, values: List[Any]) -> List[Any]:
    if len(values) <= count:
        return list(values)
    rest = values[count - 1 :]
    return list(values[: count - 1]) + [merge(rest)]


def split_every(count: int, graph: PipelineGraph) -> List[PipelineGraph]:
    return [graph.induced(set(graph.order[i : i + count])) for i in range(0, len(graph.order), count)]


def subcomponent(mode: str, paths: Sequence[str], graph: PipelineGraph) -> Dict[str, PipelineGraph]:
    main = graph.reach(paths, mode)
    return {"main": graph.induced(main), "rest": graph.without(main)}


def remove_paths(paths: Sequence[str], graph: PipelineGraph) -> PipelineGraph:
    return graph.without(set(paths))


def split_paths(specs: Sequence[Any], graph: PipelineGraph) -> Dict[str, PipelineGraph]:
    split: List[str] = []
    for spec in specs:
        if isinstance(spec, dict):
            parents = spec["children_of"]
            for parent in [parents] if isinstance(parents, str) else parents:
                split.extend(graph.refs.get(parent, ()))
        elif spec in graph.refs:
            split.append(spec)
    if not split:
        return {"rest": graph}
    split_set = set(split)
    referred = {r for p in graph.order for r in graph.refs[p]}
    roots = [p for p in graph.order if p not in referred]
    if len(roots) == 1 and roots[0] in split_set:
        return {"main": graph}
    split_off = graph.reach(split, "out")
    # Reached from the roots without passing through a split path.
    rest_with_common: Set[str] = set()
    todo = [r for r in roots if r not in split_set]
    while todo:
        p = todo.pop()
        if p in rest_with_common:
            continue
        rest_with_common.add(p)
        todo.extend(r for r in graph.refs[p] if r not in split_set)
    common = split_off & rest_with_common
    parts = {
        "main": graph.induced(split_off - common),
        "common": graph.induced(common),
        "rest": graph.induced(rest_with_common - common),
    }
    return {k: g for k, g in parts.items() if len(g)}


def flatten(value: Any) -> Iterator[Any]:
    items: Iterable[Any] = value.values() if isinstance(value, dict) else value
    for item in items:
        if isinstance(item, (list, dict)):
            yield from flatten(item)
        else:
            yield item


# --- compiling steps ----------------------------------------------------------------------

_ARITY = {
    "popularity_contest": 0,
    "flatten": 0,
    "reverse": 0,
    "limit_layers": 1,
    "split_every": 1,
    "subcomponent_in": 1,
    "subcomponent_out": 1,
    "split_paths": 1,
    "remove_paths": 1,
    "map": 1,
    "pipe": 1,
    "over": 2,
}


def _compile(step: Any, where: _Where) -> Step:
    if not isinstance(step, list) or not step or not isinstance(step[0], str):
        raise where.fail(f'a step is a list like [ "popularity_contest" ], got {json.dumps(step)[:80]}')
    name, args = step[0], step[1:]
    if name not in _ARITY:
        raise where.fail(f'unknown step "{name}" (known: {", ".join(sorted(_ARITY))})')
    here = _Where(f"{where.trail} ({name})")
    if len(args) != _ARITY[name]:
        raise here.fail(f"takes {_ARITY[name]} argument{'s' if _ARITY[name] != 1 else ''}, got {len(args)}")
    if name == "popularity_contest":
        return lambda v: popularity_contest(_graph_in(here, v))
    if name == "flatten":
        return lambda v: list(flatten(v if isinstance(v, (list, dict)) else [v]))
    if name == "reverse":
        return lambda v: list(reversed(_list_in(here, v)))
    if name in ("limit_layers", "split_every"):
        n = _int_arg(here, args[0], 1)
        if name == "limit_layers":

            def limit(v: Any) -> List[Any]:
                values = _list_in(here, v)
                for x in values[n - 1 :] if len(values) > n else ():
                    if not isinstance(x, PipelineGraph):
                        raise here.fail(f"can merge graphs only, got {_describe(x)} (flatten first)")
                return limit_layers(n, values)

            return limit
        return lambda v: split_every(n, _graph_in(here, v))
    if name in ("subcomponent_in", "subcomponent_out"):
        paths = _paths_arg(here, args[0])
        mode = name.rsplit("_", 1)[1]
        return lambda v: subcomponent(mode, paths, _graph_in(here, v))
    if name == "remove_paths":
        paths = _paths_arg(here, args[0])
        return lambda v: remove_paths(paths, _graph_in(here, v))
    if name == "split_paths":
        specs = _split_specs(here, args[0])
        return lambda v: split_paths(specs, _graph_in(here, v))
    if name == "map":
        inner = _compile(args[0], _Where(f"{here.trail} step"))
        return lambda v: [inner(x) for x in _list_in(here, v)]
    if name == "pipe":
        return _compile_pipeline(args[0], here)
    # over
    key = args[0]
    if not isinstance(key, str):
        raise here.fail(f"expects a key (main, common, rest), got {json.dumps(key)[:80]}")
    inner = _compile(args[1], _Where(f"{here.trail} step"))

    def over(v: Any) -> Any:
        if not isinstance(v, dict):
            raise here.fail(f"takes a set of graphs (what split_paths or subcomponent give), got {_describe(v)}")
        if key not in v:
            return v
        return {k: (inner(x) if k == key else x) for k, x in v.items()}

    return over


def _split_specs(where: _Where, value: Any) -> List[Any]:
    items = value if isinstance(value, list) else [value]
    for item in items:
        if isinstance(item, dict):
            if set(item) != {"children_of"}:
                raise where.fail(
                    f"an element is a store path or {{ children_of = PATHS; }}, got {json.dumps(item)[:80]}"
                )
            _paths_arg(where, item["children_of"])
        elif not isinstance(item, str):
            raise where.fail(f"expects store paths, got {json.dumps(item)[:80]}")
    return items


def _compile_pipeline(pipeline: Any, where: Optional[_Where] = None) -> Step:
    prefix = f"{where.trail} " if where else ""
    if not isinstance(pipeline, list):
        raise BuildError(f"layeringPipeline: {prefix}must be a list of steps, got {json.dumps(pipeline)[:80]}")
    steps = [_compile(step, _Where(f"{prefix}step {i + 1}")) for i, step in enumerate(pipeline)]

    def run(value: Any) -> Any:
        for step in steps:
            value = step(value)
        return value

    return run


def run_pipeline(pipeline: Any, graph: closure.Graph) -> List[List[str]]:
    """The layers ``pipeline`` makes of ``graph``, lowest first; each layer's
    paths sorted. Empty layers are dropped."""
    result = _compile_pipeline(pipeline)(PipelineGraph.of(graph))
    layers = []
    for value in flatten(result if isinstance(result, (list, dict)) else [result]):
        if not isinstance(value, PipelineGraph):
            raise BuildError(f"layeringPipeline: ends with {_describe(value)} where a graph was expected")
        if value.order:
            layers.append(sorted(value.order))
    # Every step partitions what it is given: no path is in two layers.
    return layers


def load_pipeline(value: Any) -> Any:
    """The pipeline itself: a list of steps, or a file holding one as JSON
    (a derivation, as nixpkgs also takes it)."""
    if isinstance(value, str):
        try:
            with open(value, "rb") as f:
                return json.load(f)
        except OSError as e:
            raise BuildError(f"layeringPipeline: cannot read {value} ({e.strerror})") from None
        except ValueError as e:
            raise BuildError(f"layeringPipeline: {value} is not JSON ({e})") from None
    return value
