"""Dead code and branch code, classified from real coverage runs (seed 000, section 4.3.1)."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

from memtrim.analysis.coverage_run import collect_coverage
from memtrim.analysis.deadcode import BRANCH, DEAD, classify, find_unreachable
from memtrim.app import App, Workload
from memtrim.program import Program

PY = sys.executable

APP = """\
import sys


def deco(f):
    return f


def one(): return 1


@deco
def decorated(a,
              b=2):
    return a + b


def entered_one(): return 2


def after_return(x):
    if x:
        return 1
    return 2
    print("never")


def branches(x, items):
    if x > 0:
        r = "pos"
    elif x < 0:
        r = "neg"
        r = r.upper()
    else:
        r = "zero"
    for i in items:
        r += str(i)
    else:
        r += "."
    while x > 100:
        x -= 1
    try:
        v = int(r)
    except ValueError:
        v = -1
    else:
        v += 1
    match x:
        case 5:
            r = "five"
        case _:
            r = "other"
    return r, v


def gen():
    while False:
        yield 1


def exits():
    print("bye")
    sys.exit(0)
    print("after exit")


class K:
    def used(self):
        return 1

    def unused(self):
        return 2


def skips_nothing():
    a = 1
    if False:
        pass
    return a


entered_one()
print(branches(int(sys.argv[1]), []), list(gen()), K().used(), skips_nothing())
if sys.argv[1] == "9":
    exits()
"""


def _app(tmp_path: Path, *workloads: Workload) -> App:
    root = tmp_path / "app"
    root.mkdir()
    (root / "app.py").write_text(APP, encoding="utf-8")
    (root / "never.py").write_text("def f():\n    return 1\n", encoding="utf-8")
    return App(root=root, script=root / "app.py", workloads=workloads)


def _line(needle: str) -> int:
    return next(i for i, s in enumerate(APP.splitlines(), 1) if needle in s)


def _classify(app: App):
    cov = collect_coverage(app, python=PY)
    program = Program.load(app.root, entry=app.script)
    return classify(program, cov)


def test_dead_and_branch_code(tmp_path: Path) -> None:
    app = _app(tmp_path, Workload(name="pos", args=("1",)), Workload(name="exit", args=("9",),
                                                                        expect_exit=0))
    report = _classify(app)
    regions = {(r.kind, r.first_line): r for r in report.in_path("app.py")}
    kinds = {k: r.category for k, r in regions.items()}

    # functions never entered, decorated or on one line (the line data alone says "ran")
    assert kinds[("function", _line("def one"))] == DEAD
    decorated = regions[("function", _line("@deco"))]
    assert decorated.name == "decorated" and decorated.reached_by == ("exit", "pos")
    assert ("function", _line("def entered_one")) not in kinds
    assert kinds[("function", _line("def unused"))] == DEAD
    assert regions[("function", _line("def unused"))].name == "K.unused"
    assert ("function", _line("def used")) not in kinds
    # code after an unconditional return (a static fact, and never executed)
    assert kinds[("function", _line("def after_return"))] == DEAD  # never entered at all
    # untaken branches of statements that ran: branch code
    assert kinds[("if", _line('r = "neg"'))] == BRANCH  # the elif body
    assert kinds[("else", _line('r = "zero"'))] == BRANCH
    assert kinds[("loop-body", _line("r += str(i)"))] == BRANCH
    assert ("loop-else", _line('r += "."')) not in kinds  # it ran (the loop ended)
    assert kinds[("loop-body", _line("x -= 1"))] == BRANCH
    assert kinds[("try-else", _line("v += 1"))] == BRANCH
    assert ("except", _line("v = -1")) not in kinds  # int("pos1") raised: the handler ran
    assert kinds[("case", _line('r = "five"'))] == BRANCH
    assert regions[("case", _line('r = "five"'))].part == "cases[0]"
    assert regions[("if", _line('r = "neg"'))].reached_by == ("exit", "pos")
    # `while False: yield`: the loop ran, its body is branch code (not an empty function)
    assert kinds[("loop-body", _line("yield 1"))] == BRANCH
    # after sys.exit(): the block was always left before it
    assert kinds[("interrupted", _line('print("after exit")'))] == DEAD
    # `if False:` produces no line event, but control went past it: not reported
    assert not any(r.first_line == _line("if False:") for r in report.regions)
    # a module never imported is dead code as a whole
    assert [r.kind for r in report.in_path("never.py")] == ["module"]
    assert report.modules["never.py"].imported is False
    totals = report.totals()
    assert totals["dead"] > 0 and totals["branch"] > 0
    assert totals["statements"] == totals["dead"] + totals["branch"] + totals["executed"]


def test_contexts_tell_which_workload_ran_what(tmp_path: Path) -> None:
    app = _app(tmp_path, Workload(name="pos", args=("1",)), Workload(name="neg", args=("-1",)))
    report = _classify(app)
    found = {(r.kind, r.first_line) for r in report.in_path("app.py")}
    # each side of the if ran in one of the two workloads: neither is branch code
    assert ("if", _line('r = "neg"')) not in found
    assert ("else", _line('r = "zero"')) in found  # x == 0 ran in neither
    exits = next(r for r in report.in_path("app.py") if r.kind == "function"
                 and r.name == "exits")
    assert exits.reached_by == ("neg", "pos")


def test_unreachable_code_found_statically(tmp_path: Path) -> None:
    app = _app(tmp_path, Workload(name="pos", args=("1",)))
    program = Program.load(app.root, entry=app.script)
    found = find_unreachable(program.modules["app"])
    assert [(r.first_line, r.scope) for r in found] == [
        (_line('print("never")'), "after_return")]
    src = textwrap.dedent("""\
        def f(items):
            for i in items:
                if i:
                    continue
                    i += 1
                break
                print(i)
            raise ValueError
            return 3
        """)
    root = tmp_path / "u"
    root.mkdir()
    (root / "u.py").write_text(src, encoding="utf-8")
    regions = find_unreachable(Program.load(root).modules["u"])
    assert [r.first_line for r in regions] == [5, 7, 9]
