"""Outlining (safe mode): cold code moves to a module loaded on first use; every input still works.

The fixture ``tests/fixtures/outline/constructs`` is profiled with its one
workload (``main.py none``: hot paths only).  Then each construct is run with an
input that was *not* profiled: the outlined program must print exactly what the
original prints, and it must really have run the outlined code (the fixture
reports the cold modules it loaded on stderr when ``SHOW_COLD`` is set).
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from memtrim.analysis.coverage_run import collect_coverage
from memtrim.analysis.deadcode import classify
from memtrim.analysis.effects import SideEffects
from memtrim.analysis.references import build_graph
from memtrim.app import App, Workload, load_app
from memtrim.edits import Edit
from memtrim.passes.outline import LineEdit, OutlinePass, apply_line_edits, split_lines
from memtrim.program import Program

PY = sys.executable
ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "fixtures" / "outline" / "constructs"
GATEWAY = ROOT / "examples" / "gateway"

# construct -> (argument of main.py, symbols that must be outlined, cold module it loads)
CONSTRUCTS = {
    "function": ("function", ["kit.funcs:cold_function"], "kit._memtrim_cold_funcs"),
    "generator": ("generator", ["kit.funcs:cold_gen"], "kit._memtrim_cold_funcs"),
    "async def": ("async", ["kit.funcs:cold_async"], "kit._memtrim_cold_funcs"),
    "nested function": ("nested", ["kit.funcs:outer_hot.<locals>.inner"],
                        "kit._memtrim_cold_funcs"),
    "closure": ("closure", ["kit.funcs:make_counter.<locals>.increment"],
                "kit._memtrim_cold_funcs"),
    "decorated": ("decorated", ["kit.funcs:cold_cached", "kit.funcs:cold_decorated"],
                  "kit._memtrim_cold_funcs"),
    "method": ("method", ["kit.classes:Shape.cold_method"], "kit._memtrim_cold_classes"),
    "staticmethod": ("staticmethod", ["kit.classes:Shape.cold_static"],
                     "kit._memtrim_cold_classes"),
    "classmethod": ("classmethod", ["kit.classes:Shape.cold_classmethod"],
                    "kit._memtrim_cold_classes"),
    "property": ("property", ["kit.classes:Shape.diagonal"], "kit._memtrim_cold_classes"),
    "class": ("class", ["kit.classes:Report.__init__", "kit.classes:Report.render",
                        "kit.classes:Report.__repr__"], "kit._memtrim_cold_classes"),
    "branch": ("branch", ["kit.flow:branch"], "kit._memtrim_cold_flow"),
    "try/except": ("except", ["kit.flow:guarded"], "kit._memtrim_cold_flow"),
    "match": ("match", ["kit.flow:matcher"], "kit._memtrim_cold_flow"),
    "loop body": ("loop", ["kit.flow:looper"], "kit._memtrim_cold_flow"),
    "module-level branch": ("module-branch", ["kit.flow"], "kit._memtrim_cold_flow"),
    "top-level module": ("toplevel", ["plainmod:cold_plain"], "_memtrim_cold_plainmod"),
    "entry script": ("main", ["main:cold_in_main"], "_memtrim_cold_main"),
}


def tree_hash(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*")) if p.is_file() and "__pycache__" not in p.parts
    }


def write_tree(src: Path, changes: dict[str, str], dest: Path) -> Path:
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns("__pycache__"))
    for rel, text in changes.items():
        (dest / rel).write_text(text, encoding="utf-8")
    return dest


def run_main(root: Path, arg: str, cwd: Path, show: bool = True,
             **env: str) -> subprocess.CompletedProcess:
    """Run the fixture; with ``show`` it lists the cold modules it loaded on stderr."""
    full = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", **env}
    full.pop("SHOW_COLD", None)
    if show:
        full["SHOW_COLD"] = "1"
    cwd.mkdir(parents=True, exist_ok=True)
    return subprocess.run([PY, str(root / "main.py"), arg], cwd=cwd, env=full,
                          capture_output=True, text=True, timeout=60)


@dataclass
class Outlined:
    program: Program
    edits: list[Edit]
    changes: dict[str, str]
    out: Path
    summary: dict
    passer: OutlinePass


@pytest.fixture(scope="module")
def outlined(tmp_path_factory: pytest.TempPathFactory) -> Outlined:
    before = tree_hash(FIXTURE)
    app = load_app(FIXTURE / "memtrim.toml")
    cov = collect_coverage(app, python=PY)
    program = Program.load(app.root, entry=app.script)
    report = classify(program, cov)
    pg = build_graph(program)
    passer = OutlinePass(entry_script="main.py")
    edits = passer.run(program, report, pg, SideEffects(pg.resolver))
    changes = passer.apply(program, edits)
    out = write_tree(FIXTURE, changes, tmp_path_factory.mktemp("outline") / "tree")
    assert tree_hash(FIXTURE) == before, "the input tree was modified"
    return Outlined(program, edits, changes, out, passer.summary.to_dict(), passer)


@pytest.mark.parametrize("construct", list(CONSTRUCTS))
def test_outlined_construct_still_works_for_an_unprofiled_input(
    outlined: Outlined, construct: str, tmp_path: Path
) -> None:
    arg, symbols, cold_module = CONSTRUCTS[construct]
    outlined_symbols = {e.symbol for e in outlined.edits if e.kind.startswith("outline-")}
    for symbol in symbols:
        assert symbol in outlined_symbols, f"{symbol} was not outlined: {outlined.summary}"
    env = {"KIT_LEGACY": "1"} if arg == "module-branch" else {}
    original = run_main(FIXTURE, arg, tmp_path / "a", **env)
    result = run_main(outlined.out, arg, tmp_path / "b", **env)
    assert original.returncode == 0, original.stderr
    assert result.returncode == 0, result.stderr
    assert result.stdout == original.stdout
    # the original loads no cold module; the outlined program did run the outlined code
    assert original.stderr.strip() == "[]"
    assert cold_module in json.loads(result.stderr.strip().replace("'", '"'))


def test_profiled_workload_loads_no_cold_code(outlined: Outlined, tmp_path: Path) -> None:
    original = run_main(FIXTURE, "none", tmp_path / "a")
    result = run_main(outlined.out, "none", tmp_path / "b")
    assert result.stdout == original.stdout and result.returncode == 0
    assert result.stderr.strip() == "[]", "a profiled path loaded cold code"
    # every file that got stubs has its cold module next to it
    assert sorted(p for p in outlined.changes if "_memtrim_cold_" in p) == [
        "_memtrim_cold_main.py", "_memtrim_cold_plainmod.py", "kit/_memtrim_cold_classes.py",
        "kit/_memtrim_cold_flow.py", "kit/_memtrim_cold_funcs.py",
    ]


def test_imports_read_only_by_cold_code_move_with_it(outlined: Outlined) -> None:
    moved = {e.symbol: e for e in outlined.edits if e.kind == "outline-import"}
    assert set(moved) == {"kit.funcs:textwrap", "kit.classes:math"}
    funcs = outlined.changes["kit/funcs.py"]
    assert "import textwrap" not in funcs and "import functools" in funcs
    cold = outlined.changes["kit/_memtrim_cold_funcs.py"]
    assert "import textwrap as value" in cold
    assert moved["kit.funcs:textwrap"].evidence["depends_on"] == [
        "outline:function:kit/funcs.py:14:cold_function"]


_METADATA = textwrap.dedent("""\
    import inspect, json, pickle, sys
    sys.path.insert(0, sys.argv[1])
    from kit import classes, funcs
    import plainmod
    out = {}
    for name, f in [("cold_function", funcs.cold_function), ("cold_gen", funcs.cold_gen),
                    ("cold_async", funcs.cold_async), ("cold_cached", funcs.cold_cached),
                    ("cold_decorated", funcs.cold_decorated), ("cold_plain", plainmod.cold_plain),
                    ("cold_method", classes.Shape.cold_method),
                    ("cold_static", classes.Shape.cold_static),
                    ("render", classes.Report.render), ("init", classes.Report.__init__)]:
        g = getattr(f, "__wrapped__", f)
        out[name] = {
            "name": f.__name__, "qualname": f.__qualname__, "module": f.__module__,
            "doc": f.__doc__, "signature": str(inspect.signature(f)),
            "generator": inspect.isgeneratorfunction(f),
            "coroutine": inspect.iscoroutinefunction(f),
            "defaults": repr(getattr(g, "__defaults__", None)),
            "kwdefaults": repr(getattr(g, "__kwdefaults__", None)),
            "wrapped": getattr(getattr(f, "__wrapped__", None), "__qualname__", None),
            "firstlineno": g.__code__.co_firstlineno,
            "pickles_by_reference": pickle.loads(pickle.dumps(f)) is f,
        }
    prop = classes.Shape.diagonal
    out["property"] = [prop.fget.__qualname__, prop.fset.__qualname__, prop.__doc__]
    out["classmethod"] = type(classes.Shape.__dict__["cold_classmethod"]).__name__
    out["staticmethod"] = type(classes.Shape.__dict__["cold_static"]).__name__
    print(json.dumps(out, sort_keys=True))
