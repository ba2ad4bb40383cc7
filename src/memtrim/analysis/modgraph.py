"""The module graph: which module imports which, in layers, with its cycles (paper Fig. 5).

Nodes are modules: the program's own (the application and any vendored
packages, all under the source root) and, when asked for, the standard-library
and third-party modules the workloads loaded.  Edges come from two sources:

- the static analysis: every ``import`` statement of every module the program
  holds, with where it sits (``top``: runs when the module is imported;
  ``guarded``: inside ``try``/``except ImportError``; ``conditional``: inside
  another top-level block; ``function``: inside a function, runs when that is
  called; ``type-checking``: under ``if TYPE_CHECKING:``, never runs) and the
  implicit edge from a module to its parent package (``package``);
- the imports recorded while each workload ran (:func:`record_imports`): who
  actually loaded what (``runtime`` when the static analysis has no such edge).

Layers follow the paper: layer 0 holds the main module, layer *k* the modules
first reached *k* imports away from it (breadth first).  An edge between two
modules of the same layer is an intra-layer dependency, one from layer *k* to
layer *k+1* an inter-layer dependency, one towards a shallower layer an upward
dependency.  Cycles are the strongly connected components (circular imports).
:meth:`ModuleGraph.reduction_order` gives the paper's Algorithm 2 order (lines
17-30): from the deepest layer up, intra-layer dependencies first, then the
inter-layer ones towards the layer above.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import tempfile
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from memtrim.analysis.graphs import strongly_connected
from memtrim.analysis.symbols import relative_base
from memtrim.program import Program

if TYPE_CHECKING:
    from memtrim.app import App

# Where an import statement sits, from "runs whenever the module is imported" to
# "never runs".  Only the first three make the imported module part of the
# importing module's import-time cost.
CONTEXTS = ("top", "guarded", "conditional", "function", "type-checking")


# The probe that records imports and namespaces; it runs in the target interpreter
# (standard library only), written to a temporary file for each recording.
PROBE_SOURCE = r'''
import os
import sys

_RESULT_PATH = sys.argv[1] if __name__ == "__main__" else ""
_HARNESS_FILE = __file__
_MODULES = []  # [name, file, is_package, parent, importer]
_SNAP = {}  # name -> (keys, all)
_DONE = []


class _Probe:
    # a meta path finder that wraps loaders to see each module body run

    def __init__(self):
        import _thread

        self._ident = _thread.get_ident
        self._stacks = {}

    def _importer(self):
        # the first frame outside the import machinery (and this probe) asked for it
        f = sys._getframe(2)
        while f is not None:
            filename = f.f_code.co_filename
            if not (filename.startswith("<frozen importlib") or filename == _HARNESS_FILE
                    or filename.endswith(os.sep + "importlib" + os.sep + "__init__.py")):
                return f.f_globals.get("__name__")
            f = f.f_back
        return None

    def find_spec(self, name, path=None, target=None):
        for finder in sys.meta_path:
            if finder is self:
                continue
            find = getattr(finder, "find_spec", None)
            if find is None:
                continue
            spec = find(name, path, target)
            if spec is not None:
                self._wrap(spec.loader, self._importer())
                return spec
        return None

    def _wrap(self, loader, importer):
        if loader is None or isinstance(loader, type):
            return
        d = getattr(loader, "__dict__", None)
        if d is None:
            return
        d["_memtrim_probe_importer"] = importer
        if d.get("_memtrim_probe"):
            return
        probe = self
        execute = loader.exec_module

        def exec_module(module):
            spec = getattr(module, "__spec__", None)
            name = spec.name if spec is not None else module.__name__
            stack = probe._stacks.setdefault(probe._ident(), [])
            parent = stack[-1] if stack else None
            _MODULES.append([
                name, getattr(module, "__file__", None), hasattr(module, "__path__"),
                parent, loader.__dict__.get("_memtrim_probe_importer"),
            ])
            stack.append(name)
            try:
                execute(module)
            finally:
                stack.pop()
                try:
                    ns = module.__dict__
                    names = list(ns)
                    all_ = ns.get("__all__")
                    if isinstance(all_, (list, tuple)) and all(isinstance(a, str) for a in all_):
                        all_ = list(all_)
                    else:
                        all_ = None
                    _SNAP[name] = (names, all_)
                except Exception:
                    pass

        try:
            loader.exec_module = exec_module
            loader._memtrim_probe = True
        except (AttributeError, TypeError):
            pass


def _provenance(value):
    if isinstance(value, type(sys)):
        return ["module", getattr(value, "__name__", None)]
    try:
        mod = getattr(value, "__module__", None)
        name = getattr(value, "__name__", None)
    except Exception:
        return ["value"]
    if isinstance(mod, str) and isinstance(name, str):
        m = sys.modules.get(mod)
        if m is not None:
            try:
                if m.__dict__.get(name) is value:
                    return ["def", mod, name]
            except Exception:
                pass
    return ["value"]


def _write():
    if _DONE:
        return
    _DONE.append(True)
    import json

    namespaces = {}
    for name, (keys, all_) in list(_SNAP.items()):
        module = sys.modules.get(name)
        ns = getattr(module, "__dict__", {}) if module is not None else {}
        prov = {}
        for key in keys:
            if key.startswith("__") and key.endswith("__"):
                continue
            if key in ns:
                prov[key] = _provenance(ns[key])
            else:
                prov[key] = ["gone"]
        namespaces[name] = {"keys": keys, "all": all_, "prov": prov}
    doc = {"modules": _MODULES, "namespaces": namespaces}
    tmp = _RESULT_PATH + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(doc, f)
    os.replace(tmp, _RESULT_PATH)


def _run(target):
    if target[0] == "-m":
        import runpy

        sys.argv = ["-m"] + target[2:]
        if not getattr(sys.flags, "safe_path", False):
            sys.path[0] = os.getcwd()
        runpy.run_module(target[1], run_name="__main__", alter_sys=True)
        return
    import types

    path = target[0]
    sys.argv = [path] + target[1:]
    if not getattr(sys.flags, "safe_path", False):
        sys.path[0] = os.path.dirname(os.path.abspath(path))
    with open(path, "rb") as f:
        code = compile(f.read(), path, "exec", dont_inherit=True)
    main = types.ModuleType("__main__")
    main.__file__ = path
    main.__builtins__ = sys.modules["builtins"]
    main.__cached__ = None
    main.__spec__ = None
    main.__loader__ = None
    sys.modules["__main__"] = main
    exec(code, main.__dict__)


def main():
    import atexit

    atexit.register(_write)  # registered first: runs after the application's own handlers
    real_exit = os._exit

    def _exit_hook(code):
        _write()
        real_exit(code)

    os._exit = _exit_hook
    sys.meta_path.insert(0, _Probe())
    target = sys.argv[3:]
    try:
        _run(target)
    except SystemExit:
        raise
    except BaseException as e:
        tb = e.__traceback__
        while tb is not None and tb.tb_frame.f_code.co_filename == _HARNESS_FILE:
            tb = tb.tb_next
        sys.excepthook(type(e), e, tb)
        sys.exit(1)


if __name__ == "__main__":
    main()
'''


# -- static import sites ---------------------------------------------------------


@dataclass(frozen=True)
class ImportSite:
    """One import statement of a module, resolved to absolute module names.

    ``target`` is the module the statement names (``a.b`` for ``import a.b`` and
    ``from a.b import c``), None when a relative import climbs out of the tree.
    ``names`` are ``(name, asname)`` pairs (``("*", None)`` for a star import).
    ``context`` is one of :data:`CONTEXTS`; ``depth`` 0 means a statement
    directly in the module body.
    """

    module: str
    line: int
    kind: str  # "import" or "from"
    target: str | None
    names: tuple[tuple[str, str | None], ...]
    level: int
    context: str
    depth: int

    def modules(self, known: set[str] | frozenset[str] = frozenset()) -> list[str]:
        """The modules this statement may load: its target, and submodules named by a from."""
        if self.target is None:
            return []
        out = [self.target]
        if self.kind == "from":
            for name, _ in self.names:
                sub = f"{self.target}.{name}"
                if name != "*" and sub in known:
                    out.append(sub)
        return out


def _is_type_checking(test: ast.expr) -> bool:
    if isinstance(test, ast.Name):
        return test.id == "TYPE_CHECKING"
    if isinstance(test, ast.Attribute):
        return test.attr == "TYPE_CHECKING"
    return False


def _catches_import_error(handlers: Sequence[ast.ExceptHandler]) -> bool:
    for h in handlers:
        kind = h.type
        if kind is None:
            return True
        for n in kind.elts if isinstance(kind, ast.Tuple) else [kind]:
            name = n.id if isinstance(n, ast.Name) else getattr(n, "attr", "")
            if name in ("ImportError", "ModuleNotFoundError", "Exception", "BaseException"):
                return True
    return False


def import_sites(tree: ast.Module, module: str, is_package: bool) -> list[ImportSite]:
    """Every import statement of a module's tree, with its context (see :data:`CONTEXTS`)."""
    package = module if is_package else module.rpartition(".")[0]
    out: list[ImportSite] = []

    def visit(stmts: Iterable[ast.stmt], context: str, depth: int) -> None:
        """Record the imports of ``stmts``, which run in ``context``."""
        for s in stmts:
            if isinstance(s, ast.Import):
                for alias in s.names:
                    out.append(ImportSite(module, s.lineno, "import", alias.name,
                                          ((alias.name, alias.asname),), 0, context, depth))
            elif isinstance(s, ast.ImportFrom):
                target = relative_base(package, s.module, s.level)
                names = tuple((a.name, a.asname) for a in s.names)
                out.append(ImportSite(module, s.lineno, "from", target, names, s.level,
                                      context, depth))
            elif isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef)):
                inner = "type-checking" if context == "type-checking" else "function"
                visit(s.body, inner, depth + 1)
            elif isinstance(s, ast.ClassDef):
                visit(s.body, context, depth + 1)
            elif isinstance(s, ast.If):
                if _is_type_checking(s.test):
                    visit(s.body, "type-checking", depth + 1)
                    visit(s.orelse, _nested(context), depth + 1)
                else:
                    visit(s.body, _nested(context), depth + 1)
                    visit(s.orelse, _nested(context), depth + 1)
            elif isinstance(s, ast.Try) or type(s).__name__ == "TryStar":
                guarded = "guarded" if _catches_import_error(s.handlers) else _nested(context)
                visit(s.body, guarded if context in ("top", "guarded", "conditional")
                      else context, depth + 1)
                for h in s.handlers:
                    visit(h.body, _nested(context), depth + 1)
                visit(s.orelse, _nested(context), depth + 1)
                visit(s.finalbody, _nested(context), depth + 1)
            elif isinstance(s, (ast.For, ast.AsyncFor, ast.While, ast.With, ast.AsyncWith)):
                visit(s.body, _nested(context), depth + 1)
                visit(getattr(s, "orelse", []), _nested(context), depth + 1)
            elif isinstance(s, ast.Match):
                for case in s.cases:
                    visit(case.body, _nested(context), depth + 1)

    visit(tree.body, "top", 0)
    return out


