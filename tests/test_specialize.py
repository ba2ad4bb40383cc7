"""Specialize mode: the paper's removal of dead and branch code, valid for the profiled inputs only.

The same fixture as tests/test_outline.py: specialize mode deletes the code that
safe mode outlines.  The profiled workload still behaves identically; an input
that was not profiled now fails loudly (``RuntimeError: memtrim specialize ...``).
"""

from __future__ import annotations

import ast
import inspect
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from test_outline import CONSTRUCTS, FIXTURE, GATEWAY, run_main, tree_hash, write_tree

from memtrim.analysis.coverage_run import collect_coverage
from memtrim.analysis.deadcode import classify
from memtrim.analysis.effects import SideEffects
from memtrim.analysis.references import build_graph
from memtrim.app import App, Workload, load_app
from memtrim.edits import Edit
from memtrim.passes.outline import OutlinePass
from memtrim.passes.specialize import WARNING, SpecializePass, UnreachableCodeStep
from memtrim.program import Program

PY = sys.executable


@dataclass
class Specialized:
    program: Program
    edits: list[Edit]
    outline_edits: list[Edit]
    out: Path
    summary: dict


@pytest.fixture(scope="module")
def specialized(tmp_path_factory: pytest.TempPathFactory) -> Specialized:
    before = tree_hash(FIXTURE)
    app = load_app(FIXTURE / "memtrim.toml")
    cov = collect_coverage(app, python=PY)
    program = Program.load(app.root, entry=app.script)
    report = classify(program, cov)
    pg = build_graph(program)
    effects = SideEffects(pg.resolver)
    # main.exercise dispatches on the (unprofiled) argument: keep it, so that each input
    # reaches the construct it is about
    spec = SpecializePass(entry_script="main.py", keep=["main:exercise"])
    edits = spec.run(program, report, pg, effects)
    outline_edits = OutlinePass(entry_script="main.py").run(program, report, pg, effects)
    changes = spec.apply(program, edits)
    out = write_tree(FIXTURE, changes, tmp_path_factory.mktemp("specialize") / "tree")
    assert tree_hash(FIXTURE) == before
    return Specialized(program, edits, outline_edits, out, spec.summary)


def _target(e: Edit) -> tuple[str, int]:
    return e.path, e.line


@pytest.mark.parametrize("construct", list(CONSTRUCTS))
def test_specialize_deletes_what_safe_mode_outlines(
    specialized: Specialized, construct: str, tmp_path: Path
) -> None:
    arg, symbols, _cold = CONSTRUCTS[construct]
    outlined = {_target(e) for e in specialized.outline_edits
                if e.symbol in symbols and e.kind != "outline-import"}
    removed = {_target(e) for e in specialized.edits if e.symbol in symbols}
    assert outlined, construct
    assert outlined <= removed, f"{construct}: outlined {outlined}, removed {removed}"
    env = {"KIT_LEGACY": "1"} if arg == "module-branch" else {}
    original = run_main(FIXTURE, arg, tmp_path / "a", show=False, **env)
    result = run_main(specialized.out, arg, tmp_path / "b", show=False, **env)
    assert original.returncode == 0
    # the input that was not profiled now hits the removed construct, and says so
    assert result.returncode == 1
    assert "RuntimeError: memtrim specialize:" in result.stderr
    assert "profiled inputs" in result.stderr
    module = symbols[0].partition(":")[0]
    assert f"specialize: {module}:" in result.stderr, result.stderr[-400:]


def test_profiled_workload_unchanged(specialized: Specialized, tmp_path: Path) -> None:
    original = run_main(FIXTURE, "none", tmp_path / "a", show=False)
    result = run_main(specialized.out, "none", tmp_path / "b", show=False)
    assert (result.returncode, result.stdout) == (original.returncode, original.stdout)
    # SHOW_COLD was not set when profiling: its branch went too (specialized, loudly)
    shown = run_main(specialized.out, "none", tmp_path / "c", show=True)
    assert shown.returncode == 1 and "memtrim specialize" in shown.stderr


def test_imports_only_removed_code_read_are_deleted(specialized: Specialized) -> None:
    kinds = {e.symbol: e.kind for e in specialized.edits if e.kind == "specialize-import"}
    assert {"kit.funcs:textwrap", "kit.classes:math"} <= set(kinds)
    text = (specialized.out / "kit" / "funcs.py").read_text(encoding="utf-8")
    assert "import textwrap" not in text
    assert "import functools" in text  # the decorators still need it


def test_summary_says_valid_only_for_profiled_inputs(specialized: Specialized) -> None:
    assert specialized.summary["warning"] == WARNING
    assert "ONLY" in WARNING and "profiled" in WARNING
    assert 0 < specialized.summary["removed_fraction"] < 1


def test_line_numbers_kept(specialized: Specialized) -> None:
    for p in (specialized.out / "kit").glob("*.py"):
        before = (FIXTURE / "kit" / p.name).read_text(encoding="utf-8")
        assert len(p.read_text(encoding="utf-8").splitlines()) == len(before.splitlines())


# -- what specialization keeps -----------------------------------------------------------------


def _app(root: Path, body: str, workloads=("w",)) -> App:
    root.mkdir(parents=True)
    (root / "app.py").write_text(textwrap.dedent(body), encoding="utf-8")
    return App(root=root, script=root / "app.py",
               workloads=tuple(Workload(name=w) for w in workloads))