""")


def test_stubs_keep_name_signature_kind_and_identity(outlined: Outlined, tmp_path: Path) -> None:
    def metadata(root: Path) -> dict:
        proc = subprocess.run([PY, "-c", _METADATA, str(root)], capture_output=True, text=True,
                              timeout=60, cwd=tmp_path,
                              env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    original, result = metadata(FIXTURE), metadata(outlined.out)
    assert result == original
    assert original["cold_gen"]["generator"] and original["cold_async"]["coroutine"]
    assert original["cold_function"]["defaults"] == "(10,)"


def test_every_remaining_line_keeps_its_number(outlined: Outlined) -> None:
    for rel, text in outlined.changes.items():
        if "_memtrim_cold_" in rel:
            continue
        before = (FIXTURE / rel).read_text(encoding="utf-8")
        assert len(split_lines(text)) == len(split_lines(before)), rel
        old = {(n.lineno, n.name) for n in ast.walk(ast.parse(before))
               if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
        new = {(n.lineno, n.name) for n in ast.walk(ast.parse(text))
               if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
        # every def that still exists is where it was (nested defs moved with their body)
        assert new <= old, rel


def test_cold_module_mirrors_line_numbers(outlined: Outlined) -> None:
    cold = outlined.changes["kit/_memtrim_cold_classes.py"].splitlines()
    original = (FIXTURE / "kit" / "classes.py").read_text(encoding="utf-8").splitlines()
    line = next(i for i, s in enumerate(original) if "def render(self):" in s)
    assert cold[line] == original[line]
    body = next(i for i, s in enumerate(original) if "head = super().describe()" in s)
    assert cold[body] == original[body]


def test_any_subset_of_edits_applies(outlined: Outlined, tmp_path: Path) -> None:
    rng = random.Random(7)
    edits = outlined.edits
    reference = run_main(FIXTURE, "none", tmp_path / "ref")
    for i in range(6):
        subset = [e for e in edits if rng.random() < 0.5]
        changes = outlined.passer.apply(outlined.program, subset)  # compiles or raises
        tree = write_tree(FIXTURE, changes, tmp_path / f"t{i}")
        assert run_main(tree, "none", tmp_path / f"r{i}").stdout == reference.stdout
        for arg in ("function", "class", "branch"):
            assert run_main(tree, arg, tmp_path / f"r{i}{arg}").stdout == run_main(
                FIXTURE, arg, tmp_path / f"o{i}{arg}").stdout
    # an import whose readers are not outlined stays where it is
    imports_only = [e for e in edits if e.kind == "outline-import"]
    assert outlined.passer.apply(outlined.program, imports_only) == {}


def test_line_edits_keep_line_count_and_endings() -> None:
    text = "a = 1\r\nb = 2\r\nc = 3\r\nd = 4"
    new = apply_line_edits(text, [LineEdit(2, 3, ("x = 9",))])
    assert new == "a = 1\r\nx = 9\r\n\r\nd = 4"
    assert len(split_lines(new)) == 4
    # a form feed is not a line end for Python: line numbers must not shift
    assert len(split_lines("a = 1\n\x0cb = 2\n")) == 2


# -- what outlining leaves alone ------------------------------------------------------------


def _small_app(root: Path, body: str) -> App:
    root.mkdir(parents=True)
    (root / "app.py").write_text(textwrap.dedent(body), encoding="utf-8")
    return App(root=root, script=root / "app.py", workloads=(Workload(name="w"),))


def _outline(app: App, **kw) -> tuple[OutlinePass, list[Edit]]:
    cov = collect_coverage(app, python=PY)
    program = Program.load(app.root, entry=app.script)
    pg = build_graph(program)
    passer = OutlinePass(entry_script="app.py", **kw)
    return passer, passer.run(program, classify(program, cov), pg, SideEffects(pg.resolver))


def _line(app: App, needle: str) -> int:
    text = (app.root / "app.py").read_text(encoding="utf-8")
    return next(i for i, s in enumerate(text.splitlines(), 1) if needle in s)


def test_frame_users_async_generators_keep_list_and_foreign_decorators_stay(
    tmp_path: Path,
) -> None:
    app = _small_app(tmp_path / "app", """\
        import functools
        import reprlib
        import sys


        def peek():
            frame = sys._getframe(1)
            name = frame.f_code.co_name
            return name


        async def agen():
            for i in range(3):
                yield i
            return


        def kept():  # memtrim: keep
            x = 1
            y = 2
            return x + y


        def listed():
            x = 1
            y = 2
            return x + y


        @functools.cache
        def known():
            x = 1
            y = 2
            return x + y


        @reprlib.recursive_repr()
        def foreign():
            x = 1
            y = 2
            return x + y


        def plain():
            x = 1
            y = 2
            return x + y


        print("hot")
        """)
    passer, edits = _outline(app, keep=["app:listed"])
    assert {e.symbol for e in edits} == {"app:plain", "app:known"}
    why = passer.summary.rejected
    assert "_getframe" in why[f"app.py:{_line(app, 'def peek')}"]
    assert "async generator" in why[f"app.py:{_line(app, 'async def agen')}"]
    assert "keep" in why[f"app.py:{_line(app, 'def kept')}"]
    assert "keep-list" in why[f"app.py:{_line(app, 'def listed')}"]
    assert "outside the program" in why[f"app.py:{_line(app, '@reprlib')}"]


def test_blocks_that_cannot_move_safely_are_rejected(tmp_path: Path) -> None:
    app = _small_app(tmp_path / "app", """\
        def uses_locals(flag):
            a = 1
            if flag:
                b = a + 1
                c = b + 1
                d = c + 1
                print(locals())
            return a


        def maybe_unbound(flag, other):
            if other:
                v = 1
            if flag:
                w = v + 1
                w = w + 1
                w = w + 1
                print(w)
            return 0


        def escaping_closure(flag):
            n = 1
            if flag:
                f = lambda: n
                g = f
                h = g
                h()
            n = 2
            return n


        def fine(flag):
            n = 1
            if flag:
                m = n + 1
                m = m * 2
                m = m - 1
                m = m + 3
                n = m
            return n


        uses_locals(False)
        maybe_unbound(False, False)
        escaping_closure(False)
        fine(False)
        """)
    passer, edits = _outline(app, min_block_lines=3)
    assert [e.symbol for e in edits] == ["app:fine"]
    assert edits[0].evidence["inputs"] == ["n"] and edits[0].evidence["outputs"] == ["n"]
    why = passer.summary.rejected
    assert "locals()" in why[f"app.py:{_line(app, 'b = a + 1')}"]
    assert "unbound" in why[f"app.py:{_line(app, 'w = v + 1')}"]
    assert "closes over" in why[f"app.py:{_line(app, 'f = lambda: n')}"]


# -- end to end: the gateway example ----------------------------------------------------------


@pytest.mark.slow
def test_gateway_safe_mode_profiled_on_normal_serves_malformed_identically(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from memtrim import pipeline
    from memtrim.passes.outline import OutlineStep
    from memtrim.passes.specialize import UnreachableCodeStep
    from memtrim.verify import record_oracle, verify

    before = tree_hash(GATEWAY)
    full = load_app(GATEWAY / "memtrim.toml")
    normal_only = replace(full, workloads=tuple(w for w in full.workloads if w.name == "normal"))
    outline = OutlineStep()
    monkeypatch.setattr(pipeline, "all_steps", lambda req: [
        pipeline.StaticRemovalStep(), UnreachableCodeStep(), outline])
    out = tmp_path / "out"
    report = pipeline.optimize(pipeline.OptimizeRequest(
        app=normal_only, outdir=out, details=False, oracle_repeat=1))
    step = next(s for s in report["steps"] if s["name"] == "outline")
    assert step["kept_step"], step.get("why_not_kept")
    assert step["gain"]["normal"]["reduction_pct"] >= 1.0
    assert any(p.name.startswith("_memtrim_cold_") for p in (out / "gateway").iterdir())
    groups = outline.summary["groups"]["modules"]
    assert groups["gateway/alerts.py"]["kept"]  # smtplib and email are no longer loaded
    # the input that was not profiled: identical behaviour (exit 2, every output file)
    malformed = replace(full, workloads=tuple(w for w in full.workloads if w.name == "malformed"))
    oracle = record_oracle(malformed, python=PY, repeat=1)
    result = verify(malformed.relocated(out), oracle, python=PY)
    assert result.ok, [d.summary() for d in result.all_differences()]
    assert tree_hash(GATEWAY) == before


@pytest.mark.slow
def test_gateway_every_outline_applied_serves_malformed_from_cold_code(tmp_path: Path) -> None:
    """Without the gain filter the malformed input runs outlined code (the rejection handler)."""
    from memtrim.verify import record_oracle, verify

    full = load_app(GATEWAY / "memtrim.toml")
    cov = collect_coverage(full, python=PY, workloads=["normal"])
    program = Program.load(full.root, entry=full.script)
    pg = build_graph(program)
    passer = OutlinePass(entry_script="run.py")
    edits = passer.run(program, classify(program, cov), pg, SideEffects(pg.resolver))
    assert "outline:block:gateway/validate.py:84:Validator.run" in {e.id for e in edits}
    out = write_tree(GATEWAY, passer.apply(program, edits), tmp_path / "out")
    oracle = record_oracle(full, python=PY, repeat=1)
    result = verify(full.relocated(out), oracle, python=PY)
    assert result.ok, [d.summary() for d in result.all_differences()]
    # the malformed workload really went through the outlined handler
    wl = next(w for w in full.workloads if w.name == "malformed").expand(out)
    (tmp_path / "cwd").mkdir()
    proc = subprocess.run([PY, "-X", "importtime", str(out / "run.py"), *wl.args],
                          cwd=tmp_path / "cwd", capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    assert proc.returncode == 2
    assert "gateway._memtrim_cold_validate" in proc.stderr
    assert "smtplib" not in proc.stderr and "http.client" not in proc.stderr


def test_crlf_tabs_package_init_nested_class_and_module_entry(tmp_path: Path) -> None:
    """Odd layouts: CRLF and tab indentation, a package __init__, a class inside a function
    whose method uses super(), duplicated names (a property and its setter), a -m entry."""
    root = tmp_path / "app"
    (root / "pkg").mkdir(parents=True)
    init = (
        "def hot():\r\n\treturn 1\r\n\r\n\r\n"
        "def cold(x):\r\n\t\"\"\"Doc.\"\"\"\r\n\ty = x + 1\r\n\ty = y * 2\r\n"
        "\tif y > 100:\r\n\t\treturn -1\r\n\treturn y\r\n"
    )
    (root / "pkg" / "__init__.py").write_bytes(init.encode())
    (root / "pkg" / "__main__.py").write_text(textwrap.dedent("""\
        import sys

        import pkg


        def factory(n):
            class Base:
                def hello(self):
                    return "base"

            class Child(Base):
                def hello(self):
                    inner = super().hello()
                    inner = inner.upper()
                    return f"{inner}:{n}"

                @property
                def value(self):
                    v = n * 2
                    v = v + 1
                    return v

                @value.setter
                def value(self, new):
                    global LAST
                    LAST = new
                    LAST = LAST * 1

            return Child


        LAST = None
        cls = factory(3)
        if sys.argv[1:] == ["cold"]:
            c = cls()
            c.value = 9
            print(pkg.cold(4), c.hello(), c.value, LAST)
        else:
            print(pkg.hot(), cls.__name__)
        """), encoding="utf-8")
    app = App(root=root, module="pkg", workloads=(Workload(name="w"),))
    cov = collect_coverage(app, python=PY)
    program = Program.load(app.root, module="pkg")
    pg = build_graph(program)
    passer = OutlinePass()
    edits = passer.run(program, classify(program, cov), pg, SideEffects(pg.resolver))
    symbols = {e.symbol for e in edits}
    assert {"pkg:cold", "pkg.__main__:factory.<locals>.Child.hello",
            "pkg.__main__:factory.<locals>.Child.value"} <= symbols, passer.summary.rejected
    changes = passer.apply(program, edits)
    assert "pkg/_memtrim_cold___init__.py" in changes
    assert b"\r\n" in changes["pkg/__init__.py"].encode()  # line endings kept
    out = write_tree(root, {}, tmp_path / "out")
    for rel, text in changes.items():
        (out / rel).write_bytes(text.encode())

    def run(r: Path, *args: str) -> str:
        proc = subprocess.run([PY, "-m", "pkg", *args], cwd=r, capture_output=True, text=True,
                              env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}, timeout=60)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    assert run(out, "cold") == run(root, "cold") == "10 BASE:3 7 9\n"
    assert run(out) == run(root)