def _nested(context: str) -> str:
    return "conditional" if context == "top" else context


# -- recorded imports -------------------------------------------------------------


@dataclass
class ModuleLoad:
    """One module a workload loaded."""

    name: str
    file: str | None
    is_package: bool
    parent: str | None  # the module whose body was running when it was loaded
    importer: str | None  # the module whose code asked for it
    workloads: list[str] = field(default_factory=list)


@dataclass
class Namespace:
    """A module's namespace right after its body ran (from the probe)."""

    keys: list[str]
    all: list[str] | None
    # name -> ["module", NAME] | ["def", MODULE, NAME] | ["value"] | ["gone"]
    prov: dict[str, list]


@dataclass
class ImportRecords:
    """What the workloads imported, merged over all of them."""

    loaded: dict[str, ModuleLoad] = field(default_factory=dict)
    namespaces: dict[str, Namespace] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    workloads: list[str] = field(default_factory=list)

    def edges(self) -> set[tuple[str, str]]:
        """(importer, imported) pairs seen at run time."""
        out = set()
        for m in self.loaded.values():
            who = m.importer or m.parent
            if who and who != m.name:
                out.add((who, m.name))
        return out

    def add(self, workload: str, doc: dict) -> None:
        """Merge one probe result."""
        self.workloads.append(workload)
        for name, file, is_package, parent, importer in doc.get("modules", []):
            m = self.loaded.get(name)
            if m is None:
                m = self.loaded[name] = ModuleLoad(name, file, bool(is_package), parent, importer)
            if workload not in m.workloads:
                m.workloads.append(workload)
        for name, ns in doc.get("namespaces", {}).items():
            if name not in self.namespaces:
                self.namespaces[name] = Namespace(ns["keys"], ns.get("all"), ns.get("prov", {}))

    def to_dict(self) -> dict:
        """A JSON-able summary (module names per workload, not the namespaces)."""
        return {
            "workloads": self.workloads,
            "modules": len(self.loaded),
            "failures": self.failures,
        }


