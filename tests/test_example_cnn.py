"""The numpy CNN example runs its workload as memtrim would.

The workload of ``examples/cnn/memtrim.toml`` runs as a real subprocess in a
fresh scratch directory, with the shipped ``weights.npz``.  The predictions'
hash is pinned for the pinned numpy version.
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

APP_DIR = Path(__file__).resolve().parents[1] / "examples" / "cnn"
PREDICTIONS_SHA256 = "69680456aa93be400525e8675279d2b219b7d9e994f7290deaaa4c4252a0f501"
N_IMAGES = 450
MIN_ACCURACY = 0.97  # observed 0.9889

# numpy runs the network; scikit-learn only provides the digits file.
_missing = [m for m in ("numpy", "sklearn") if importlib.util.find_spec(m) is None]
if _missing:
    pytest.skip(f"needs the examples' packages: {', '.join(_missing)}", allow_module_level=True)


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    """Run the ``test`` workload once in an empty working directory."""
    app = load_app(APP_DIR / "memtrim.toml")
    (workload,) = [w for w in app.workloads if w.name == "test"]
    w = workload.expand(app.root)
    cwd = tmp_path_factory.mktemp("cnn-test")
    proc = subprocess.run(
        [sys.executable, *app.entry_argv(), *w.args],
        cwd=cwd, capture_output=True, text=True, timeout=w.timeout,
    )
    return proc, cwd / w.outputs[0]


def test_weights_are_shipped_and_small():
    weights = APP_DIR / "weights.npz"
    assert weights.is_file()
    assert weights.stat().st_size < 200_000


def test_inference_over_the_test_split(result):
    proc, predictions = result
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert f"images: {N_IMAGES}" in proc.stdout.splitlines()
    accuracy = float(re.search(r"^accuracy: ([0-9.]+)$", proc.stdout, re.M).group(1))
    assert accuracy >= MIN_ACCURACY
    lines = predictions.read_text(encoding="utf-8").splitlines()
    assert len(lines) == N_IMAGES
    assert set(lines) <= {str(d) for d in range(10)}
    assert hashlib.sha256(predictions.read_bytes()).hexdigest() == PREDICTIONS_SHA256
