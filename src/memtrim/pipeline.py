"""``memtrim optimize``: baseline, then for each step apply, verify, measure; then write.

Every step's edits are verified against the oracle recorded from the original
program; when the candidate differs, the step's edits are bisected and the
offending ones dropped, with the difference that condemned each.  The input
tree is never written: candidates are built in a temporary directory and the
result is moved into OUTDIR atomically at the end.
"""

from __future__ import annotations

import ast
import datetime as _dt
import difflib
import json
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from . import __version__
from .app import App
from .devices import device_fit
from .edits import Edit, apply_edits
from .measure.workloads import measure_details, measure_floor, measure_workloads
from .passes.static_removal import StaticRemovalPass
from .program import Program
from .verify import Oracle, bisect_edits, record_oracle, verify

SCHEMA = "memtrim.optimize/1"
REPORT_NAME = "memtrim-report.json"
_IGNORE = shutil.ignore_patterns(
    "__pycache__", "*.pyc", ".git", ".venv", ".pytest_cache", ".ruff_cache", ".mypy_cache"
)
_IGNORE_KEEP_PYC = shutil.ignore_patterns(
    ".git", ".venv", ".pytest_cache", ".ruff_cache", ".mypy_cache"
)


class OptimizeError(Exception):
    """Optimization cannot start or finish; the message is one line for the user."""


@dataclass
class OptimizeRequest:
    """What to optimize, where to write it, and how."""

    app: App
    outdir: Path | None  # None with diff_only/check_only
    python: str = sys.executable
    python_args: list[str] = field(default_factory=list)
    keep: Sequence[str] = ()
    force: bool = False
    diff_only: bool = False
    check_only: bool = False
    measure: bool = True
    repeat: int = 1
    oracle_repeat: int = 2
    lambda_pct: float = 1.0
    steps: Sequence[str] | None = None  # names of the steps to run; None: all of the mode's
    optimize_asserts: bool = False  # -O-equivalent stripping (asserts, `if __debug__:`): opt-in
    device: str | None = None  # a board name or RAM size: verdict under an enforced limit
    bundle: Path | None = None  # also write a deployable bundle (launcher, .pyc, manifest)
    details: bool = True  # import tree and arenas before and after (two extra runs each)
    include_packages: Sequence[str] = ()  # third-party packages to vendor ("all": every one)
    vendor_extensions: str = "copy"  # C extensions: "copy" (binaries) or "link" (original)


def check_outdir(app: App, outdir: Path, force: bool) -> None:
    """Refuse an OUTDIR inside (or containing) the input tree, or non-empty without force."""
    out = outdir.resolve()
    root = app.root.resolve()
    if out == root or root in out.parents or out in root.parents:
        raise OptimizeError(
            f"output directory {outdir} overlaps the input tree {root}; memtrim never writes there"
        )
    if out.exists() and not out.is_dir():
        raise OptimizeError(f"output path {outdir} exists and is not a directory")
    if out.exists() and any(out.iterdir()) and not force:
        raise OptimizeError(f"output directory {outdir} is not empty (use --force to replace it)")


def _write_changes(program: Program, changes: dict[str, str], dest: Path) -> None:
    for rel, text in changes.items():
        module = program.module_by_path(rel)
        target = dest / rel
        if module is None:  # a file a step creates (a cold module, a lazy-import helper)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
        else:
            # written back in the file's own encoding (PEP 263 coding line, BOM)
            target.write_bytes(module.encode(text))