def record_imports(
    app: App,
    python: str = sys.executable,
    python_args: Sequence[str] = (),
    *,
    main_name: str | None = None,
) -> ImportRecords:
    """Run every workload of ``app`` once under the import probe and merge what it saw.

    ``app`` is a :class:`memtrim.app.App`.  A workload that fails (or whose
    probe result is missing) is listed in ``failures``; its partial result is
    still merged.  ``main_name``: the program's name for the entry module, used
    instead of ``__main__`` as an importer.
    """
    from memtrim.workload_run import workload_env

    records = ImportRecords()
    with tempfile.TemporaryDirectory(prefix="memtrim-probe-") as tmp:
        probe = Path(tmp) / "memtrim_probe.py"
        probe.write_text(PROBE_SOURCE, encoding="utf-8")
        for i, workload in enumerate(app.workloads):
            w = workload.expand(app.root)
            cwd = Path(tmp) / f"cwd{i}"
            cwd.mkdir()
            out = Path(tmp) / f"probe{i}.json"
            argv = [python, *python_args, str(probe), str(out), "--", *app.entry_argv(), *w.args]
            stdin = open(w.stdin, "rb") if w.stdin else subprocess.DEVNULL
            try:
                proc = subprocess.run(
                    argv, cwd=cwd, env=workload_env(app, w), stdin=stdin,
                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=w.timeout,
                )
                code = proc.returncode
                err = proc.stderr.decode("utf-8", "replace")
            except subprocess.TimeoutExpired:
                code, err = None, "timed out"
            finally:
                if stdin is not subprocess.DEVNULL:
                    stdin.close()
            if w.expect_exit is not None and code != w.expect_exit:
                tail = err.strip().splitlines()[-1:] or [""]
                records.failures.append(f"{w.name}: exit {code}: {tail[0][:200]}")
            if out.is_file():
                doc = json.loads(out.read_text(encoding="utf-8"))
                if main_name:
                    for row in doc.get("modules", []):
                        for k in (3, 4):
                            if row[k] == "__main__":
                                row[k] = main_name
                records.add(w.name, doc)
            else:
                records.failures.append(f"{w.name}: the probe wrote no result")
    return records


