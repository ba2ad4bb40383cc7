"""The biomed example (paper section 5.3) runs its workloads as memtrim would.

Each workload of ``examples/biomed/memtrim.toml`` runs as a real subprocess in a
fresh scratch directory.  The predictions' hash is pinned: the example's data,
model and predictions are deterministic for the pinned numpy, scipy and
scikit-learn versions (pyproject's ``examples`` extra).  If those pins change,
regenerate and update ``PREDICTIONS_SHA256``.
"""

import hashlib
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

from memtrim.app import load_app

pytestmark = [pytest.mark.examples, pytest.mark.slow]

APP_DIR = Path(__file__).resolve().parents[1] / "examples" / "biomed"
PREDICTIONS_SHA256 = "590bdf2b6249c088acfd520478f2b351fbb707bb61478784ceba73e24d8ff9c5"
N_WINDOWS = 1544
MIN_ACCURACY = 0.93  # observed 0.9547

_missing = [m for m in ("numpy", "scipy", "sklearn") if importlib.util.find_spec(m) is None]
if _missing:
    pytest.skip(f"needs the examples' packages: {', '.join(_missing)}", allow_module_level=True)


def _prepare():
    return subprocess.run(
        [sys.executable, str(APP_DIR / "prepare.py")],
        capture_output=True, text=True, timeout=600,
    )


@pytest.fixture(scope="session")
def prepared():
    """Generate the data and train the model (a no-op when already up to date)."""
    proc = _prepare()
    assert proc.returncode == 0, proc.stderr
    return APP_DIR


@pytest.fixture(scope="module")
def results(prepared, tmp_path_factory):
    """Run every workload once, each in its own empty working directory."""
    app = load_app(prepared / "memtrim.toml")
    out = {}
    for workload in app.workloads:
        w = workload.expand(app.root)
        cwd = tmp_path_factory.mktemp(f"biomed-{w.name}")
        proc = subprocess.run(
            [sys.executable, *app.entry_argv(), *w.args],
            cwd=cwd, capture_output=True, text=True, timeout=w.timeout,
        )
        out[w.name] = (proc, {name: cwd / name for name in w.outputs})
    return out


def _sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_config_declares_both_variants(prepared):
    app = load_app(prepared / "memtrim.toml")
    assert app.script == APP_DIR / "run.py"
    assert [w.name for w in app.workloads] == ["static", "dynamic"]
    assert all(w.outputs == ("predictions.csv",) for w in app.workloads)


def test_prepare_is_idempotent(prepared):
    proc = _prepare()
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "biomed: data and model up to date"


@pytest.mark.parametrize("variant", ["static", "dynamic"])
def test_variant_predicts_every_window(results, variant):
    proc, outputs = results[variant]
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert f"windows: {N_WINDOWS}" in proc.stdout.splitlines()
    accuracy = float(re.search(r"^accuracy: ([0-9.]+)$", proc.stdout, re.M).group(1))
    assert accuracy >= MIN_ACCURACY
    predictions = outputs["predictions.csv"]
    assert len(predictions.read_text(encoding="utf-8").splitlines()) == N_WINDOWS
    assert _sha256(predictions) == PREDICTIONS_SHA256


def test_static_and_dynamic_agree(results):
    static_proc, static_out = results["static"]
    dynamic_proc, dynamic_out = results["dynamic"]
    assert static_proc.stdout == dynamic_proc.stdout
    assert static_out["predictions.csv"].read_bytes() == dynamic_out["predictions.csv"].read_bytes()
