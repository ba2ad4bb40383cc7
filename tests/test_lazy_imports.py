"""Lazy imports: real packages, real subprocesses, the semantics the issue asks for.

A tiny application with a package whose ``heavy`` submodule is costly; the pass
runs on a copy, and the rewritten copy is run as a subprocess and compared
with the original.  Each test checks one promise: the heavy module is not
loaded until used, ``from m import name`` gives the very object, an import
error surfaces at first use with its own traceback, side-effect imports stay
eager, ``TYPE_CHECKING`` and deferred annotations load nothing, threads racing
on the first use get one module and one object, every subset of edits applies.
"""

from __future__ import annotations

import ast
import itertools
import random
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from memtrim.analysis.modgraph import record_imports
from memtrim.app import App, Workload
from memtrim.passes._lazy_template import HELPER_MODULE
from memtrim.passes.lazy_imports import (
    LazyImportPass,
    apply_lazy_edits,
    module_effects,
    refine_edits,
)
from memtrim.program import Program

FILES = {
    "app.py": '''
        import sys
        import pkg
        from pkg import light_fn

        def main(argv):
            print("light", light_fn(3))
            if "--heavy" in argv:
                print("heavy", pkg.heavy_fn(2))
            if "--dep" in argv:
                from pkg.tools import use_dep
                print("dep", use_dep())
            print("loaded heavy:", "pkg.heavy" in sys.modules)
            print("registry:", pkg.REGISTRY)
            return 0

        if __name__ == "__main__":
            sys.exit(main(sys.argv[1:]))
    ''',
    "pkg/__init__.py": '''
        """A package that re-exports eagerly, as most do."""
        from .registry import REGISTRY
        from . import _plugin  # noqa: F401  - imported for its side effect
        from .heavy import HeavyThing, heavy_fn
        from .light import light_fn

        __all__ = ["HeavyThing", "heavy_fn", "light_fn", "REGISTRY"]
    ''',
    "pkg/registry.py": '''
        REGISTRY = []
    ''',
    "pkg/_plugin.py": '''
        from .registry import REGISTRY
        REGISTRY.append("plugin")
    ''',
    "pkg/heavy.py": '''
        """Costly to import: a big table built at import time (slow enough to race on)."""
        TABLE = [i * i for i in range(1_000_000)]
        LOADS = []
        LOADS.append(1)

        class HeavyThing:
            pass

        def heavy_fn(x):
            return x * len(TABLE)
    ''',
    "pkg/light.py": '''
        from __future__ import annotations

        from typing import TYPE_CHECKING

        from pkg.annotated import Annotated  # only in annotations

        if TYPE_CHECKING:
            from pkg.heavy import HeavyThing

        def light_fn(x: int, thing: HeavyThing | None = None) -> Annotated | int:
            """Double it."""
            return 2 * x
    ''',
    "pkg/annotated.py": '''
        class Annotated:
            pass
    ''',
    "pkg/tools.py": '''
        from pkg.dep import value

        def use_dep():
            """Use the dependency."""
            return value()
    ''',
    "pkg/dep.py": '''
        import os
        if os.environ.get("BREAK_DEP"):
            raise ImportError("dep is broken")  # the original traceback points here

        def value():
            return 42
    ''',
}


def make_tree(root: Path, files: dict[str, str] = FILES) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return root


def make_app(root: Path, *args: tuple[str, ...]) -> App:
    workloads = tuple(Workload(name=f"w{i}", args=a) for i, a in enumerate(args or [()]))
    return App(root=root, script=root / "app.py", workloads=workloads)