# -- the graph ------------------------------------------------------------------------


@dataclass(frozen=True)
class Dependency:
    """``importer`` depends on ``imported``; ``how`` is a context, ``package`` or ``runtime``."""

    importer: str
    imported: str
    how: str
    line: int | None = None


@dataclass
class ModuleNode:
    """One module of the graph."""

    name: str
    kind: str  # app, vendored, stdlib, third-party, extension, built-in
    path: str | None = None
    is_package: bool = False
    loaded: bool = False  # some workload loaded it
    layer: int | None = None


# Edges that make a module part of another's cost (or its run): what layers and
# cycles are built from.  type-checking imports never run.
_LIVE = frozenset({"top", "guarded", "conditional", "function", "package", "runtime"})
_IMPORT_TIME = frozenset({"top", "guarded", "conditional", "package"})


@dataclass(frozen=True)
class ReductionStep:
    """One transfer of Algorithm 2: ``source``'s used code goes into ``target``."""

    layer: int
    phase: str  # "intra" (same layer), "inter" (into the layer above) or "merge" (a cycle)
    source: str
    target: str
    cycle: tuple[str, ...] = ()


@dataclass
class ModuleGraph:
    """Modules, their dependencies, layers (Fig. 5) and cycles."""

    main: str
    nodes: dict[str, ModuleNode] = field(default_factory=dict)
    edges: list[Dependency] = field(default_factory=list)
    layers: list[list[str]] = field(default_factory=list)
    cycles: list[list[str]] = field(default_factory=list)
    _out: dict[str, set[str]] = field(default_factory=dict, repr=False)
    _in: dict[str, set[str]] = field(default_factory=dict, repr=False)

    # -- queries ----------------------------------------------------------------

    def dependencies(self, module: str, how: Iterable[str] = _LIVE) -> set[str]:
        """Modules ``module`` imports (through edges of the kinds in ``how``)."""
        kinds = set(how)
        return {e.imported for e in self.edges if e.importer == module and e.how in kinds}

    def dependents(self, module: str, how: Iterable[str] = _LIVE) -> set[str]:
        """Modules that import ``module``."""
        kinds = set(how)
        return {e.importer for e in self.edges if e.imported == module and e.how in kinds}

    def layer_of(self, module: str) -> int | None:
        """The layer of ``module`` (None when the main module never reaches it)."""
        node = self.nodes.get(module)
        return node.layer if node else None

    def intra_layer(self, layer: int) -> list[tuple[str, str]]:
        """(dependent, dependency) pairs inside ``layer``."""
        return sorted(
            (u, v) for u, vs in self._out.items() for v in vs
            if self.layer_of(u) == layer and self.layer_of(v) == layer
        )

    def inter_layer(self, layer: int) -> list[tuple[str, str]]:
        """(dependent in ``layer - 1``, dependency in ``layer``) pairs."""
        return sorted(
            (u, v) for u, vs in self._out.items() for v in vs
            if self.layer_of(v) == layer and self.layer_of(u) == layer - 1
        )

    def upward(self) -> list[tuple[str, str]]:
        """(dependent, dependency) pairs where the dependency sits in a shallower layer."""
        out = []
        for u, vs in self._out.items():
            lu = self.layer_of(u)
            for v in vs:
                lv = self.layer_of(v)
                if lu is not None and lv is not None and lv < lu:
                    out.append((u, v))
        return sorted(out)

    def cycle_of(self, module: str) -> list[str] | None:
        """The cycle (strongly connected component) ``module`` belongs to, if any."""
        for c in self.cycles:
            if module in c:
                return c
        return None

    def reduction_order(self, modules: Iterable[str] | None = None) -> list[ReductionStep]:
        """Algorithm 2, lines 17-30: the transfers in the order the paper makes them.

        From the deepest layer to layer 1: first every cycle of the layer is
        merged, then the intra-layer dependencies (a dependency before the
        modules that depend on it), then the inter-layer ones, into the layer
        above.  ``modules`` limits the transfers to those whose source and
        target are both in it (e.g. the modules a pass may rewrite).
        """
        allowed = set(modules) if modules is not None else None

        def ok(*names: str) -> bool:
            """All of ``names`` may take part in a transfer."""
            return allowed is None or all(n in allowed for n in names)

        steps: list[ReductionStep] = []
        for layer in range(len(self.layers) - 1, 0, -1):
            members = set(self.layers[layer])
            done_cycles = set()
            for c in self.cycles:
                inside = [m for m in c if m in members]
                if len(inside) > 1 and ok(*inside) and tuple(c) not in done_cycles:
                    done_cycles.add(tuple(c))
                    # everything merges into the first member (the one reached first)
                    for m in inside[1:]:
                        steps.append(ReductionStep(layer, "merge", m, inside[0], tuple(c)))
            pairs = [(u, v) for u, v in self.intra_layer(layer) if ok(u, v)
                     and not (self.cycle_of(u) and self.cycle_of(u) == self.cycle_of(v))]
            for v in _dependency_first({v for _, v in pairs} | {u for u, _ in pairs}, pairs):
                for u, vv in pairs:
                    if vv == v:
                        steps.append(ReductionStep(layer, "intra", v, u))
            for u, v in self.inter_layer(layer):
                if ok(u, v):
                    steps.append(ReductionStep(layer, "inter", v, u))
        return steps

    def to_dict(self) -> dict:
        """A JSON-able summary: layers, cycles, and edge counts by kind."""
        by_how: dict[str, int] = {}
        for e in self.edges:
            by_how[e.how] = by_how.get(e.how, 0) + 1
        return {
            "main": self.main,
            "modules": len(self.nodes),
            "loaded": sum(1 for n in self.nodes.values() if n.loaded),
            "kinds": _count(n.kind for n in self.nodes.values()),
            "edges": by_how,
            "layers": [sorted(layer) for layer in self.layers],
            "cycles": self.cycles,
            "intra_layer": sum(len(self.intra_layer(i)) for i in range(len(self.layers))),
            "inter_layer": sum(len(self.inter_layer(i)) for i in range(1, len(self.layers))),
            "upward": len(self.upward()),
        }

    # -- construction -----------------------------------------------------------

    def add_node(self, node: ModuleNode) -> ModuleNode:
        """Add ``node`` unless a node of that name exists; return the graph's node."""
        return self.nodes.setdefault(node.name, node)

    def add_edge(self, dep: Dependency) -> None:
        """Record a dependency (both ends must be nodes)."""
        if dep.importer == dep.imported:
            return
        self.edges.append(dep)
        if dep.how in _LIVE:
            self._out.setdefault(dep.importer, set()).add(dep.imported)
            self._in.setdefault(dep.imported, set()).add(dep.importer)

    def finish(self) -> None:
        """Compute layers (breadth first from the main module) and cycles."""
        for node in self.nodes.values():
            node.layer = None
        self.layers = []
        if self.main in self.nodes:
            self.nodes[self.main].layer = 0
            frontier = [self.main]
            while frontier:
                self.layers.append(sorted(frontier))
                nxt = []
                for u in frontier:
                    for v in sorted(self._out.get(u, ())):
                        node = self.nodes.get(v)
                        if node is not None and node.layer is None:
                            node.layer = len(self.layers)
                            nxt.append(v)
                frontier = nxt
        self.cycles = _strongly_connected(self.nodes, self._out)