def _build(
    step: Step, program: Program, edits: Sequence[Edit], src: Path, dest: Path,
    bytecode: tuple[str, Sequence[str]] | None = None,
) -> dict[str, str]:
    """A copy of ``src`` at ``dest`` with ``edits`` applied; returns the changed files.

    ``bytecode`` (python, python_args): ``src`` is a tree memtrim built, whose
    ``.pyc`` files are valid: keep them (shared libraries hard-linked, see
    ``vendor.copy_tree``) and compile the changed files; a vendored package
    without bytecode is recompiled on every run (slower, higher peak RSS).
    """
    if bytecode is None:
        shutil.copytree(src, dest, symlinks=True, ignore=_IGNORE)
    else:
        from .vendor import copy_tree

        copy_tree(src, dest, ignore=_IGNORE_KEEP_PYC)
    changes = step.apply(program, edits)
    _write_changes(program, changes, dest)
    if bytecode is not None:
        from .vendor import compile_tree

        compile_tree(dest, python=bytecode[0], python_args=bytecode[1], files=list(changes))
    return changes


def _step_gain(before: dict, after: dict) -> dict:
    gains = {}
    for name, b in before.items():
        a = after.get(name, {})
        if b.get("peak_rss") and a.get("peak_rss"):
            gains[name] = {
                "peak_rss_before": b["peak_rss"],
                "peak_rss_after": a["peak_rss"],
                "reduction_pct": round(100.0 * (1 - a["peak_rss"] / b["peak_rss"]), 2),
                "wall_ratio": round(a["wall"] / b["wall"], 3) if b.get("wall") else None,
            }
    return gains