def run(root: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    import os

    return subprocess.run(
        [sys.executable, str(root / "app.py"), *args], capture_output=True, text=True,
        cwd=root, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1", **(env or {})},
        timeout=60,
    )


def lazify(tmp_path: Path, *args: tuple[str, ...], files=FILES):
    """The original tree, the rewritten copy, the edits and the pass."""
    src = make_tree(tmp_path / "orig", files)
    app = make_app(src, *args)
    records = record_imports(app, main_name="app")
    assert not records.failures
    program = Program.load(src, entry=src / "app.py")
    p = LazyImportPass(records)
    edits = p.run(program)
    out = tmp_path / "lazy"
    shutil.copytree(src, out)
    for rel, text in apply_lazy_edits(program, edits).items():
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_text(text, encoding="utf-8")
    return src, out, edits, p, program


@pytest.fixture(scope="module")
def lazy_tree(tmp_path_factory):
    return lazify(tmp_path_factory.mktemp("lazy"), ("--heavy",), ())


def test_heavy_module_not_loaded_until_used(lazy_tree) -> None:
    src, out, edits, _, _ = lazy_tree
    before, after = run(src), run(out)
    assert before.returncode == after.returncode == 0, after.stderr
    assert "loaded heavy: True" in before.stdout
    assert "loaded heavy: False" in after.stdout
    # and when it is used, the output is the original's
    assert run(src, "--heavy").stdout == run(out, "--heavy").stdout
    assert any(e.symbol == "pkg:heavy_fn" for e in edits)


def test_side_effect_import_stays_eager(lazy_tree) -> None:
    src, out, edits, _, _ = lazy_tree
    assert "registry: ['plugin']" in run(out).stdout
    assert not any(e.symbol == "pkg:_plugin" for e in edits)
    assert "from . import _plugin" in (out / "pkg/__init__.py").read_text()


def test_from_import_gets_the_same_object(lazy_tree) -> None:
    _, out, _, _, _ = lazy_tree
    code = (
        "import sys; sys.path.insert(0, '.')\n"
        "from pkg import HeavyThing, heavy_fn\n"
        "import pkg, pkg.heavy\n"
        "assert HeavyThing is pkg.heavy.HeavyThing is pkg.HeavyThing\n"
        "assert heavy_fn is pkg.heavy.heavy_fn\n"
        "assert isinstance(pkg.heavy.HeavyThing(), HeavyThing)\n"
        "from pkg import *\n"
        "assert light_fn(1) == 2 and REGISTRY == ['plugin']\n"
        "assert 'heavy_fn' in dir(pkg)\n"
        "print('ok')\n"
    )
    res = subprocess.run([sys.executable, "-c", code], cwd=out, capture_output=True, text=True)
    assert res.stdout.strip() == "ok", res.stderr


def test_type_checking_and_annotations_do_not_load(lazy_tree) -> None:
    _, out, _, _, _ = lazy_tree
    code = (
        "import sys; sys.path.insert(0, '.')\n"
        "import pkg.light\n"
        "print(pkg.light.light_fn(2), 'pkg.annotated' in sys.modules,"
        " 'pkg.heavy' in sys.modules)\n"
    )
    res = subprocess.run([sys.executable, "-c", code], cwd=out, capture_output=True, text=True)
    assert res.stdout.split() == ["4", "False", "False"], res.stderr
    assert "from pkg.annotated import Annotated" not in (out / "pkg/light.py").read_text()


def test_import_error_surfaces_at_first_use_with_original_traceback(tmp_path: Path) -> None:
    src, out, _, _, _ = lazify(tmp_path, ("--dep",))
    assert "dep 42" in run(out, "--dep").stdout and "dep 42" in run(src, "--dep").stdout
    # the dependency breaks after optimization: the original fails at import time,
    # the lazy copy only when the function that needs it runs
    broken = run(out, env={"BREAK_DEP": "1"})
    assert broken.returncode == 0, broken.stderr
    failing = run(out, "--dep", env={"BREAK_DEP": "1"})
    assert failing.returncode != 0
    assert "ImportError: dep is broken" in failing.stderr
    assert str(Path("pkg") / "dep.py") in failing.stderr  # the failing module's own frame
    assert 'raise ImportError("dep is broken")' in failing.stderr
    assert "in use_dep" in failing.stderr  # raised at first use


def test_threads_racing_on_first_use_get_one_module_and_one_object(lazy_tree) -> None:
    _, out, _, _, _ = lazy_tree
    code = textwrap.dedent("""
        import sys, threading
        sys.path.insert(0, '.')
        import pkg
        got, barrier = [], threading.Barrier(8)
        def worker():
            barrier.wait()
            got.append(pkg.heavy_fn)
        threads = [threading.Thread(target=worker) for _ in range(8)]
        for t in threads: t.start()
        for t in threads: t.join()
        import pkg.heavy
        print(len(got), len({id(f) for f in got}), pkg.heavy.LOADS, got[0] is pkg.heavy.heavy_fn)
    """)
    res = subprocess.run([sys.executable, "-c", code], cwd=out, capture_output=True, text=True)
    assert res.stdout.split() == ["8", "1", "[1]", "True"], res.stderr


def test_every_subset_of_edits_applies(lazy_tree) -> None:
    src, _, edits, _, program = lazy_tree
    assert len(edits) >= 4
    rng = random.Random(7)
    subsets = [list(c) for n in (1, 2) for c in itertools.combinations(edits, n)]
    subsets += [rng.sample(edits, rng.randrange(1, len(edits) + 1)) for _ in range(20)]
    for subset in subsets:
        for rel, text in apply_lazy_edits(program, subset).items():
            compile(text, rel, "exec")
            if rel != f"{HELPER_MODULE}.py":
                assert text.count("\n") == (src / rel).read_text().count("\n"), rel


def test_function_local_import_keeps_line_numbers(tmp_path: Path) -> None:
    src, out, _, _, _ = lazify(tmp_path, ("--dep",))
    before = (src / "pkg/tools.py").read_text().splitlines()
    after = (out / "pkg/tools.py").read_text().splitlines()
    assert len(before) == len(after)
    # the docstring stays the function's docstring; the import follows it on its line
    assert after[3].strip() == '"""Use the dependency."""; from pkg.dep import value'
    fn = ast.parse("\n".join(after)).body[-1]
    assert ast.get_docstring(fn) == "Use the dependency."


def test_input_tree_is_never_written(tmp_path: Path) -> None:
    src = make_tree(tmp_path / "orig")
    snapshot = {p: p.read_bytes() for p in src.rglob("*") if p.is_file()}
    app = make_app(src)
    records = record_imports(app, main_name="app")
    program = Program.load(src, entry=src / "app.py")
    apply_lazy_edits(program, LazyImportPass(records).run(program))
    assert {p: p.read_bytes() for p in src.rglob("*") if p.is_file()} == snapshot


def test_dynamic_namespace_is_left_alone(tmp_path: Path) -> None:
    files = dict(FILES)
    files["pkg/light.py"] = '''
        from pkg.annotated import Annotated

        def light_fn(x):
            return globals().get("Annotated") and 2 * x
    '''
    _, out, edits, p, _ = lazify(tmp_path, (), files=files)
    assert not any(e.symbol.startswith("pkg.light:") for e in edits)
    assert any("pkg.light: reads its namespace dynamically" in n for n in p.notes)
    assert "light 6" in run(out).stdout


def test_refine_keeps_function_imports_only_for_modules_not_loaded() -> None:
    from memtrim.edits import Edit

    def edit(name, functions, needs):
        return Edit(id=name, pass_name="lazy-imports", kind="lazy-import", path="m.py", line=1,
                    symbol=name, reason="", evidence={"functions": functions, "needs": needs})

    edits = [edit("a", [[1, 0, "import a"]], ["a"]), edit("b", [[1, 0, "import b"]], ["b"]),
             edit("c", [], ["c"])]
    assert [e.id for e in refine_edits(edits, {"a", "c"})] == ["b", "c"]


def test_effects_of_a_module_body() -> None:
    tree = ast.parse(textwrap.dedent('''
        import copyreg, logging
        from backend import set_global_backend
        log = logging.getLogger(__name__)
        _TABLE = {}
        _TABLE.update(a=1)
        class Mine: pass
        copyreg.pickle(Mine, lambda m: (Mine, ()))
        set_global_backend("scipy")
        if __name__ == "__main__":
            print("demo")
    '''))
    found = module_effects(tree)
    assert [line for line, _ in found] == [9]  # only the backend registration acts


def test_step_with_the_verifier_bisects_away_an_observable_difference(tmp_path: Path) -> None:
    """The app prints whether pkg.heavy is loaded: deferring it is caught and dropped."""
    from memtrim.passes.lazy_imports import LazyImportStep
    from memtrim.pipeline import OptimizeRequest, StepContext, _verify_edits
    from memtrim.verify import record_oracle

    src = make_tree(tmp_path / "orig")
    app = make_app(src, ())
    oracle = record_oracle(app, python=sys.executable)
    ctx = StepContext(app=app, oracle=oracle, request=OptimizeRequest(app=app, outdir=None),
                      say=lambda _m: None)
    step = LazyImportStep()
    program = Program.load(src, entry=src / "app.py")
    edits = step.run(program, ctx)
    assert step.summary and step.summary["proposed"] >= len(edits) > 0
    kept, dropped, runs = _verify_edits(step, program, edits, ctx, tmp_path)
    assert runs > 1
    culprits = {d["edit"]["symbol"] for d in dropped}
    assert culprits & {"pkg:heavy_fn", "pkg:HeavyThing"}
    assert any(e.symbol == "pkg:light_fn" for e in kept)
    out = tmp_path / "kept"
    shutil.copytree(src, out)
    for rel, text in step.apply(program, kept).items():
        (out / rel).write_text(text, encoding="utf-8")
    assert run(out).stdout == run(src).stdout
