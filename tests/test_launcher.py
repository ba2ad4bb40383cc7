"""The launcher: the decision logic (pure, no timings), the generated script and bootstrap."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from memtrim.app import App, Workload
from memtrim.launcher import (
    BOOT_NAME,
    CANDIDATES,
    Measured,
    SelectRequest,
    Setting,
    Trial,
    bootstrap_source,
    candidates,
    choose_settings,
    judge,
    levels_needed,
    select_settings,
    write_launcher,
)

S = {s.name: s for s in CANDIDATES}
MB = 1_000_000


def m(peaks: dict[str, float], walls: dict[str, float] | None = None) -> Measured:
    return Measured({k: int(v * MB) for k, v in peaks.items()},
                    walls or dict.fromkeys(peaks, 1.0))


# --------------------------------------------------------------------------- decision


def test_kept_when_the_largest_peak_drops_enough():
    t = Trial(S["no-site"], (), True, m({"a": 100, "b": 20}), m({"a": 97, "b": 19.5}))
    v = judge(t, threshold_pct=1.0)
    assert v.kept and v.peak_change_pct == -3.0 and v.time_ratio == 1.0
    assert "workload 'a' -3.0%" in v.reason


def test_small_gain_dropped_unless_above_the_absolute_floor():
    small = Trial(S["gc-freeze"], (), True, m({"a": 100}), m({"a": 99.5}))
    assert not judge(small, 1.0).kept
    assert "less than the 1% / 1.0 MB" in judge(small, 1.0).reason
    # 2 MB on a 400 MB program is 0.5%, but above the 1 MiB floor: real, kept
    big = Trial(S["gc-freeze"], (), True, m({"a": 400}), m({"a": 398}))
    assert judge(big, 1.0).kept


def test_a_workload_made_worse_vetoes():
    t = Trial(S["malloc"], (), True, m({"big": 100, "small": 20}), m({"big": 95, "small": 21}))
    v = judge(t, 1.0)
    assert not v.kept and "'small' by +5.0%" in v.reason and v.worst_change_pct == 5.0


def test_too_slow_vetoes():
    t = Trial(S["malloc-arena-max-1"], (), True, m({"a": 100}, {"a": 1.0}),
              m({"a": 90}, {"a": 1.5}))
    v = judge(t, 1.0, max_time_ratio=1.25)
    assert not v.kept and "x1.50 exceeds" in v.reason
    assert judge(t, 1.0, max_time_ratio=2.0).kept


def test_behaviour_difference_vetoes_without_numbers():
    t = Trial(S["optimize-2"], (), False, differences=("workload 'w': stdout differs",))
    v = judge(t)
    assert not v.kept and "behaviour differs" in v.reason and "stdout" in v.reason


def test_greedy_replay_groups_and_bases():
    base = m({"a": 100})
    trials = [
        Trial(S["no-site"], (), True, base, m({"a": 95})),  # kept
        Trial(S["optimize-2"], ("no-site",), True, m({"a": 95}), m({"a": 90})),  # kept
        Trial(S["optimize-1"], ("no-site", "optimize-2"), True, m({"a": 90}), m({"a": 80})),
        Trial(S["malloc"], ("no-site",), True, m({"a": 95}), m({"a": 50})),  # stale base
        Trial(S["gc-eager"], ("no-site", "optimize-2"), True, m({"a": 90}), m({"a": 89.95})),
    ]
    d = choose_settings(trials, base, 1.0, skipped={"frozen-modules": "needs Python 3.11"})
    assert [s.name for s in d.settings] == ["no-site", "optimize-2"]
    reasons = {v.setting: v.reason for v in d.verdicts}
    assert reasons["optimize-1"] == "optimize-2 of the same group was kept"
    assert "not judged" in reasons["malloc"]
    assert "less than" in reasons["gc-eager"]
    assert reasons["frozen-modules"] == "not tried: needs Python 3.11"
    assert d.final is not None and d.final.peaks["a"] == 90 * MB
    assert d.flags == ["-S", "-OO"] and d.boot == {"site_packages": True}
    assert levels_needed(d.settings) == (0, 2)
    json.dumps(d.to_json())  # the report can hold it


def test_candidates_gate_asserts_and_versions():
    names, skipped = candidates((3, 10))
    names = [s.name for s in names]
    assert "optimize-2" not in names and "asserts" in skipped["optimize-2"]
    assert "no-debug-ranges" not in names and "3.11" in skipped["no-debug-ranges"]
    opted, _ = candidates((3, 11), optimize_asserts=True)
    assert {"optimize-2", "optimize-1", "no-debug-ranges"} <= {s.name for s in opted}


def test_setting_round_trip():
    s = S["gc-eager"]
    assert Setting.from_json(json.loads(json.dumps(s.to_json()))) == s


# --------------------------------------------------------------------------- launcher


PROBE = textwrap.dedent("""\
    import gc, json, os, sys
    print(json.dumps({
        "optimize": sys.flags.optimize, "no_site": sys.flags.no_site,
        "arena": os.environ.get("MALLOC_ARENA_MAX"), "threshold": gc.get_threshold(),
        "frozen": gc.get_freeze_count() > 0, "argv": sys.argv[1:],
        "main": __name__, "file": os.path.basename(__file__), "path0": sys.path[0],
        "editable_memtrim": "memtrim" in sys.modules or any("memtrim" in p for p in sys.path),
        "version": sys.version_info[:2], "prefix": sys.prefix,
        "rich": __import__("importlib.util").util.find_spec("rich") is not None,
    }))