def optimize(req: OptimizeRequest, progress: Callable[[str], None] | None = None) -> dict:
    """Run the pipeline and return the report (schema ``memtrim.optimize/1``).

    Raises OptimizeError when it cannot start: the output directory is refused,
    the app has no workloads, or the original fails (nothing to verify against).
    """
    from .verify import VerificationError

    say = progress or (lambda _msg: None)
    app = req.app
    started = time.perf_counter()
    if req.outdir is not None and not (req.diff_only or req.check_only):
        check_outdir(app, req.outdir, req.force)
    if req.bundle is not None and not (req.diff_only or req.check_only):
        check_outdir(app, req.bundle, req.force)
        if req.outdir is not None and req.bundle.resolve() == req.outdir.resolve():
            raise OptimizeError("--bundle must be another directory than -o OUTDIR")
    if req.device or app.device:
        from .devices import device

        try:
            device(req.device or app.device)
        except ValueError as e:
            raise OptimizeError(str(e)) from None
    if not app.workloads and not app.test_command:
        raise OptimizeError(
            "the application has no workloads to verify against "
            "(give '-- ARGS' or [[workloads]] in memtrim.toml)"
        )

    steps = default_steps(req)  # unknown --steps names fail before any run
    say("reading the source tree")
    program = Program.load(app.root, entry=app.script, module=app.module)
    report: dict = {
        "schema": SCHEMA,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "memtrim_version": __version__,
        "app": {
            "root": str(app.root),
            "entry": str(app.script) if app.script else None,
            "module": app.module,
            "workloads": [w.name for w in app.workloads],
        },
        "mode": app.mode,
        "warning": _mode_warning(app.mode),
        "interpreter": {"python": req.python, "args": list(req.python_args)},
        "outdir": str(req.outdir) if req.outdir and not (req.diff_only or req.check_only) else None,
        "problems": [
            {"path": p.path, "line": p.line, "message": p.message} for p in program.problems
        ],
        "steps": [],
        "warnings": other_scripts_warnings(program),
        "_started": started,
    }

    say("recording the original's behaviour")
    try:
        oracle = record_oracle(
            app, python=req.python, flags=req.python_args, repeat=req.oracle_repeat
        )
    except VerificationError as e:
        raise OptimizeError(f"the original program cannot be verified against: {e}") from None
    report["oracle"] = oracle.to_dict()

    if req.measure:
        say("measuring the original")
        report["floor_peak_rss"] = measure_floor(req.python, req.python_args, repeat=req.repeat)
        report["baseline"] = measure_workloads(app, req.python, req.python_args, repeat=req.repeat)
        report["timeline"] = _pop_timelines(report["baseline"])
        if req.details:
            report.update(measure_details(app, req.python, req.python_args))

    with tempfile.TemporaryDirectory(prefix="memtrim-optimize-") as tmp:
        tmpdir = Path(tmp)
        current = app.root  # the tree the next step starts from
        before = report.get("baseline")
        vendored: tuple[str, ...] = ()
        if req.include_packages:
            current, vendored = _vendor(req, program, tmpdir, report, say)
            program = Program.load(current, entry=app.relocated(current).script, module=app.module)
        queue = list(steps)
        index = 0
        while queue:
            step_impl = queue.pop(0)
            ctx = StepContext(app=app.relocated(current), oracle=oracle, request=req, say=say)
            # steps that do not rewrite third-party code never see the vendored packages
            seen = program
            if vendored and not getattr(step_impl, "vendored_code", False):
                seen = Program.load(current, entry=app.relocated(current).script,
                                    module=app.module, exclude=vendored)
            step, built, after = _run_step(index, step_impl, seen, ctx, tmpdir, before,
                                           bytecode=(req.python, req.python_args) if vendored
                                           else None)
            index += 1
            report["steps"].append(step)
            more = getattr(step_impl, "next_steps", None)  # hierarchy reduction's rounds
            if more is not None:
                queue[:0] = more(step, req.lambda_pct)
            if built is None:
                continue
            current, before = built, after or before
            program = Program.load(current, entry=app.relocated(current).script, module=app.module)
        # with vendored packages, the changes are those made to the vendored tree:
        # the packages' own sources are not part of the diff
        report["diff"] = tree_diff(tmpdir / "vendored" if vendored else app.root, current)
        report["changed"] = bool(report["diff"])
        if req.measure:
            report["final"] = before
            last = next((st for st in reversed(report["steps"]) if st.get("kept_step")), None)
            if last is not None and req.details and current != app.root:
                say("measuring the optimized program's imports and arenas")
                last.update(measure_details(app.relocated(current), req.python, req.python_args))
            report["device"] = device_fit(_max_peak(report["baseline"]), _max_peak(before))
        board = req.device or app.device
        if board and not (req.diff_only or req.check_only):
            from .devices import device
            from .measure.limits import enforced_fit

            say(f"running the workloads under the {board} limit")
            report["device_target"] = enforced_fit(
                device(board),
                app,
                app.relocated(current),
                python=req.python,
                flags=req.python_args,
                peak_original=_max_peak(report.get("baseline")),
                peak_optimized=_max_peak(before),
                oracle=oracle,
            )
        if req.bundle is not None and not (req.diff_only or req.check_only):
            from .bundle import bundle
            from .launcher import settings_chooser

            say(f"bundling into {req.bundle}")
            manifest = bundle(
                current,
                req.bundle,
                app=app.relocated(current),
                python=req.python,
                settings=settings_chooser(
                    oracle,
                    req.python,
                    say=say,
                    base_flags=req.python_args,
                    optimize_asserts=req.optimize_asserts,
                    repeat=max(req.repeat, 3),
                    threshold_pct=req.lambda_pct,
                ),
                oracle=oracle,
                force=req.force,
                say=say,
            )
            report["bundle"] = {**manifest.to_json(), "outdir": str(req.bundle)}
        if req.outdir is not None and not (req.diff_only or req.check_only):
            say(f"writing {req.outdir}")
            _install(current, req.outdir, report)
    if "_started" in report:
        report["duration"] = round(time.perf_counter() - report.pop("_started"), 3)
    return report


@dataclass
class StepContext:
    """What a step may look at: the app as it stands, the oracle, the request."""

    app: App
    oracle: Oracle
    request: OptimizeRequest
    say: Callable[[str], None]


