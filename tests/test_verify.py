"""Tests of the verifier: real runs of tiny apps, the oracle, comparison, bisection."""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from memtrim.app import App, ConfigError, Normalizer, Workload
from memtrim.verify import (
    BisectError,
    Difference,
    NondeterminismError,
    Oracle,
    RunRecord,
    VerificationError,
    VerifyResult,
    bisect_edits,
    compare,
    normalize_text,
    record_oracle,
    run_workload,
    verify,
)

PY = sys.executable

PROG = """\
import os
import subprocess
import sys
import time

mode = sys.argv[1] if len(sys.argv) > 1 else "hello"
if mode == "hello":
    print("hello", os.environ.get("GREETING", "world"))
    with open("out.txt", "w") as f:
        f.write("result=42\\n")
    with open("extra.log", "w") as f:
        f.write("log\\n")
    print("warning: careful", file=sys.stderr)
elif mode == "stdin":
    print(sys.stdin.read().upper(), end="")
elif mode == "exit":
    print("line one\\nboom: something broke", file=sys.stderr)
    sys.exit(int(sys.argv[2]))
elif mode == "time":
    print("started at", time.time())
elif mode == "where":
    print(__file__)
    print(os.getcwd())
elif mode == "binary":
    with open("blob.bin", "wb") as f:
        f.write(bytes(range(256)))
elif mode == "spawn":
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(1000)"])
    with open(sys.argv[2], "w") as f:
        f.write(f"{os.getpid()} {child.pid}\\n")
    print("spawned", flush=True)
    time.sleep(1000)
"""


def make_app(tmp_path: Path, *workloads: Workload, **kw) -> App:
    root = tmp_path / "app"
    if not root.exists():
        root.mkdir()
        (root / "prog.py").write_text(PROG)
        (root / "data").mkdir()
        (root / "data" / "in.txt").write_text("some input\n")
    return App(root=root, script=root / "prog.py", workloads=tuple(workloads), **kw)


def copy_app(app: App, dest: Path) -> App:
    shutil.copytree(app.root, dest)
    return app.relocated(dest)


def snapshot(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() if p.is_file() else b"<dir>"
        for p in sorted(root.rglob("*"))
    }


HELLO = Workload("hello", args=("hello",), env=(("GREETING", "there"),), outputs=("out.txt",))


# ----------------------------------------------------------------- run_workload


