"""The gateway example: both workloads, run as memtrim runs them, give the recorded outputs.

The hashes below were observed on CPython 3.11.7; the app uses only the standard
library and writes nothing that depends on the machine, the time (except the log
timestamps, normalized as in its memtrim.toml), hash seeds or where it is installed.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from memtrim.app import load_app

ROOT = Path(__file__).resolve().parent.parent / "examples" / "gateway"

# gateway.log starts each line with logging's asctime; the same normalizer is in memtrim.toml.
ASCTIME = re.compile(rb"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2},[0-9]{3}")

EXPECTED = {
    "normal": {
        "exit": 0,
        "stdout": "10bed59f30462a1a4d4d023c17b69e622070d735d50aceb4552ca000919c8732",
        "summary.txt": "300a731b515b8cf1075a06ef16634098bd9c9b878a5ff1f0f122851221c20391",
        "aggregates.csv": "d2da5e843ec53a92272b0430edef7f6a5023ca3e60b05b9f08b8ed817b6844bf",
        "rejected.csv": "d55a3bea5f618adaa7a51509f5b0858bc3c3ee3abe7fd598c9f6ff31db7b9009",
        "alerts.log": "d8e47eaf67cb5363dfb382fbde83fc0068882be77351c52be1917b5dba5ce8d6",
        "gateway.log": "f4b7f5f96e9cdc6b72a9e7cae49907f199b5ffe1561127e8fcd80425f15c8142",
        "state.pkl": "4c700d00c80703e166e390ef03e67654e633c7c0377115ce400bbc3c91321093",
    },
    "malformed": {
        "exit": 2,
        "stdout": "a312b10abacffaadb1cd8ca3be09ba0158ea231b6ae0a43ff7568f397c9d682e",
        "summary.txt": "7380a5224c7f674e0c26735c30d3afd62aec4366a5639f49ee76ebf26d0a31dc",
        "aggregates.csv": "c34941e831d407d8af0fffdcd3ad68ede6dc0beae634b98766c7b5c840b2fa08",
        "rejected.csv": "56a1159aa19b0e12756ebb769f16eb1496e898c70f728dba4336d86174cf85fc",
        "alerts.log": "9da3ef72519bc271a727b4bb16325c4dc13537c1f9c958e2be4dc5f8c7866872",
        "gateway.log": "af24d002c8c28062e0b93113aee0f74ab575784ee56b93c5c83415ecf52effb2",
        "state.pkl": "51e068d7187b02da5231e79ad82d029acc22ee60704f58e4b3f81cfe8cebc5fa",
    },
}


def run_workload(root: Path, name: str, cwd: Path, seed: str = "0"):
    """Run workload ``name`` of the app at ``root`` the way memtrim does (fresh cwd)."""
    app = load_app(root / "memtrim.toml")
    wl = next(w for w in app.workloads if w.name == name).expand(app.root)
    cwd.mkdir(parents=True)
    # A minimal environment; no bytecode written into the example's tree.
    env = {"PATH": "/usr/bin:/bin", "PYTHONHASHSEED": seed, "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.run([sys.executable, *app.entry_argv(), *wl.args], cwd=cwd, env=env,
                          capture_output=True, timeout=wl.timeout)
    return wl, proc


def digest(path: Path) -> str:
    """sha256 of an output file, with log timestamps normalized."""
    data = path.read_bytes()
    if path.name == "gateway.log":
        data = ASCTIME.sub(b"<asctime>", data)
    return hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("name", ["normal", "malformed"])
def test_workload_outputs(tmp_path: Path, name: str) -> None:
    wl, proc = run_workload(ROOT, name, tmp_path / "scratch")
    want = EXPECTED[name]
    assert proc.returncode == want["exit"] == wl.expect_exit, proc.stderr.decode()
    assert proc.stderr == b""
    assert hashlib.sha256(proc.stdout).hexdigest() == want["stdout"], proc.stdout.decode()
    assert sorted(wl.outputs) == sorted(k for k in want if k not in ("exit", "stdout"))
    for out in wl.outputs:
        assert digest(tmp_path / "scratch" / out) == want[out], out


def test_malformed_takes_the_error_paths(tmp_path: Path) -> None:
    _, proc = run_workload(ROOT, "malformed", tmp_path / "scratch")
    summary = (tmp_path / "scratch" / "summary.txt").read_text()
    rejected = int(re.search(r"^rejected: (\d+)$", summary, re.M).group(1))
    assert rejected > 0
    rows = (tmp_path / "scratch" / "rejected.csv").read_text().splitlines()[1:]
    assert len(rows) == rejected == 22
    text = "\n".join(rows)
    # Reader-level (bad CSV rows, bad JSON) and validator-level rejections both ran.
    for reason in ("expected 5 fields", "bad JSON", "not an object", "is not finite",
                   "outside", "unknown kind", "bad timestamp", "duplicate reading"):
        assert reason in text, reason
    assert b"rejected, see rejected.csv" in proc.stdout


def test_normal_rejects_nothing(tmp_path: Path) -> None:
    run_workload(ROOT, "normal", tmp_path / "scratch")
    summary = (tmp_path / "scratch" / "summary.txt").read_text()
    assert "rejected: 0\n" in summary and "accepted: 480\n" in summary


def test_outputs_do_not_depend_on_location_or_hash_seed(tmp_path: Path) -> None:
    # memtrim runs optimized copies from other directories: results must not change.
    copy = tmp_path / "copy"
    shutil.copytree(ROOT, copy, ignore=shutil.ignore_patterns("__pycache__"))
    wl, proc = run_workload(copy, "normal", tmp_path / "scratch", seed="12345")
    assert proc.returncode == 0
    for out in wl.outputs:
        assert digest(tmp_path / "scratch" / out) == EXPECTED["normal"][out], out


def test_shipped_state_unpickles_to_gateway_classes() -> None:
    # Pickle names the classes by module path; this is what memtrim must not break.
    data = (ROOT / "data" / "initial_state.pkl").read_bytes()
    assert b"gateway.state" in data and b"GatewayState" in data and b"SensorMemory" in data


def test_log_normalizer_matches_memtrim_toml() -> None:
    app = load_app(ROOT / "memtrim.toml")
    assert [n.pattern.encode() for n in app.normalizers] == [ASCTIME.pattern]