class Step(Protocol):
    """One optimization step: it reads the program and proposes independent edits."""

    name: str
    description: str
    # keep the step only if it lowers peak RSS by at least lambda %; steps that
    # only remove code cannot raise it, so they are kept whatever the noise says
    needs_gain: bool

    def run(self, program: Program, ctx: StepContext) -> list[Edit]:
        """Propose this step's edits for ``program``."""
        ...

    def apply(self, program: Program, edits: Sequence[Edit]) -> dict[str, str]:
        """New text of every file the ``edits`` change or create (relative path -> text).

        Any subset of the edits ``run`` proposed must apply and give valid Python.
        """
        ...


class StaticRemovalStep:
    """Step 4 of the paper, statically: unused imports, variables, functions, classes."""

    name = "static-removal"
    description = "redundant imports, variables, functions and classes (static proof)"
    needs_gain = False

    def run(self, program: Program, ctx: StepContext) -> list[Edit]:
        """The static removal pass, honouring the config's and the CLI's keep-lists."""
        return StaticRemovalPass(keep=[*ctx.app.keep, *ctx.request.keep]).run(program)

    def apply(self, program: Program, edits: Sequence[Edit]) -> dict[str, str]:
        """Removals, applied with libcst (formatting and comments kept)."""
        return apply_edits(program, edits)


def all_steps(req: OptimizeRequest) -> list[Step]:
    """Every step of the request's mode, in pipeline order.

    Outlining comes after every step that moves code between modules (its stubs
    import a cold module beside their own file).
    """
    from .passes.hierarchy import HierarchyReductionStep
    from .passes.lazy_imports import LazyImportStep
    from .passes.outline import OutlineStep
    from .passes.specialize import SpecializeStep, UnreachableCodeStep
    from .passes.strip import StripStep

    strip = StripStep(optimize_level=1 if req.optimize_asserts else 0, keep=req.keep)
    # lazy imports after outlining: a module __getattr__ would keep imports from moving
    # hierarchy reduction moves code between modules: before outlining
    if req.app.mode == "specialize":
        return [StaticRemovalStep(), UnreachableCodeStep(), SpecializeStep(),
                HierarchyReductionStep(), LazyImportStep(), strip]
    return [StaticRemovalStep(), UnreachableCodeStep(), HierarchyReductionStep(), OutlineStep(),
            LazyImportStep(), strip]


def other_scripts_warnings(program: Program) -> list[str]:
    """A warning for each module of the tree, other than the entry, that is a script.

    Removals are judged from the entry's workloads: definitions that only another
    script uses (a ``prepare.py`` or a training script beside the application)
    look unused and may be removed or outlined.  The user keep-lists them or
    adds a workload that runs that script.
    """
    out = []
    for name, mod in sorted(program.modules.items()):
        if name == program.entry_module or mod.tree is None or mod.alias_of:
            continue
        if any(_is_main_guard(s) for s in mod.tree.body):
            out.append(
                f"{mod.path.as_posix()} is a script of its own (it has an "
                f"`if __name__ == \"__main__\":` block) that no workload runs: definitions "
                f"only it uses may be removed; keep them with keep = [\"{name}:*\"] and "
                "the modules it imports, or add a workload that runs it")
    return out


def _is_main_guard(stmt: ast.stmt) -> bool:
    """``if __name__ == "__main__":`` (either operand order)."""
    if not isinstance(stmt, ast.If) or not isinstance(stmt.test, ast.Compare):
        return False
    t = stmt.test
    if len(t.ops) != 1 or not isinstance(t.ops[0], ast.Eq):
        return False
    sides = [t.left, t.comparators[0]]
    return (any(isinstance(x, ast.Name) and x.id == "__name__" for x in sides)
            and any(isinstance(x, ast.Constant) and x.value == "__main__" for x in sides))


def default_steps(req: OptimizeRequest) -> list[Step]:
    """The steps ``optimize`` runs, in order: all of the mode's, or those ``--steps`` names."""
    steps = all_steps(req)
    if req.steps is None:
        return steps
    known = {s.name for s in steps}
    unknown = [name for name in req.steps if name not in known]
    if unknown:
        raise OptimizeError(
            f"unknown step(s) {', '.join(unknown)}; steps of mode {req.app.mode}: "
            + ", ".join(s.name for s in steps)
        )
    return [s for s in steps if s.name in req.steps]


