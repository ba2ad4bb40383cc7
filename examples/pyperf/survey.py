"""Survey: which pyperformance benchmarks run here as one-shot applications.

Every installed benchmark (``bm_*`` directory, see ``pyperf_app.py list``) is run
once in worker mode (``--worker -l 1 -n 1 -w 0``, plus the extra arguments its
``pyproject.toml`` names), each under a time limit:

1. *nothing extra*: in a fresh venv holding only pyperformance and its own
   dependencies (pyperf, packaging, psutil), none of the benchmarks' requirements.
   A fresh venv rather than this one, because a development venv may happen to
   hold a benchmark's requirement (coverage, PyYAML) and hide the need.
2. *with requirements*: each benchmark that failed in (1) and declares
   requirements (``requirements.txt``, else ``pyproject.toml`` dependencies) gets
   its own venv with pyperf plus exactly those packages, installed with pip from
   the configured package index, and is run again.

The result is written as a Markdown table (default ``SURVEY.md`` beside this
script); raw logs and a JSON record stay in the work directory.  Runs are
sequential, since timings do not matter here but other work shares the machine.

    nice python examples/pyperf/survey.py [--timeout 120] [--only nbody pickle]
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.metadata
import json
import os
import platform
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import pyperf_app  # noqa: E402  (a sibling script, not an installed package)

# Causes found by reading the logs, shown under the table (the logs only show symptoms).
NOTES = {
    "hg_startup": "mercurial 5.8's C extension decrements `Py_SIZE(...)`, which is no longer "
                  "an lvalue in CPython 3.11, so the wheel does not build; without it there is "
                  "no `hg` program to start. pyperformance's own MANIFEST comments this "
                  "benchmark out.",
}


def run_limited(cmd: list[str], timeout: float, log_stem: Path,
                cwd: Path | None = None) -> tuple[str, float, str]:
    """Run ``cmd`` with a time limit; return (status, seconds, stderr tail).

    The command gets its own process group so that a timeout also ends the
    servers and workers some benchmarks start (asyncio_tcp, dask, tornado).
    """
    t0 = time.monotonic()
    # Not with_suffix(): "nbody.bare" and "nbody.extras" must not share a log file.
    out_path, err_path = Path(f"{log_stem}.out"), Path(f"{log_stem}.err")
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, cwd=cwd,
                                start_new_session=True, stdin=subprocess.DEVNULL)
        try:
            rc = proc.wait(timeout=timeout)
            status = "ok" if rc == 0 else f"exit {rc}"
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            status = "timeout"
    seconds = time.monotonic() - t0
    err_text = err_path.read_text(errors="replace")
    out_text = out_path.read_text(errors="replace")
    return status, seconds, ("" if status == "ok" else err_text + out_text[-2000:])


def reason_from(text: str) -> str:
    """The most telling line of a failure log.

    The first C compiler error if a build failed (pip's own last line only says
    that the wheel did not build), else the last exception line, else the last line.
    """
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for ln in lines:
        if re.search(r"\.(?:c|h|cpp):[0-9]+:[0-9]+: (?:fatal )?error: ", ln):
            return "build error: " + ln[:150]
    for ln in reversed(lines):
        if re.match(r"^(?:[\w.]+(?:Error|Exception|Exit)|ERROR)\b", ln):
            return ln[:160]
    return lines[-1][:160] if lines else ""


def make_venv(path: Path, packages: list[str], log_stem: Path, timeout: float) -> tuple[bool, str]:
    """Create a venv at ``path`` (if missing) and pip-install ``packages`` into it."""
    py = path / "bin" / "python"
    if not py.exists():
        subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
    status, _, tail = run_limited(
        [str(py), "-m", "pip", "install", "-q", "--no-input", *packages], timeout, log_stem)
    return status == "ok", ("" if status == "ok" else f"pip {status}: {reason_from(tail)}")


def survey(names: list[str] | None, work: Path, timeout: float,
           install_timeout: float, extras: bool) -> dict:
    """Run the survey; return the JSON-able record (also saved to ``work/results.json``)."""
    work.mkdir(parents=True, exist_ok=True)
    logs = work / "logs"
    logs.mkdir(exist_ok=True)
    results_path = work / "results.json"
    record = json.loads(results_path.read_text()) if results_path.exists() else {}
    record.setdefault("benchmarks", {})

    benches = pyperf_app.list_benchmarks()
    if names:
        benches = [b for b in benches if b.name in names]

    perf_version = importlib.metadata.version("pyperformance")
    pyperf_version = importlib.metadata.version("pyperf")
    bare = work / "bare"
    ok, why = make_venv(bare, [f"pyperformance=={perf_version}"], logs / "bare.pip",
                        install_timeout)
    if not ok:
        raise SystemExit(f"cannot set up the bare venv: {why}")

    def save() -> None:
        results_path.write_text(json.dumps(record, indent=1, sort_keys=True))

    for b in benches:
        entry = record["benchmarks"].setdefault(b.name, {})
        entry["requirements"] = b.requirements()
        entry["extra_opts"] = list(b.extra_opts)
        if "bare" not in entry:
            with tempfile.TemporaryDirectory(prefix="pyperf-survey-") as scratch:
                cmd = [str(bare / "bin" / "python"), str(b.script),
                       *pyperf_app.WORKER_ARGS, *b.extra_opts]
                status, secs, tail = run_limited(cmd, timeout, logs / f"{b.name}.bare",
                                                 cwd=Path(scratch))
            entry["bare"] = {"status": status, "seconds": round(secs, 1),
                             "reason": reason_from(tail) if tail else ("timeout" if
                                                                     status == "timeout" else "")}
            print(f"{b.name:32s} bare   {status:10s} {secs:6.1f}s {entry['bare']['reason']}",
                  flush=True)
            save()
        need_extras = entry["bare"]["status"] != "ok" and entry["requirements"]
        if extras and need_extras and "extras" not in entry:
            venv = work / "venvs" / b.name
            ok, why = make_venv(venv, [f"pyperf=={pyperf_version}", *entry["requirements"]],
                                logs / f"{b.name}.pip", install_timeout)
            if not ok:
                entry["extras"] = {"status": "install failed", "seconds": 0, "reason": why}
            else:
                with tempfile.TemporaryDirectory(prefix="pyperf-survey-") as scratch:
                    cmd = [str(venv / "bin" / "python"), str(b.script),
                           *pyperf_app.WORKER_ARGS, *b.extra_opts]
                    status, secs, tail = run_limited(cmd, timeout, logs / f"{b.name}.extras",
                                                     cwd=Path(scratch))
                entry["extras"] = {"status": status, "seconds": round(secs, 1),
                                   "reason": reason_from(tail) if tail else (
                                       "timeout" if status == "timeout" else "")}
            print(f"{b.name:32s} extras {entry['extras']['status']:10s} "
                  f"{entry['extras']['seconds']:6.1f}s {entry['extras']['reason']}", flush=True)
            save()
    record["meta"] = {
        "date": dt.date.today().isoformat(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "base_executable": getattr(sys, "_base_executable", sys.executable),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.system()} "
                   f"{platform.release()}",
        "pyperformance": perf_version,
        "pyperf": pyperf_version,
        "timeout": timeout,
        "benchmarks_dir": str(pyperf_app.benchmarks_dir()),
    }
    save()
    return record


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(record: dict, command: str) -> str:
    """Render the survey record as the Markdown of SURVEY.md."""
    meta = record["meta"]
    rows = sorted(record["benchmarks"].items())
    bare_ok = [n for n, e in rows if e["bare"]["status"] == "ok"]
    extras_ok = [n for n, e in rows if e.get("extras", {}).get("status") == "ok"]
    never = [n for n, e in rows if n not in bare_ok and n not in extras_ok]
    out = [
        "# pyperformance benchmarks as one-shot applications: survey",
        "",
        f"- date: {meta['date']}",
        f"- interpreter: {meta['implementation']} {meta['python']} "
        f"(`{meta['base_executable']}`), {meta['machine']}",
        f"- pyperformance {meta['pyperformance']}, pyperf {meta['pyperf']}; sources in "
        f"`{meta['benchmarks_dir']}`",
        f"- each benchmark run once: `python run_benchmark.py {' '.join(pyperf_app.WORKER_ARGS)}"
        f" [extra_opts]`, time limit {meta['timeout']:.0f} s, from an empty scratch directory",
        "- *nothing extra*: a fresh venv with only pyperformance and its dependencies "
        "(pyperf, packaging, psutil)",
        "- *with requirements*: for a benchmark that failed above, a fresh venv with pyperf "
        "plus its `requirements.txt` (else its `pyproject.toml` dependencies), from the "
        "package index",
        f"- reproduce: `{command}` (from the repository root; logs and `results.json` in "
        "the work directory)",
        "",
        f"**{len(rows)} benchmarks: {len(bare_ok)} run with nothing extra, "
        f"{len(extras_ok)} more run once their requirements are installed, "
        f"{len(never)} {'does' if len(never) == 1 else 'do'} not run here.**",
        "",
        "Variants (e.g. `pickle_dict`, `async_tree_io`; `pyperf_app.py list --variants`) "
        "share their directory's code and requirements and are not surveyed separately.",
        "",
        "| benchmark | runs with nothing extra | runs with requirements | needs | "
        "time (s) | why not |",
        "|---|---|---|---|---|---|",
    ]
    for name, e in rows:
        bare = e["bare"]
        ext = e.get("extras")
        runs_bare = "yes" if bare["status"] == "ok" else "no"
        if bare["status"] == "ok":
            runs_ext, secs, why = "-", bare["seconds"], ""
        elif ext is None:
            runs_ext = "no" if not e["requirements"] else "not tried"
            secs, why = bare["seconds"], f"{bare['status']}: {bare['reason']}"
        else:
            runs_ext = "yes" if ext["status"] == "ok" else "no"
            secs = ext["seconds"] if ext["status"] == "ok" else bare["seconds"]
            why = "" if ext["status"] == "ok" else f"{ext['status']}: {ext['reason']}"
        needs = ", ".join(e["requirements"]) or "-"
        if bare["status"] != "ok" and e["requirements"]:
            needs += f" (without: {bare['reason'] or bare['status']})"
        out.append(f"| {name} | {runs_bare} | {runs_ext} | {_cell(needs)} | {secs} | "
                   f"{_cell(why)} |")
    notes = [f"- **{n}**: {NOTES[n]}" for n in never if n in NOTES]
    if notes:
        out += ["", "Why the failures fail:", "", *notes]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Command-line entry: run (or resume) the survey and write SURVEY.md."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/memtrim-pyperf-survey"),
                    help="venvs, logs and results.json (a rerun resumes from it)")
    ap.add_argument("--out", type=Path, default=None,
                    help="default: SURVEY.md beside this script; with --only, in --work")
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds per benchmark run")
    ap.add_argument("--install-timeout", type=float, default=900.0,
                    help="seconds per pip install")
    ap.add_argument("--no-extras", action="store_true", help="skip the requirements stage")
    ap.add_argument("--fresh", action="store_true", help="forget earlier results in --work")
    ap.add_argument("--only", nargs="+", metavar="NAME", help="survey only these benchmarks")
    args = ap.parse_args(argv)
    if args.fresh and (args.work / "results.json").exists():
        (args.work / "results.json").unlink()
    record = survey(args.only, args.work, args.timeout, args.install_timeout,
                    not args.no_extras)
    if args.out is None:
        # A partial survey must not overwrite the full table.
        args.out = args.work / "SURVEY.partial.md" if args.only else HERE / "SURVEY.md"
    if args.only:
        record["benchmarks"] = {k: v for k, v in record["benchmarks"].items() if k in args.only}
    try:
        shown = Path(sys.argv[0]).resolve().relative_to(Path.cwd())
    except ValueError:
        shown = Path(sys.argv[0])
    command = "nice " + shlex.join([os.path.relpath(sys.executable)
                                    if sys.executable.startswith(os.getcwd()) else
                                    sys.executable, str(shown), *(argv or sys.argv[1:])])
    args.out.write_text(to_markdown(record, command), encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