def _count(items: Iterable[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for i in items:
        out[i] = out.get(i, 0) + 1
    return dict(sorted(out.items()))


def _dependency_first(nodes: set[str], pairs: list[tuple[str, str]]) -> list[str]:
    """Order ``nodes`` so that a dependency comes before its dependents (Kahn, by name)."""
    deps: dict[str, set[str]] = {n: set() for n in nodes}
    users: dict[str, set[str]] = {n: set() for n in nodes}
    for u, v in pairs:
        deps[u].add(v)
        users[v].add(u)
    ready = deque(sorted(n for n in nodes if not deps[n]))
    out: list[str] = []
    while ready:
        n = ready.popleft()
        out.append(n)
        for u in sorted(users[n]):
            deps[u].discard(n)
            if not deps[u]:
                ready.append(u)
    out.extend(sorted(n for n in nodes if n not in out))  # what remains is in a cycle
    return out


def _strongly_connected(nodes: dict, out: dict[str, set[str]]) -> list[list[str]]:
    """The circular imports: components of two or more modules, each sorted."""
    return sorted(sorted(c) for c in strongly_connected(nodes, lambda n: out.get(n, ()))
                  if len(c) > 1)


def _external_kind(file: str | None) -> str:
    if not file:
        return "built-in"
    if file.endswith((".so", ".pyd")):
        return "extension"
    if "site-packages" in file or "dist-packages" in file:
        return "third-party"
    return "stdlib"


def build_module_graph(
    program: Program,
    records: ImportRecords | None = None,
    *,
    include_external: bool = False,
    vendored: Iterable[str] = (),
) -> ModuleGraph:
    """The module graph of ``program`` (with run-time edges from ``records``).

    ``include_external``: also the standard-library and third-party modules the
    workloads loaded, with the static edges of their source.  ``vendored``:
    top-level names of packages copied into the program (their modules are
    marked ``vendored`` rather than ``app``).
    """
    vend = set(vendored)
    main = program.entry_module or "__main__"
    graph = ModuleGraph(main=main)
    known = set(program.modules)
    loaded = records.loaded if records else {}
    for name, src in program.modules.items():
        kind = "vendored" if name.partition(".")[0] in vend else "app"
        graph.add_node(ModuleNode(name, kind, src.path.as_posix(), src.is_package,
                                  name in loaded or name == main))
    sources: dict[str, tuple[ast.Module, bool]] = {
        name: (src.tree, src.is_package) for name, src in program.modules.items()
        if src.tree is not None
    }
    if include_external:
        for name, m in loaded.items():
            if name in graph.nodes:
                continue
            graph.add_node(ModuleNode(name, _external_kind(m.file), m.file, m.is_package, True))
            if m.file and m.file.endswith(".py"):
                tree = _parse_file(m.file)
                if tree is not None:
                    sources[name] = (tree, m.is_package)
    known |= set(graph.nodes)
    prefixes = [p for p in program.search_prefixes if p]

    def canonical(name: str | None) -> str | None:
        """The graph's name for module ``name`` (trying the script's folder first)."""
        if not name:
            return None
        if name in graph.nodes:
            return name
        for p in prefixes:
            if f"{p}.{name}" in graph.nodes:
                return f"{p}.{name}"
        return None

    for name, (tree, is_package) in sources.items():
        for site in import_sites(tree, name, is_package):
            for target in site.modules(frozenset(known)):
                full = canonical(target)
                if full is not None:
                    graph.add_edge(Dependency(name, full, site.context, site.line))
    for name in list(graph.nodes):
        parent = name.rpartition(".")[0]
        if parent and parent in graph.nodes:
            graph.add_edge(Dependency(name, parent, "package"))
    if records is not None:
        static = {(e.importer, e.imported) for e in graph.edges}
        for who, what in sorted(records.edges()):
            a, b = canonical(who), canonical(what)
            if a is None or b is None or (a, b) in static:
                continue
            graph.add_edge(Dependency(a, b, "runtime"))
    graph.finish()
    return graph


def _parse_file(path: str) -> ast.Module | None:
    try:
        data = Path(path).read_bytes()
        from memtrim.program import decode_source

        text, _ = decode_source(data)
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return ast.parse(text)
    except (OSError, SyntaxError, ValueError, UnicodeDecodeError, RecursionError):
        return None


def import_time_closure(graph: ModuleGraph, module: str) -> set[str]:
    """Modules importing ``module`` loads at import time (its top-level imports, transitively)."""
    seen = {module}
    todo = [module]
    while todo:
        m = todo.pop()
        for e in graph.edges:
            if e.importer == m and e.how in _IMPORT_TIME and e.imported not in seen:
                seen.add(e.imported)
                todo.append(e.imported)
    return seen