def _mode_warning(mode: str) -> str | None:
    if mode != "specialize":
        return None
    from .passes.specialize import WARNING

    return WARNING


def _pop_timelines(measurements: dict) -> dict:
    """Move each workload's timeline out of its measurement (the report keeps them apart)."""
    return {name: m.pop("timeline") for name, m in measurements.items() if "timeline" in m}


def _max_peak(measurements: dict | None) -> int | None:
    peaks = [m.get("peak_rss") for m in (measurements or {}).values()]
    return max((p for p in peaks if p), default=None)


def _vendor(req: OptimizeRequest, program: Program, tmpdir: Path, report: dict,
            say: Callable[[str], None]) -> tuple[Path, tuple[str, ...]]:
    """Copy the app and the chosen third-party packages into one tree (``--include-packages``)."""
    from .analysis.modgraph import record_imports
    from .vendor import compile_tree, copy_tree, third_party_tops, vendor_packages

    app = req.app
    tree = tmpdir / "vendored"
    copy_tree(app.root, tree, ignore=_IGNORE)
    own = {name.partition(".")[0] for name in program.modules}
    names = list(req.include_packages)
    if names == ["all"]:
        say("recording the workloads' imports to choose the packages to vendor")
        records = record_imports(app, req.python, req.python_args,
                                 main_name=program.entry_module or None)
        names = [n for n in third_party_tops(records.loaded, req.python) if n not in own]
    say(f"vendoring {', '.join(names) or 'nothing'}")
    manifest = vendor_packages(tree, names, python=req.python, app_names=own,
                               extensions=req.vendor_extensions)
    compile_tree(tree, python=req.python, python_args=req.python_args)
    report["vendored"] = manifest.to_dict()
    return tree, tuple(manifest.names)


def _run_step(
    index: int,
    impl: Step,
    program: Program,
    ctx: StepContext,
    tmpdir: Path,
    before: dict | None,
    bytecode: tuple[str, Sequence[str]] | None = None,
) -> tuple[dict, Path | None, dict | None]:
    """Propose, verify (bisecting on failure), build and measure one step.

    Returns the step's report entry, the tree it built (None when the step was
    not kept), and its measurements.
    """
    req, say = ctx.request, ctx.say
    say(f"{impl.name}: {impl.description}")
    started = time.perf_counter()
    edits = impl.run(program, ctx)
    analysis = getattr(impl, "summary", None)  # e.g. the fraction outlined, and why not more
    kept, dropped, runs = _verify_edits(impl, program, edits, ctx, tmpdir)
    step: dict = {
        "name": impl.name,
        "description": impl.description,
        "proposed": len(edits),
        "kept": [e.to_json() for e in kept],
        "dropped": dropped,
        "edits_by_kind": dict(Counter(e.kind for e in kept)),
        "verification_runs": runs,
    }
    if analysis is not None:
        step["analysis"] = analysis
    notes = getattr(impl, "notes", None)  # what a guard kept, and why
    if notes:
        step["kept_notes"] = [n.to_json() if hasattr(n, "to_json") else str(n) for n in notes]
    if not kept:  # nothing to build or measure: the tree is unchanged
        step.update(files_changed=[], kept_step=True,
                    duration=round(time.perf_counter() - started, 3))
        return step, None, None
    built = tmpdir / f"step{index}-{impl.name}"
    changes = _build(impl, program, kept, ctx.app.root, built, bytecode)
    step["files_changed"] = sorted(changes)
    after = None
    if req.measure and before is not None:
        say(f"{impl.name}: measuring")
        after = measure_workloads(
            ctx.app.relocated(built), req.python, req.python_args, repeat=req.repeat
        )
        step["timeline"] = _pop_timelines(after)
        step["measurements"] = after
        step["gain"] = _step_gain(before, after)
        if impl.needs_gain and kept:
            gains = [g["reduction_pct"] for g in step["gain"].values()]
            if not gains or max(gains) < req.lambda_pct:
                step["kept_step"] = False
                step["why_not_kept"] = (
                    f"best peak-RSS reduction {max(gains, default=0):.2f}% is below "
                    f"lambda = {req.lambda_pct}%"
                )
                step["duration"] = round(time.perf_counter() - started, 3)
                return step, None, None
    step["kept_step"] = True
    step["duration"] = round(time.perf_counter() - started, 3)
    return step, (built if changes else None), after