""")


def make_app(tmp_path: Path, text: str = PROBE) -> Path:
    out = tmp_path / "bundle"
    (out / "app").mkdir(parents=True)
    (out / "app" / "main.py").write_text(text)
    return out


def sh(script: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["/bin/sh", str(script), *args], capture_output=True, text=True,
                          timeout=60, env={**os.environ, **(env or {})}, cwd=script.parent)


def test_launcher_applies_flags_env_and_boot(tmp_path):
    out = make_app(tmp_path)
    chosen = [S["no-site"], S["optimize-2"], S["malloc-arena-max-1"], S["gc-eager"],
              S["gc-freeze"]]
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    script = write_launcher(out, "app/main.py", chosen, python=sys.executable,
                            python_version=sys.version_info[:2])
    assert os.access(script, os.X_OK) and (out / BOOT_NAME).is_file()
    text = script.read_text()
    assert text.startswith("#!/bin/sh") and "optimize-2: -OO" in text
    res = subprocess.run(["/bin/sh", str(script), "x", "y z"], capture_output=True, text=True,
                         env=env, timeout=60)
    got = json.loads(res.stdout)
    assert got["optimize"] == 2 and got["no_site"] == 1 and got["arena"] == "1"
    assert got["threshold"] == [200, 5, 5] and got["frozen"]
    assert got["argv"] == ["x", "y z"] and got["main"] == "__main__"
    assert got["file"] == "main.py" and got["path0"] == str((out / "app").resolve())
    # -S: the .pth files did not run (memtrim is installed in the venv by one), but the
    # venv's site-packages are on the path, and sys.prefix is the venv's, as without -S
    assert not got["editable_memtrim"]
    assert got["rich"] and got["prefix"] == sys.prefix
    # the caller's own value wins over the launcher's
    res = sh(script, env={"MALLOC_ARENA_MAX": "4"})
    assert json.loads(res.stdout)["arena"] == "4"


def test_launcher_without_boot_execs_the_entry(tmp_path):
    out = make_app(tmp_path)
    script = write_launcher(out, "app/main.py", [S["malloc-trim"]], python=sys.executable)
    assert not (out / BOOT_NAME).exists()
    assert 'exec "$PY" "$HERE"/app/main.py "$@"' in script.read_text()
    got = json.loads(sh(script).stdout)
    assert got["optimize"] == 0 and got["threshold"] == [700, 10, 10]


def test_memtrim_python_chooses_the_interpreter(tmp_path):
    other = sorted((Path.home() / ".pyenv" / "versions").glob("3.12.*/bin/python"))
    if not other:
        pytest.skip("no Python 3.12")
    out = make_app(tmp_path)
    script = write_launcher(out, "app/main.py", [], python=sys.executable)
    got = json.loads(sh(script, env={"MEMTRIM_PYTHON": str(other[0])}).stdout)
    assert got["version"] == [3, 12]


def test_bootstrap_runs_the_script_as_python_would(tmp_path):
    app = tmp_path / "app"
    app.mkdir()
    (app / "helper.py").write_text("def boom():\n    raise ValueError('bad')\n")
    (app / "main.py").write_text(
        "import sys, pickle, helper\n"
        "class K:\n    pass\n"
        "print(sys.argv, len(pickle.dumps(K())), sorted(globals()))\n"
        "if sys.argv[1:] == ['fail']:\n    helper.boom()\n"
        "if sys.argv[1:] == ['exit']:\n    sys.exit('bye')\n")
    boot = tmp_path / BOOT_NAME
    boot.write_text(bootstrap_source(entry="app/main.py", boot={"gc_freeze": True}))
    for args in ([], ["fail"], ["exit"]):
        plain = subprocess.run([sys.executable, str(app / "main.py"), *args],
                               capture_output=True, text=True, timeout=60)
        booted = subprocess.run([sys.executable, str(boot), *args], capture_output=True,
                                text=True, timeout=60)
        assert (booted.returncode, booted.stdout, booted.stderr) == \
            (plain.returncode, plain.stdout, plain.stderr)


def test_bootstrap_runs_a_module(tmp_path):
    pkg = tmp_path / "src" / "pkg"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "__main__.py").write_text("import sys\nprint(__name__, sys.argv[1:])\n")
    boot = tmp_path / BOOT_NAME
    boot.write_text(bootstrap_source(module="pkg", paths=["src"]))
    res = subprocess.run([sys.executable, str(boot), "a"], capture_output=True, text=True,
                         timeout=60, cwd=tmp_path)
    assert res.stdout == "__main__ ['a']\n", res.stderr
    with pytest.raises(ValueError, match="exactly one"):
        bootstrap_source(entry="x.py", module="pkg")


# --------------------------------------------------------------------------- selection


def test_select_settings_rejects_what_changes_behaviour(tmp_path):
    """Real runs, but only the decision's structure is asserted: no timings."""
    from memtrim.verify import record_oracle

    root = tmp_path / "app"
    root.mkdir()
    (root / "main.py").write_text(
        "import sys\nprint('optimize', sys.flags.optimize)\nprint(sum(range(10**5)))\n")
    app = App(root=root, script=root / "main.py", workloads=(Workload("w", timeout=60),))
    oracle = record_oracle(app, python=sys.executable, repeat=1)
    req = SelectRequest(app, oracle, sys.executable,
                        candidates=[S["optimize-2"], S["frozen-modules"], S["gc-freeze"]],
                        repeat=1, scratch=tmp_path)
    messages: list[str] = []
    decision = select_settings(req, messages.append)
    verdicts = {v.setting: v for v in decision.verdicts}
    assert set(verdicts) == {"optimize-2", "frozen-modules", "gc-freeze"}
    assert not verdicts["optimize-2"].kept
    assert "behaviour differs" in verdicts["optimize-2"].reason
    assert "optimize-2" not in [s.name for s in decision.settings]
    # the two others were measured: a verdict with numbers, on the same base
    for name in ("frozen-modules", "gc-freeze"):
        assert verdicts[name].peak_before and verdicts[name].peak_after
    assert [t.setting.name for t in req.trials] == ["optimize-2", "frozen-modules", "gc-freeze"]
    assert any("trying gc-freeze" in msg for msg in messages)
    assert not list(tmp_path.glob("memtrim-launcher-*"))  # scratch cleaned
    assert (root / "main.py").read_text().startswith("import sys")  # input untouched
    assert not list(root.rglob("__pycache__"))