def _specialize(app: App) -> tuple[SpecializePass, list[Edit], dict[str, str], Program]:
    cov = collect_coverage(app, python=PY)
    program = Program.load(app.root, entry=app.script)
    pg = build_graph(program)
    spec = SpecializePass(entry_script="app.py")
    edits = spec.run(program, classify(program, cov), pg, SideEffects(pg.resolver))
    return spec, edits, spec.apply(program, edits), program


GUARDED = """\
    REGISTRY = {}


    def register(name):
        def deco(fn):
            REGISTRY[name] = fn
            return fn
        return deco


    @register("csv")
    def export_csv(rows):
        out = []
        for r in rows:
            out.append(",".join(r))
        return out


    class Commands:
        def run(self, name):
            return getattr(self, "cmd_" + name)()

        def cmd_hello(self):
            return "hello"

        def cmd_goodbye(self):
            words = ["good", "bye"]
            text = "".join(words)
            return text


    class Seen:
        def __init__(self):
            self.n = 1

        def __repr__(self):
            text = "Seen"
            return text


    class Unused:
        def __init__(self):
            self.n = 2

        def __repr__(self):
            text = "Unused"
            return text


    def kept():  # memtrim: keep
        a = 1
        b = 2
        return a + b


    def gone():
        a = 1
        b = 2
        return a + b


    print(Commands().run("hello"), Seen().n)
    """


def test_guards_registries_getattr_dunders_and_keep_comments_are_honoured(tmp_path: Path) -> None:
    spec, edits, changes, _ = _specialize(_app(tmp_path / "app", GUARDED))
    removed = {e.symbol for e in edits if e.kind == "specialize-function"}
    assert "app:gone" in removed
    assert "app:Unused.__repr__" in removed and "app:Unused.__init__" in removed
    # a registering decorator, a getattr dispatch, an instantiated class's dunder, a keep comment
    for kept in ("app:export_csv", "app:Commands.cmd_goodbye", "app:Seen.__repr__", "app:kept"):
        assert kept not in removed, kept
    why = " | ".join(spec.skipped.values())
    assert "may register" in why and "cmd_" in why and "instantiated" in why and "keep" in why
    # safe mode may outline the getattr-dispatched method: its name stays, so dispatch works
    text = changes["app.py"]
    assert "def cmd_goodbye(self):" in text


def test_generators_stay_generators(tmp_path: Path) -> None:
    app = _app(tmp_path / "app", """\
        def never():
            while False:
                yield 1


        def early():
            return
            yield 2


        def cold_gen():
            for i in range(3):
                yield i


        print(list(never()), list(early()))
        """)
    _spec, edits, changes, program = _specialize(app)
    text = changes["app.py"]
    ns: dict = {}
    exec(compile(text.replace("print(", "(print,")[: text.index("print(")], "app", "exec"), ns)
    for name in ("never", "early", "cold_gen"):
        assert inspect.isgeneratorfunction(ns[name]), name
    assert any(e.symbol == "app:cold_gen" for e in edits)
    # the only yield of early() is unreachable code: the static step must leave it
    ctx = type("Ctx", (), {"app": app, "request": type("R", (), {"keep": ()})()})()
    step = UnreachableCodeStep()
    assert step.run(program, ctx) == []
    assert "generator" in " ".join(step.skipped.values())


def test_unreachable_code_step_keeps_scopes(tmp_path: Path) -> None:
    app = _app(tmp_path / "app", """\
        x = "global"


        def shadow():
            try:
                print(x)
            except UnboundLocalError:
                print("unbound")
            return
            x = 1


        def window(ts):
            return ts - ts % 60
            offset = 3600
            return (ts + offset) - (ts + offset) % 60 - offset


        shadow()
        print(window(125))
        """)
    program = Program.load(app.root, entry=app.script)
    ctx = type("Ctx", (), {"app": app, "request": type("R", (), {"keep": ()})()})()
    step = UnreachableCodeStep()
    edits = step.run(program, ctx)
    assert [e.symbol for e in edits] == ["app:window"]  # removing `x = 1` would make x global
    assert "global" in " ".join(step.skipped.values())
    text = step.apply(program, edits)["app.py"]
    assert "offset" not in text
    tree = ast.parse(text)
    window = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "window")
    assert len(window.body) == 1


@pytest.mark.slow
def test_gateway_specialized_on_normal_verifies_and_shrinks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from memtrim import pipeline
    from memtrim.passes.specialize import SpecializeStep

    full = load_app(GATEWAY / "memtrim.toml")
    normal = replace(full, workloads=tuple(w for w in full.workloads if w.name == "normal"),
                     mode="specialize")
    step = SpecializeStep()
    monkeypatch.setattr(pipeline, "all_steps", lambda req: [pipeline.StaticRemovalStep(), step])
    out = tmp_path / "out"
    report = pipeline.optimize(pipeline.OptimizeRequest(
        app=normal, outdir=out, details=False, oracle_repeat=1))
    entry = next(s for s in report["steps"] if s["name"] == "specialize")
    assert entry["kept_step"] and not entry["dropped"]
    assert entry["gain"]["normal"]["reduction_pct"] >= 5
    assert step.summary["warning"] == WARNING
    # the unprofiled malformed input now reaches removed code
    wl = next(w for w in full.workloads if w.name == "malformed").expand(out)
    (tmp_path / "cwd").mkdir()
    proc = subprocess.run([PY, str(out / "run.py"), *wl.args], cwd=tmp_path / "cwd",
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    assert proc.returncode == 1 and "memtrim specialize" in proc.stderr