def test_run_workload_records_everything(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    w = Workload(
        "hello", args=("hello",), env=(("GREETING", "there"),), outputs=("out.txt", "never.txt")
    )
    rec = run_workload(app, w, python=PY, scratch=tmp_path / "s")
    assert rec.exit_code == 0 and not rec.timed_out
    assert rec.stdout == b"hello there\n"
    assert b"warning: careful" in rec.stderr
    assert rec.outputs == {"out.txt": b"result=42\n", "never.txt": None}
    assert rec.files == ("extra.log", "out.txt")
    assert rec.undeclared_files == ("extra.log",)
    assert rec.cwd == str(tmp_path / "s") and rec.root == str(app.root)
    summary = json.loads(json.dumps(rec.to_dict()))
    assert summary["outputs"]["never.txt"] == "missing"
    assert summary["undeclared_files"] == ["extra.log"]
    again = RunRecord.from_dict(json.loads(json.dumps(rec.to_dict(full=True))))
    assert again == rec


def test_run_workload_stdin_and_exit_code(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    w = Workload("in", args=("stdin",), stdin="{root}/data/in.txt")
    assert run_workload(app, w, python=PY, scratch=tmp_path / "a").stdout == b"SOME INPUT\n"
    # No stdin file: /dev/null, never the terminal.
    rec = run_workload(app, Workload("none", args=("stdin",)), python=PY, scratch=tmp_path / "b")
    assert rec.stdout == b"" and rec.exit_code == 0
    rec = run_workload(app, Workload("x", args=("exit", "3")), python=PY, scratch=tmp_path / "c")
    assert rec.exit_code == 3 and rec.stderr_tail() == "line one | boom: something broke"
    with pytest.raises(FileNotFoundError):
        run_workload(app, Workload("m", stdin="{root}/nope"), python=PY, scratch=tmp_path / "d")


def test_run_workload_refuses_dirty_scratch(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "old.txt").write_text("left over")
    with pytest.raises(ValueError, match="not empty"):
        run_workload(app, HELLO, python=PY, scratch=tmp_path / "s")


def test_module_entry_runs_from_scratch_dir(tmp_path: Path) -> None:
    root = tmp_path / "modapp"
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "__init__.py").write_text("")
    (root / "pkg" / "main.py").write_text("print('module ran')\n")
    app = App(root=root, module="pkg.main", workloads=(Workload("m"),))
    rec = run_workload(app, app.workloads[0], python=PY, scratch=tmp_path / "s")
    assert rec.stdout == b"module ran\n", rec.stderr
    assert not list(root.rglob("__pycache__"))  # the input tree is never written


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:  # a zombie waiting for a reaper is gone for our purposes
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


def test_timeout_kills_the_process_tree(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    pidfile = tmp_path / "pids"
    w = Workload("spawn", args=("spawn", str(pidfile)), timeout=2.0)
    start = time.monotonic()
    rec = run_workload(app, w, python=PY, scratch=tmp_path / "s")
    assert time.monotonic() - start < 15
    assert rec.timed_out and rec.exit_code < 0
    assert rec.stdout == b"spawned\n"  # partial output is kept
    pids = [int(p) for p in pidfile.read_text().split()]
    assert len(pids) == 2
    deadline = time.monotonic() + 10
    while not all(_gone(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert all(_gone(p) for p in pids), pids


# ----------------------------------------------------------------- oracle and verify


def test_oracle_and_identical_copy_verify(tmp_path: Path) -> None:
    stdin_w = Workload("in", args=("stdin",), stdin="{root}/data/in.txt")
    app = make_app(tmp_path, HELLO, stdin_w)
    before = snapshot(app.root)
    oracle = record_oracle(app, python=PY, repeat=2)
    assert set(oracle.records) == {"hello", "in"}
    assert oracle.records["hello"].outputs["out.txt"] == b"result=42\n"
    json.dumps(oracle.to_dict())
    candidate = copy_app(app, tmp_path / "cand")
    result = verify(candidate, oracle, python=PY)
    assert result.ok, result.to_dict()
    assert result.all_differences() == []
    assert json.loads(json.dumps(result.to_dict()))["ok"] is True
    assert snapshot(app.root) == before  # the input tree is untouched


def test_changed_output_is_a_difference(tmp_path: Path) -> None:
    app = make_app(tmp_path, HELLO)
    oracle = record_oracle(app, python=PY, repeat=1)
    candidate = copy_app(app, tmp_path / "cand")
    prog = candidate.root / "prog.py"
    prog.write_text(
        prog.read_text().replace('print("hello"', 'print("Hello"').replace("result=42", "result=43")
    )
    result = verify(candidate, oracle, python=PY)
    assert not result.ok
    diffs = {d.stream: d for d in result.differences["hello"]}
    assert set(diffs) == {"stdout", "output:out.txt"}
    assert "-hello there" in diffs["stdout"].excerpt
    assert "+Hello there" in diffs["stdout"].excerpt
    assert "+result=43" in diffs["output:out.txt"].excerpt
    assert diffs["stdout"].normalized
    json.dumps(result.to_dict())


def test_paths_of_each_root_are_normalized(tmp_path: Path) -> None:
    app = make_app(tmp_path, Workload("where", args=("where",)))
    oracle = record_oracle(app, python=PY, repeat=2)  # two scratch dirs: {cwd} hides them
    assert str(app.root).encode() in oracle.records["where"].stdout
    candidate = copy_app(app, tmp_path / "elsewhere" / "copy")
    assert verify(candidate, oracle, python=PY).ok


def test_normalizer_hides_a_timestamp(tmp_path: Path) -> None:
    w = Workload("time", args=("time",))
    app = make_app(tmp_path, w)
    with pytest.raises(NondeterminismError) as err:
        record_oracle(app, python=PY, repeat=2)
    message = str(err.value)
    assert "'time'" in message and "stdout" in message and "normalizer" in message
    assert "\n" not in message
    assert err.value.differences[0].stream == "stdout"

    app = make_app(tmp_path, w, normalizers=(Normalizer(r"at [0-9.]+$", "at T"),))
    oracle = record_oracle(app, python=PY, repeat=2)
    assert verify(copy_app(app, tmp_path / "cand"), oracle, python=PY).ok


def test_bad_normalizer_regex_is_a_config_error(tmp_path: Path) -> None:
    app = make_app(tmp_path, HELLO, normalizers=(Normalizer("([unclosed"),))
    with pytest.raises(ConfigError, match="unclosed"):
        record_oracle(app, python=PY)


def test_failing_original_is_refused(tmp_path: Path) -> None:
    app = make_app(tmp_path, Workload("crash", args=("exit", "3")))
    with pytest.raises(VerificationError) as err:
        record_oracle(app, python=PY)
    message = str(err.value)
    assert "\n" not in message
    assert "'crash'" in message and "exited with 3" in message and "(expected 0)" in message
    assert "boom: something broke" in message
    # An expected non-zero exit is fine, and so is "any exit code".
    record_oracle(make_app(tmp_path, Workload("c", args=("exit", "3"), expect_exit=3)), python=PY)
    record_oracle(
        make_app(tmp_path, Workload("c", args=("exit", "3"), expect_exit=None)), python=PY
    )


def test_original_timeout_or_missing_output_is_refused(tmp_path: Path) -> None:
    w = Workload("slow", args=("spawn", str(tmp_path / "pids")), timeout=1.0)
    with pytest.raises(VerificationError, match="'slow'.*timed out after 1 s"):
        record_oracle(make_app(tmp_path, w), python=PY)
    w = Workload("h", args=("hello",), outputs=("typo.txt",))
    with pytest.raises(VerificationError, match="typo.txt"):
        record_oracle(make_app(tmp_path, w), python=PY)
    with pytest.raises(VerificationError, match="nothing to verify"):
        record_oracle(make_app(tmp_path), python=PY)


CHECK = """\
import pathlib
pathlib.Path("ran.txt").write_text("tests ran here")
assert "result=42" in pathlib.Path("prog.py").read_text()
"""


def test_test_command_is_recorded_and_compared(tmp_path: Path) -> None:
    app = make_app(tmp_path, HELLO, test_command=("{python}", "check.py"))
    (app.root / "check.py").write_text(CHECK)
    before = snapshot(app.root)
    oracle = record_oracle(app, python=PY, repeat=1)
    assert oracle.test_record is not None and oracle.test_record.exit_code == 0
    assert snapshot(app.root) == before  # ran in a copy: no ran.txt in the input tree

    candidate = copy_app(app, tmp_path / "cand")
    assert verify(candidate, oracle, python=PY).ok
    prog = candidate.root / "prog.py"
    # Same workload behaviour, but the app's own test now fails.
    prog.write_text(prog.read_text().replace('"result=42\\n"', '"result=" + "42\\n"'))
    result = verify(candidate, oracle, python=PY)
    assert not result.ok
    assert result.differences["hello"] == []
    assert [d.stream for d in result.test_differences] == ["test_command"]
    assert "AssertionError" in result.test_differences[0].excerpt


def test_failing_test_command_is_refused(tmp_path: Path) -> None:
    app = make_app(tmp_path, HELLO, test_command=("{python}", "-c", "raise SystemExit(2)"))
    with pytest.raises(VerificationError, match="test command.*exited with 2"):
        record_oracle(app, python=PY)


def test_oracle_round_trips_through_json(tmp_path: Path) -> None:
    app = make_app(tmp_path, HELLO, normalizers=(Normalizer("x", "y"),))
    oracle = record_oracle(app, python=PY, repeat=1)
    again = Oracle.from_dict(json.loads(json.dumps(oracle.to_dict(full=True))))
    assert again == oracle
    assert verify(copy_app(app, tmp_path / "cand"), again, python=PY).ok


# ----------------------------------------------------------------- compare (pure)


def rec(**kw) -> RunRecord:
    base = dict(
        workload="w", argv=(), root="/src/app", cwd="/tmp/s1", exit_code=0, stdout=b"", stderr=b""
    )
    base.update(kw)
    return RunRecord(**base)


def test_compare_pure_cases() -> None:
    assert compare(rec(stdout=b"a\n"), rec(stdout=b"a\n")) == []
    d = compare(rec(exit_code=0), rec(exit_code=1))
    assert [x.stream for x in d] == ["exit_code"] and "0 -> 1" in d[0].excerpt
    assert [x.stream for x in compare(rec(), rec(timed_out=True, exit_code=-9))] == ["timeout"]
    # stderr ignored when the workload says so
    assert compare(rec(stderr=b"x", compare_stderr=False), rec(stderr=b"y")) == []
    # tracebacks name each run's own root and cwd
    o = rec(stderr=b'File "/src/app/m.py", line 3\nin /tmp/s1/out\n')
    c = rec(
        root="/build/copy",
        cwd="/tmp/s2",
        stderr=b'File "/build/copy/m.py", line 3\nin /tmp/s2/out\n',
    )
    assert compare(o, c) == []
    # binary and missing outputs
    d = compare(rec(outputs={"b": b"\x00\x01\x02"}), rec(outputs={"b": b"\x00\x01\x03"}))
    assert d[0].stream == "output:b" and "first difference at byte 2" in d[0].excerpt
    d = compare(rec(outputs={"b": b"x"}), rec(outputs={"b": None}))
    assert "not written by the candidate" in d[0].excerpt
    # the set of created files
    d = compare(rec(files=("a", "log-1.txt")), rec(files=("b", "log-2.txt")))
    assert d[0].stream == "files" and "-a" in d[0].excerpt and "+b" in d[0].excerpt
    norm = [Normalizer(r"log-\d+", "log-N")]
    assert compare(rec(files=("log-1.txt",)), rec(files=("log-2.txt",)), norm) == []
    # text outputs are normalized; invalid UTF-8 in stdout does not crash
    n = [Normalizer(r"0x[0-9a-f]+", "0xADDR")]
    assert compare(rec(stdout=b"at 0xdeadbeef \xff"), rec(stdout=b"at 0x1234 \xff"), n) == []
    assert compare(rec(outputs={"t": b"id 0x1\n"}), rec(outputs={"t": b"id 0x2\n"}), n) == []


def test_normalize_text_replaces_longest_path_first() -> None:
    text = "/a/b/c/file and /a/b/x"
    assert normalize_text(text, root="/a/b", cwd="/a/b/c") == "{cwd}/file and {root}/x"
    assert normalize_text("t=1.5s", [Normalizer(r"t=(\d)\.\d+s", r"t=\1s")]) == "t=1s"


def test_diff_excerpt_is_short() -> None:
    o = rec(stdout="".join(f"line {i}\n" for i in range(500)).encode())
    c = rec(stdout="".join(f"LINE {i}\n" for i in range(500)).encode())
    (d,) = compare(o, c)
    assert len(d.excerpt.splitlines()) <= 21 and "more diff lines" in d.excerpt


# ----------------------------------------------------------------- bisection (pure)


class FakeProgram:
    """passes() for integer edits: fails if a culprit or a whole bad group is applied."""

    def __init__(self, culprits=(), groups=()) -> None:
        self.culprits = set(culprits)
        self.groups = [set(g) for g in groups]
        self.calls: list[tuple[int, ...]] = []

    def ok(self, subset) -> bool:
        s = set(subset)
        return not (s & self.culprits) and not any(g <= s for g in self.groups)

    def __call__(self, subset) -> bool:
        assert list(subset) == sorted(subset), "subsets keep the original order"
        self.calls.append(tuple(subset))
        return self.ok(subset)


def run_bound(n: int, k: int) -> int:
    # per culprit: one test of everything left, a gallop and a binary search
    # (each at most ceil(log2 n)); plus the final all-pass test and the baseline.
    return k * (2 * math.ceil(math.log2(max(n, 2))) + 2) + 2


def test_bisect_no_edits_and_no_culprit() -> None:
    r = bisect_edits([], FakeProgram())
    assert r.kept == [] and r.dropped == [] and r.runs == 0
    for n in (1, 2, 7, 200):
        fake = FakeProgram()
        r = bisect_edits(list(range(n)), fake)
        assert r.kept == list(range(n)) and r.dropped == [] and r.runs == 1


@pytest.mark.parametrize("k", [1, 2, 3, 10, "many"])
def test_bisect_finds_exactly_the_culprits(k) -> None:
    rng = random.Random(f"culprits-{k}")
    for _ in range(60):
        n = rng.randint(1, 200)
        kk = rng.randint(n // 3, n) if k == "many" else min(k, n)
        culprits = set(rng.sample(range(n), kk))
        fake = FakeProgram(culprits)
        r = bisect_edits(list(range(n)), fake)
        assert sorted(d.edit for d in r.dropped) == sorted(culprits)
        assert r.kept == [i for i in range(n) if i not in culprits]
        assert fake.ok(r.kept)
        assert r.runs == len(set(fake.calls)) == len(fake.calls)  # no subset run twice
        assert r.runs <= run_bound(n, kk), (n, kk, r.runs)
        if kk == 1:
            assert r.runs <= math.ceil(math.log2(n)) + 3 if n > 1 else r.runs <= 3


def test_bisect_run_count_is_k_log_n_on_average() -> None:
    rng = random.Random(7)
    for k in (1, 4, 16):
        total = 0
        for _ in range(30):
            culprits = rng.sample(range(200), k)
            total += bisect_edits(list(range(200)), FakeProgram(culprits)).runs
        # far below testing each of the 200 edits alone
        assert total / 30 <= k * (math.log2(200 / k) + 3), (k, total / 30)


def test_bisect_interacting_pair() -> None:
    # 3 and 17 are only bad together: one of them goes, everything else stays.
    fake = FakeProgram(groups=[(3, 17)])
    r = bisect_edits(list(range(30)), fake)
    assert [d.edit for d in r.dropped] == [17]
    assert fake.ok(r.kept) and len(r.kept) == 29
    rng = random.Random(11)
    for _ in range(100):
        n = rng.randint(2, 120)
        groups = [rng.sample(range(n), rng.randint(2, min(3, n))) for _ in range(rng.randint(1, 3))]
        singles = rng.sample(range(n), rng.randint(0, min(3, n)))
        fake = FakeProgram(singles, groups)
        r = bisect_edits(list(range(n)), fake)
        dropped = {d.edit for d in r.dropped}
        assert set(singles) <= dropped
        assert all(set(g) & dropped for g in groups)
        assert fake.ok(r.kept)
        assert sorted(r.kept + sorted(dropped)) == list(range(n))


def test_bisect_kept_set_always_passes_for_arbitrary_predicates() -> None:
    # Even a non-monotone passes() (an edit that hides another's damage) never
    # yields a kept set that was not verified.
    for seed in range(200):
        rng = random.Random(seed)
        n = rng.randint(1, 40)
        salt = rng.random()

        def passes(subset, salt=salt) -> bool:
            if not subset:
                return True
            return random.Random(f"{salt}{tuple(subset)}").random() < 0.6

        r = bisect_edits(list(range(n)), passes)
        assert passes(r.kept)
        assert len(r.kept) + len(r.dropped) == n


@dataclass
class FakeOutcome:
    ok: bool
    diffs: list[Difference] = field(default_factory=list)

    def all_differences(self) -> list[Difference]:
        return self.diffs


def test_bisect_reports_the_condemning_difference() -> None:
    def passes(subset) -> FakeOutcome:
        if "bad" in subset:
            return FakeOutcome(False, [Difference("w1", "stdout", "-a\n+b", True)])
        return FakeOutcome(True)

    edits = ["e0", "e1", "bad", "e3"]
    r = bisect_edits(edits, passes)
    assert r.kept == ["e0", "e1", "e3"]
    (d,) = r.dropped
    assert d.edit == "bad" and d.index == 2 and d.applied_with == 2
    assert d.differences[0].stream == "stdout"
    assert "workload 'w1': stdout differs" in d.reason
    report = json.loads(json.dumps(r.to_dict()))
    assert report["dropped"][0]["edit"] == "bad" and report["runs"] == r.runs

    (alone,) = bisect_edits(["bad", "e1"], passes).dropped
    assert alone.applied_with == 0 and "alone" in alone.reason


def test_bisect_budget_and_broken_baseline() -> None:
    fake = FakeProgram(culprits=range(0, 100, 3))
    r = bisect_edits(list(range(100)), fake, max_runs=10)
    assert r.runs == 10 and fake.ok(r.kept)
    assert any("budget" in d.reason for d in r.dropped)
    assert len(r.kept) + len(r.dropped) == 100
    with pytest.raises(BisectError, match="no edit applied"):
        bisect_edits([1, 2, 3], lambda subset: False)


# ----------------------------------------------------------------- bisection end to end

LIB = """\
def total():
    a = 1 + 1
    b = 3 * 3
    c = a + b
    return c


def greet(name):
    prefix = "hi"
    return prefix + " " + name


def unused():
    return 42
"""

MAIN = """\
import lib

print(lib.total())
print(lib.greet("edge"))
"""


@dataclass(frozen=True)
class LineEdit:
    """Replace one line of one file (a stand-in for a pass's edit)."""

    path: str
    lineno: int
    old: str
    new: str

    def apply(self, root: Path) -> None:
        f = root / self.path
        lines = f.read_text().splitlines(keepends=True)
        assert lines[self.lineno - 1].rstrip("\n") == self.old
        lines[self.lineno - 1] = self.new + "\n"
        f.write_text("".join(lines))

    def to_dict(self) -> dict:
        return {"path": self.path, "line": self.lineno, "new": self.new}


def test_bisection_end_to_end_drops_the_bad_edits(tmp_path: Path) -> None:
    root = tmp_path / "orig"
    root.mkdir()
    (root / "lib.py").write_text(LIB)
    (root / "main.py").write_text(MAIN)
    app = App(root=root, script=root / "main.py", workloads=(Workload("run"),))
    before = snapshot(root)
    oracle = record_oracle(app, python=PY, repeat=1)
    assert oracle.records["run"].stdout == b"11\nhi edge\n"

    edits = [
        LineEdit("lib.py", 2, "    a = 1 + 1", "    a = 2"),
        LineEdit("lib.py", 3, "    b = 3 * 3", "    b = 9"),
        LineEdit("lib.py", 4, "    c = a + b", "    c = a - b"),  # bad
        LineEdit("lib.py", 9, '    prefix = "hi"', "    prefix = 'hi'"),
        LineEdit("lib.py", 10, '    return prefix + " " + name', "    return prefix + name"),  # bad
        LineEdit("lib.py", 14, "    return 42", "    return None"),
        LineEdit("main.py", 1, "import lib", "import lib  # memtrim"),
    ]
    builds = iter(range(1000))

    def passes(subset) -> VerifyResult:
        # Build the program with only this subset applied, in a copy of the tree.
        build = tmp_path / "builds" / str(next(builds))
        shutil.copytree(root, build)
        for e in subset:
            e.apply(build)
        return verify(app.relocated(build), oracle, python=PY, fail_fast=True)

    r = bisect_edits(edits, passes)
    assert [d.index for d in r.dropped] == [2, 4]
    assert r.kept == [e for i, e in enumerate(edits) if i not in (2, 4)]
    assert all(d.differences and d.differences[0].stream == "stdout" for d in r.dropped)
    assert "-11" in r.dropped[0].differences[0].excerpt
    assert "+-7" in r.dropped[0].differences[0].excerpt
    assert passes(r.kept).ok
    assert r.runs <= run_bound(len(edits), 2)
    report = json.loads(json.dumps(r.to_dict()))
    assert report["dropped"][1]["edit"]["line"] == 10
    assert snapshot(root) == before
