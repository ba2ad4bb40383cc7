"""The module graph: import sites, recorded imports, layers (Fig. 5), cycles, Algorithm 2 order."""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path

import pytest

from memtrim.analysis.modgraph import (
    Dependency,
    ModuleGraph,
    ModuleNode,
    build_module_graph,
    import_sites,
    import_time_closure,
    record_imports,
)
from memtrim.app import App, Workload
from memtrim.program import Program

# main -> a, b (layer 1); a -> c; b -> c, d (layer 2); c -> d (intra-layer 2);
# d -> e (layer 3); e <-> f (a cycle); b imports g only inside a function.
FILES = {
    "main.py": """
        import sys
        import a
        import b
        print(a.A, b.B(), sorted(m for m in sys.modules if len(m) == 1))
    """,
    "a.py": """
        from c import C
        A = C + 1
    """,
    "b.py": """
        import c
        import d
        try:
            import not_installed_anywhere
        except ImportError:
            not_installed_anywhere = None
        if False:
            import os
        from typing import TYPE_CHECKING
        if TYPE_CHECKING:
            import f
        def B():
            import g
            return c.C + d.D + g.G
    """,
    "c.py": """
        import d
        C = d.D * 10
    """,
    "d.py": """
        import e
        D = 1
    """,
    "e.py": """
        import f
        E = 1
    """,
    "f.py": """
        import e
        F = 2
    """,
    "g.py": """
        G = 100
    """,
}


def make(root: Path, files: dict[str, str] = FILES) -> Path:
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def graph_and_records(tmp_path_factory):
    root = make(tmp_path_factory.mktemp("mg"))
    app = App(root=root, script=root / "main.py", workloads=(Workload(name="run"),))
    records = record_imports(app, main_name="main")
    program = Program.load(root, entry=root / "main.py")
    return build_module_graph(program, records), records


def test_import_sites_know_their_context() -> None:
    tree = ast.parse(textwrap.dedent(FILES["b.py"]))
    sites = {(s.target, s.context) for s in import_sites(tree, "b", False)}
    assert ("c", "top") in sites and ("d", "top") in sites
    assert ("not_installed_anywhere", "guarded") in sites
    assert ("os", "conditional") in sites
    assert ("f", "type-checking") in sites
    assert ("g", "function") in sites


def test_relative_imports_resolve_to_absolute_names() -> None:
    tree = ast.parse("from . import x\nfrom ..y import z\nfrom .w import *\n")
    sites = import_sites(tree, "pkg.sub.mod", False)
    assert [s.target for s in sites] == ["pkg.sub", "pkg.y", "pkg.sub.w"]
    assert sites[2].names == (("*", None),)


def test_records_show_who_loaded_what_at_run_time(graph_and_records) -> None:
    _, records = graph_and_records
    assert not records.failures
    assert records.loaded["c"].parent == "a"
    assert records.loaded["g"].importer == "b"  # imported by b's function B at run time
    assert records.loaded["g"].parent is None
    ns = records.namespaces["c"]
    assert "C" in ns.keys and ns.prov["d"] == ["module", "d"]


def test_layers_follow_the_breadth_first_hierarchy(graph_and_records) -> None:
    graph, _ = graph_and_records
    assert graph.layers[0] == ["main"]
    assert graph.layers[1] == ["a", "b"]
    assert set(graph.layers[2]) == {"c", "d", "g"}
    assert graph.layer_of("e") == 3 and graph.layer_of("f") == 4
    assert ("c", "d") in graph.intra_layer(2)
    assert ("a", "c") in graph.inter_layer(2)
    kinds = {(e.importer, e.imported): e.how for e in graph.edges}
    assert kinds[("b", "g")] == "function"
    assert kinds[("b", "f")] == "type-checking"
    assert graph.layer_of("not_installed_anywhere") is None


def test_cycles_are_found(graph_and_records) -> None:
    graph, _ = graph_and_records
    assert graph.cycles == [["e", "f"]]
    assert graph.cycle_of("e") == ["e", "f"] and graph.cycle_of("a") is None
    assert ("f", "e") in graph.upward()


def test_reduction_order_is_deepest_first_intra_before_inter(graph_and_records) -> None:
    graph, _ = graph_and_records
    order = graph.reduction_order()
    layers = [s.layer for s in order]
    assert layers == sorted(layers, reverse=True)
    layer2 = [(s.phase, s.source, s.target) for s in order if s.layer == 2]
    phases = [p for p, _, _ in layer2]
    assert phases.index("inter") > phases.index("intra")
    assert ("intra", "d", "c") in layer2
    assert ("inter", "c", "a") in layer2
    # limited to the modules a pass may rewrite
    assert all({s.source, s.target} <= {"a", "c"} for s in graph.reduction_order(["a", "c"]))


def test_cycle_is_merged_when_both_sit_in_one_layer() -> None:
    g = ModuleGraph(main="m")
    for n in "mxyz":
        g.add_node(ModuleNode(n, "app"))
    for a, b in [("m", "x"), ("m", "y"), ("x", "y"), ("y", "x"), ("y", "z")]:
        g.add_edge(Dependency(a, b, "top"))
    g.finish()
    assert g.cycles == [["x", "y"]]
    steps = g.reduction_order()
    # layer 2 first (z into y), then layer 1: the cycle is merged before anything else
    assert [(s.layer, s.phase) for s in steps][:2] == [(2, "inter"), (1, "merge")]
    assert {steps[1].source, steps[1].target} == {"x", "y"}
    assert g.to_dict()["cycles"] == [["x", "y"]]


def test_import_time_closure(graph_and_records) -> None:
    graph, _ = graph_and_records
    assert import_time_closure(graph, "a") == {"a", "c", "d", "e", "f"}
    assert "g" not in import_time_closure(graph, "b")  # only imported by a function


def test_graph_can_cover_the_standard_library(graph_and_records, tmp_path: Path) -> None:
    root = make(tmp_path, {"main.py": "import json\nprint(json.dumps([1]))\n"})
    app = App(root=root, script=root / "main.py", workloads=(Workload(name="run"),))
    records = record_imports(app, main_name="main")
    program = Program.load(root, entry=root / "main.py")
    graph = build_module_graph(program, records, include_external=True)
    assert graph.nodes["json"].kind == "stdlib"
    assert ("main", "json") in {(e.importer, e.imported) for e in graph.edges}
    assert "json.decoder" in graph.dependencies("json")


def test_strongly_connected_components_come_in_reverse_topological_order() -> None:
    from memtrim.analysis.graphs import strongly_connected

    succ = {"a": ["b"], "b": ["c", "a"], "c": ["d"], "d": ["c"], "e": ["a", "zz"]}
    comps = strongly_connected(succ, lambda n: succ[n])
    assert sorted(map(sorted, comps)) == [["a", "b"], ["c", "d"], ["e"]]
    order = [sorted(c) for c in comps]
    # a component comes after every component it reaches ("zz" is not a node)
    assert order.index(["c", "d"]) < order.index(["a", "b"]) < order.index(["e"])
    # deep chains do not hit the recursion limit
    chain = {i: [i + 1] for i in range(5000)} | {5000: [0]}
    (whole,) = strongly_connected(chain, lambda n: chain[n])
    assert len(whole) == 5001