def tree_diff(original: Path, result: Path) -> str:
    """A unified diff of every Python file that differs between two trees."""
    out = []
    names = {p.relative_to(original).as_posix() for p in original.rglob("*.py")}
    names |= {p.relative_to(result).as_posix() for p in result.rglob("*.py")}
    for rel in sorted(names):
        a, b = original / rel, result / rel
        before = a.read_text(encoding="utf-8", errors="surrogateescape") if a.exists() else ""
        after = b.read_text(encoding="utf-8", errors="surrogateescape") if b.exists() else ""
        if before != after:
            out.extend(
                difflib.unified_diff(
                    before.splitlines(keepends=True),
                    after.splitlines(keepends=True),
                    f"a/{rel}" if a.exists() else "/dev/null",
                    f"b/{rel}" if b.exists() else "/dev/null",
                )
            )
    return "".join(out)


def _verify_edits(
    step: Step, program: Program, edits: Sequence[Edit], ctx: StepContext, tmpdir: Path
) -> tuple[list[Edit], list[dict], int]:
    """Verify ``edits`` together; on a difference, bisect and drop the offenders."""
    if not edits:
        return [], [], 0
    counter = iter(range(1_000_000))
    req, say = ctx.request, ctx.say

    def passes(subset: Sequence[Edit]):
        n = next(counter)
        say(f"{step.name}: verifying {len(subset)} of {len(edits)} edits (run {n + 1})")
        cand = tmpdir / f"cand{n}"
        try:
            _build(step, program, subset, ctx.app.root, cand)
        except Exception as e:  # an edit that cannot be applied fails its subset
            shutil.rmtree(cand, ignore_errors=True)
            return _BuildFailure(f"{type(e).__name__}: {e}")
        try:
            return verify(
                ctx.app.relocated(cand),
                ctx.oracle,
                python=req.python,
                flags=req.python_args,
                fail_fast=True,
            )
        finally:
            shutil.rmtree(cand, ignore_errors=True)

    result = bisect_edits(list(edits), passes)
    return list(result.kept), [d.to_dict() for d in result.dropped], result.runs


class _BuildFailure:
    """A subset whose edits could not be applied: it fails, with the reason as evidence."""

    ok = False

    def __init__(self, message: str) -> None:
        self.message = message

    def all_differences(self) -> list:
        from .verify import Difference

        return [
            Difference(workload="(build)", stream="apply", excerpt=self.message, normalized=False)
        ]


def _install(built: Path, outdir: Path, report: dict) -> None:
    """Move ``built`` and its reports to ``outdir`` atomically, replacing an old OUTDIR last."""
    from .report.html import write_run_reports

    outdir = outdir.resolve()
    outdir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{outdir.name}.new-", dir=outdir.parent))
    shutil.copytree(built, staging / "tree", symlinks=True)
    report["duration"] = round(time.perf_counter() - report.pop("_started"), 3)
    (staging / "tree" / REPORT_NAME).write_text(
        json.dumps(report, indent=1) + "\n", encoding="utf-8"
    )
    write_run_reports(report, staging / "tree")
    old = None
    if outdir.exists():
        old = outdir.parent / f".{outdir.name}.old-{os.getpid()}"
        os.replace(outdir, old)
    os.replace(staging / "tree", outdir)
    shutil.rmtree(staging, ignore_errors=True)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
