"""The verifier: the original program's recorded behaviour, differential runs, bisection.

The oracle is the behaviour of the *original* program on every workload (exit code,
stdout, stderr, the files it writes) plus the result of the application's own test
command.  After each pass the transformed program runs in a scratch directory and is
compared with the oracle, after the user's regex normalizers (timestamps, addresses,
timings) and after replacing each run's own source root by ``{root}`` and working
directory by ``{cwd}``.  When a pass's result differs, :func:`bisect_edits` finds the
offending edits by delta debugging; they are dropped and the rest verified again.

An original that fails a workload is refused (:class:`VerificationError`): there
would be nothing to verify against.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

from memtrim.app import App, ConfigError, Normalizer, Workload
from memtrim.workload_run import RunRecord, run_command, run_workload, tail_lines

__all__ = [
    "BisectError",
    "BisectResult",
    "Difference",
    "DroppedEdit",
    "NondeterminismError",
    "Oracle",
    "Outcome",
    "RunRecord",
    "VerificationError",
    "VerifyResult",
    "bisect_edits",
    "compare",
    "normalize_text",
    "record_oracle",
    "run_workload",
    "verify",
]

# A diff excerpt in a Difference is for a human reading the report, not a full diff.
_EXCERPT_LINES = 20
_EXCERPT_WIDTH = 200
# Files that never belong to a copy of the source tree used to run the test command.
_COPY_IGNORE = ("__pycache__", ".git", ".hg", ".pytest_cache", ".mypy_cache", ".ruff_cache")
_DEFAULT_TEST_TIMEOUT = 600.0


class VerificationError(RuntimeError):
    """The original program cannot serve as an oracle (it fails, or is not deterministic)."""


class NondeterminismError(VerificationError):
    """Two runs of the original program on the same workload differ after normalization."""

    def __init__(self, message: str, differences: Sequence[Difference]) -> None:
        super().__init__(message)
        self.differences = list(differences)


class BisectError(RuntimeError):
    """Bisection cannot produce a verified set (the program fails with no edit applied)."""


# --------------------------------------------------------------------------- compare


@dataclass(frozen=True)
class Difference:
    """One way a candidate run differs from the oracle.

    ``stream`` is ``exit_code``, ``timeout``, ``stdout``, ``stderr``,
    ``output:<name>``, ``files`` (the set of files created), ``run`` (the candidate
    could not be started) or ``test_command``.  ``excerpt`` is a short unified diff
    (original -> candidate) or a one-line description.  ``normalized`` says whether
    the compared texts had the normalizers applied.
    """

    workload: str
    stream: str
    excerpt: str
    normalized: bool = False

    def summary(self) -> str:
        """One line: where the difference is."""
        return f"workload {self.workload!r}: {self.stream} differs"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict for the report."""
        return dataclasses.asdict(self)


def _compile(normalizers: Iterable[Normalizer]) -> list[tuple[re.Pattern[str], str]]:
    compiled = []
    for n in normalizers:
        try:
            # MULTILINE: outputs are line-oriented, so "^" and "$" mean a line's ends.
            compiled.append((re.compile(n.pattern, re.MULTILINE), n.replace))
        except re.error as e:
            raise ConfigError(f"normalizer {n.pattern!r} is not a valid regex: {e}") from None
    return compiled


def _path_forms(path: str) -> list[str]:
    # The same directory can be spelled through a symlink (/tmp -> /private/tmp):
    # replace every spelling the program might print.
    forms = {path}
    if path:
        try:
            forms.add(str(Path(path).resolve()))
        except OSError:
            pass
    return [f for f in forms if f]


def normalize_text(
    text: str, normalizers: Iterable[Normalizer] = (), *, root: str = "", cwd: str = ""
) -> str:
    """Replace ``root`` by ``{root}``, ``cwd`` by ``{cwd}``, then apply the normalizers.

    Paths go first so that a user's pattern never has to match a run's location.
    The longest path is replaced first, since one may contain the other.  Patterns
    are Python regexes in MULTILINE mode; ``replace`` may use group references.
    """
    return _normalize(text, _compile(normalizers), root=root, cwd=cwd)


def _normalize(
    text: str, compiled: Sequence[tuple[re.Pattern[str], str]], *, root: str = "", cwd: str = ""
) -> str:
    pairs = [(p, "{root}") for p in _path_forms(root)] + [(p, "{cwd}") for p in _path_forms(cwd)]
    for path, token in sorted(pairs, key=lambda pt: -len(pt[0])):
        text = text.replace(path, token)
    for pattern, replace in compiled:
        text = pattern.sub(replace, text)
    return text


def _decode(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


def _is_text(data: bytes) -> bool:
    # A NUL byte or invalid UTF-8 marks a binary file, compared byte for byte.
    if b"\x00" in data[:8192]:
        return False
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _diff_excerpt(original: str, candidate: str) -> str:
    a, b = original.splitlines(), candidate.splitlines()
    lines = list(difflib.unified_diff(a, b, "original", "candidate", n=2, lineterm=""))
    if not lines:
        return "the texts differ only in line endings or the final newline"
    shown = [ln if len(ln) <= _EXCERPT_WIDTH else ln[:_EXCERPT_WIDTH] + "..." for ln in lines]
    if len(shown) > _EXCERPT_LINES:
        shown = shown[:_EXCERPT_LINES] + [f"... ({len(lines) - _EXCERPT_LINES} more diff lines)"]
    return "\n".join(shown)


def _binary_excerpt(original: bytes, candidate: bytes) -> str:
    offset = next(
        (i for i, (x, y) in enumerate(zip(original, candidate, strict=False)) if x != y),
        min(len(original), len(candidate)),
    )
    return (
        f"binary contents differ: {len(original)} bytes -> {len(candidate)} bytes, "
        f"first difference at byte {offset}"
    )


def compare(
    oracle_record: RunRecord,
    candidate_record: RunRecord,
    normalizers: Sequence[Normalizer] = (),
) -> list[Difference]:
    """The differences between the oracle's run and a candidate's run of one workload.

    stdout, stderr (unless the workload sets ``compare_stderr = false``) and text
    outputs are decoded as UTF-8 (surrogateescape) and normalized (each run's own
    root and working directory, then the regexes) before comparing; binary outputs
    are compared byte for byte.  The exit code, a timeout, a missing output and a
    change in the set of files created are differences too.  Returns ``[]`` when
    the candidate behaves the same.
    """
    o, c = oracle_record, candidate_record
    name = o.workload
    compiled = _compile(normalizers)
    if c.timed_out and not o.timed_out:
        # The rest of a killed run's output is truncated: one clear difference is enough.
        return [Difference(name, "timeout", "the candidate timed out; the original did not")]
    diffs: list[Difference] = []
    if o.exit_code != c.exit_code:
        diffs.append(Difference(name, "exit_code", f"exit code {o.exit_code} -> {c.exit_code}"))

    def norm(data: bytes, rec: RunRecord) -> str:
        return _normalize(_decode(data), compiled, root=rec.root, cwd=rec.cwd)

    streams = [("stdout", o.stdout, c.stdout)]
    if o.compare_stderr:
        streams.append(("stderr", o.stderr, c.stderr))
    for stream, od, cd in streams:
        if od == cd:
            continue
        on, cn = norm(od, o), norm(cd, c)
        if on != cn:
            diffs.append(Difference(name, stream, _diff_excerpt(on, cn), normalized=True))

    for out in o.outputs:
        od, cd = o.outputs[out], c.outputs.get(out)
        stream = f"output:{out}"
        if od == cd:
            continue
        if od is None:
            what = f"written by the candidate only ({len(cd or b'')} bytes)"
            diffs.append(Difference(name, stream, what))
        elif cd is None:
            what = f"not written by the candidate (original: {len(od)} bytes)"
            diffs.append(Difference(name, stream, what))
        elif _is_text(od) and _is_text(cd):
            on, cn = norm(od, o), norm(cd, c)
            if on != cn:
                diffs.append(Difference(name, stream, _diff_excerpt(on, cn), normalized=True))
        else:
            diffs.append(Difference(name, stream, _binary_excerpt(od, cd)))

    # Undeclared files are not compared by content, but creating a different set of
    # files is observable behaviour (names normalized: log-<timestamp>.txt).
    of = {_normalize(f, compiled) for f in o.files}
    cf = {_normalize(f, compiled) for f in c.files}
    if of != cf:
        parts = [f"-{f}" for f in sorted(of - cf)] + [f"+{f}" for f in sorted(cf - of)]
        what = "files created: " + " ".join(parts)
        diffs.append(Difference(name, "files", what, normalized=True))
    return diffs


# --------------------------------------------------------------------------- oracle


def _workload_from_dict(d: Mapping[str, Any]) -> Workload:
    return Workload(
        name=d["name"],
        args=tuple(d["args"]),
        stdin=d["stdin"],
        env=tuple((k, v) for k, v in d["env"]),
        outputs=tuple(d["outputs"]),
        compare_stderr=bool(d["compare_stderr"]),
        expect_exit=d["expect_exit"],
        timeout=float(d["timeout"]),
    )


@dataclass
class Oracle:
    """The original program's recorded behaviour: one run per workload, plus its tests."""

    root: str
    python: str
    flags: tuple[str, ...]
    workloads: tuple[Workload, ...]
    records: dict[str, RunRecord]
    normalizers: tuple[Normalizer, ...] = ()
    test_command: tuple[str, ...] = ()
    test_record: RunRecord | None = None
    repeat: int = 1
    duration: float = 0.0

    def to_dict(self, full: bool = False) -> dict[str, Any]:
        """A JSON-able dict (``full`` keeps every byte, for :meth:`from_dict`)."""
        return {
            "root": self.root,
            "python": self.python,
            "flags": list(self.flags),
            "workloads": [dataclasses.asdict(w) for w in self.workloads],
            "records": {k: r.to_dict(full) for k, r in self.records.items()},
            "normalizers": [dataclasses.asdict(n) for n in self.normalizers],
            "test_command": list(self.test_command),
            "test_record": self.test_record.to_dict(full) if self.test_record else None,
            "repeat": self.repeat,
            "duration": self.duration if full else round(self.duration, 6),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Oracle:
        """Rebuild an oracle written by ``to_dict(full=True)`` (e.g. cached in a build dir)."""
        test = data.get("test_record")
        return cls(
            root=data["root"],
            python=data["python"],
            flags=tuple(data["flags"]),
            workloads=tuple(_workload_from_dict(w) for w in data["workloads"]),
            records={k: RunRecord.from_dict(r) for k, r in data["records"].items()},
            normalizers=tuple(Normalizer(**n) for n in data["normalizers"]),
            test_command=tuple(data["test_command"]),
            test_record=RunRecord.from_dict(test) if test else None,
            repeat=int(data["repeat"]),
            duration=float(data["duration"]),
        )


def _describe_exit(rec: RunRecord, timeout: float | None = None) -> str:
    if rec.timed_out:
        return f"timed out after {timeout:g} s" if timeout is not None else "timed out"
    if rec.exit_code < 0:
        return f"was killed by signal {-rec.exit_code}"
    return f"exited with {rec.exit_code}"


def _one_line(text: str, width: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


def _test_timeout(workloads: Sequence[Workload], test_timeout: float | None) -> float:
    if test_timeout is not None:
        return test_timeout
    return max((w.timeout for w in workloads), default=_DEFAULT_TEST_TIMEOUT)


def _run_test_command(
    command: Sequence[str], root: Path, *, python: str, timeout: float
) -> RunRecord:
    # "{root}" and "{python}" let a test command name the tree under test and the
    # interpreter memtrim runs with (a bare "python" may be another interpreter).
    argv = tuple(a.replace("{root}", str(root)).replace("{python}", python) for a in command)
    env = dict(os.environ)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    try:
        result = run_command(argv, cwd=root, env=env, timeout=timeout)
    except OSError as e:  # command not found, not executable
        return RunRecord("test_command", argv, str(root), str(root), 127, b"", str(e).encode())
    return RunRecord(
        workload="test_command",
        argv=argv,
        root=str(root),
        cwd=str(root),
        exit_code=result.exit_code,
        stdout=result.stdout,
        stderr=result.stderr,
        duration=result.duration,
        timed_out=result.timed_out,
    )


def _nondeterminism_message(workload: str, diffs: Sequence[Difference]) -> str:
    streams = ", ".join(dict.fromkeys(d.stream for d in diffs))
    # Show the first changed line of each run: usually enough to write the regex.
    first = diffs[0]
    changed = [
        ln
        for ln in first.excerpt.splitlines()
        if ln[:1] in "-+" and not ln.startswith(("---", "+++"))
    ][:2]
    sample = f" (e.g. {' vs '.join(repr(_one_line(c, 80)) for c in changed)})" if changed else ""
    hint = "add a [[normalizers]] pattern for the part that varies (timestamps, addresses, timings)"
    if any(d.stream == "stderr" for d in diffs):
        hint += ", or set compare_stderr = false"
    if any(d.stream in ("exit_code", "timeout") for d in diffs):
        hint += "; the exit status itself varies, which no normalizer can hide"
    return (
        f"the original program is not deterministic: two runs of workload {workload!r} "
        f"differ in {streams}{sample}; {hint}"
    )


def record_oracle(
    app: App,
    *,
    python: str,
    flags: Sequence[str] = (),
    repeat: int = 2,
    scratch_root: Path | None = None,
    test_timeout: float | None = None,
) -> Oracle:
    """Run the original program on every workload (and its test command) and record it.

    Each workload runs ``repeat`` times (default 2) in fresh scratch directories;
    if the runs differ after normalization the original is not deterministic and
    :class:`NondeterminismError` names the workload and the stream and suggests a
    normalizer.  Raises :class:`VerificationError` (one line: workload, exit code,
    end of stderr) if the original fails a workload (exit code other than
    ``expect_exit``, a timeout, or a declared output it does not write) or its test
    command, or if there is nothing to verify (no workload and no test command):
    memtrim refuses to optimize then.  The test command runs in a copy of the
    source tree, so the input tree is never modified.
    """
    if repeat < 1:
        raise ValueError("repeat must be at least 1")
    if not app.workloads and not app.test_command:
        raise VerificationError(
            "nothing to verify against: the application has no workloads and no test command"
        )
    _compile(app.normalizers)  # fail early on a bad regex, before any run
    start = time.monotonic()
    records: dict[str, RunRecord] = {}
    test_record = None
    with tempfile.TemporaryDirectory(prefix="memtrim-oracle-", dir=scratch_root) as tmp:
        for i, w in enumerate(app.workloads):
            runs: list[RunRecord] = []
            for r in range(repeat):
                try:
                    rec = run_workload(
                        app, w, python=python, flags=flags, scratch=Path(tmp) / f"w{i}-run{r}"
                    )
                except OSError as e:
                    raise VerificationError(
                        f"the original program cannot run workload {w.name!r}: {_one_line(str(e))}"
                    ) from None
                if r == 0:
                    _check_original(w, rec)
                else:
                    diffs = compare(runs[0], rec, app.normalizers)
                    if diffs:
                        raise NondeterminismError(_nondeterminism_message(w.name, diffs), diffs)
                runs.append(rec)
            records[w.name] = runs[0]
        if app.test_command:
            # A copy, because test runners write caches (.pytest_cache) into their cwd.
            tree = Path(tmp) / "tree" / app.root.name
            ignore = shutil.ignore_patterns(*_COPY_IGNORE)
            shutil.copytree(app.root, tree, symlinks=True, ignore=ignore)
            timeout = _test_timeout(app.workloads, test_timeout)
            test_record = _run_test_command(app.test_command, tree, python=python, timeout=timeout)
            if test_record.timed_out or test_record.exit_code != 0:
                raise VerificationError(
                    f"the original program fails its test command {' '.join(app.test_command)!r}: "
                    f"it {_describe_exit(test_record, timeout)}; "
                    f"output ends: {test_record.stderr_tail() or _tail_stdout(test_record)}"
                )
    return Oracle(
        root=str(app.root),
        python=python,
        flags=tuple(flags),
        workloads=app.workloads,
        records=records,
        normalizers=app.normalizers,
        test_command=app.test_command,
        test_record=test_record,
        repeat=repeat,
        duration=time.monotonic() - start,
    )


def _tail_stdout(rec: RunRecord) -> str:
    return tail_lines(rec.stdout) or "(nothing)"


def _check_original(w: Workload, rec: RunRecord) -> None:
    # The message is one line: it is what the user sees when memtrim refuses.
    failed = rec.timed_out or (w.expect_exit is not None and rec.exit_code != w.expect_exit)
    if failed:
        expected = f" (expected {w.expect_exit})" if w.expect_exit is not None else ""
        raise VerificationError(
            f"the original program fails workload {w.name!r}: it "
            f"{_describe_exit(rec, w.timeout)}{expected}; "
            f"stderr ends: {rec.stderr_tail() or '(empty)'}"
        )
    missing = [name for name, data in rec.outputs.items() if data is None]
    if missing:
        raise VerificationError(
            f"the original program does not write the declared output(s) {', '.join(missing)} "
            f"in workload {w.name!r} (outputs are relative to the run's working directory)"
        )


# --------------------------------------------------------------------------- verify


@dataclass
class VerifyResult:
    """The outcome of verifying a candidate program against an oracle."""

    ok: bool
    differences: dict[str, list[Difference]] = field(default_factory=dict)
    test_differences: list[Difference] = field(default_factory=list)
    duration: float = 0.0
    records: dict[str, RunRecord] = field(default_factory=dict, repr=False)

    def all_differences(self) -> list[Difference]:
        """Every difference, workloads first, then the test command's."""
        return [d for ds in self.differences.values() for d in ds] + list(self.test_differences)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict for the report."""
        return {
            "ok": self.ok,
            "duration": round(self.duration, 6),
            "differences": {k: [d.to_dict() for d in v] for k, v in self.differences.items()},
            "test_differences": [d.to_dict() for d in self.test_differences],
        }


def verify(
    candidate_app: App,
    oracle: Oracle,
    *,
    python: str,
    flags: Sequence[str] = (),
    fail_fast: bool = False,
    scratch_root: Path | None = None,
    test_timeout: float | None = None,
) -> VerifyResult:
    """Run the candidate on the oracle's workloads and compare each run with the oracle.

    The workloads (and normalizers) are the oracle's, with ``{root}`` expanded to
    the candidate's root.  Each run gets a fresh scratch directory under a temporary
    directory that is removed afterwards.  The test command, if the oracle has one,
    runs with the candidate's root as its working directory; only its exit status is
    compared.  ``fail_fast`` stops at the first differing workload (enough for a
    bisection step, and cheaper).
    """
    start = time.monotonic()
    differences: dict[str, list[Difference]] = {}
    records: dict[str, RunRecord] = {}
    test_diffs: list[Difference] = []
    with tempfile.TemporaryDirectory(prefix="memtrim-verify-", dir=scratch_root) as tmp:
        for i, w in enumerate(oracle.workloads):
            try:
                rec = run_workload(
                    candidate_app, w, python=python, flags=flags, scratch=Path(tmp) / f"w{i}"
                )
            except OSError as e:
                differences[w.name] = [Difference(w.name, "run", _one_line(str(e), 300))]
            else:
                records[w.name] = rec
                differences[w.name] = compare(oracle.records[w.name], rec, oracle.normalizers)
            if fail_fast and differences[w.name]:
                break
        failed = any(differences.values())
        if oracle.test_record is not None and not (fail_fast and failed):
            timeout = _test_timeout(oracle.workloads, test_timeout)
            rec = _run_test_command(
                oracle.test_command, candidate_app.root, python=python, timeout=timeout
            )
            if rec.timed_out or rec.exit_code != oracle.test_record.exit_code:
                test_diffs.append(
                    Difference(
                        "test_command",
                        "test_command",
                        f"the test command {_describe_exit(rec, timeout)} "
                        f"(original: exit {oracle.test_record.exit_code}); "
                        f"output ends: {rec.stderr_tail() or _tail_stdout(rec)}",
                    )
                )
    ok = not any(differences.values()) and not test_diffs
    return VerifyResult(ok, differences, test_diffs, time.monotonic() - start, records)


# --------------------------------------------------------------------------- bisection

E = TypeVar("E")


@runtime_checkable
class Outcome(Protocol):
    """What a ``passes`` callback may return instead of a bool (e.g. a VerifyResult)."""

    ok: bool

    def all_differences(self) -> list[Difference]:
        """The differences that made the run fail."""
        ...


@dataclass
class DroppedEdit(Generic[E]):
    """An edit bisection removed, and the evidence that condemned it.

    ``applied_with`` is the number of other edits applied in the condemning run
    (0: the edit alone made the program differ).  ``differences`` are that run's
    differences (empty when ``passes`` returned a plain bool).
    """

    edit: E
    index: int
    reason: str
    differences: list[Difference] = field(default_factory=list)
    applied_with: int = 0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict for the report."""
        to_dict = getattr(self.edit, "to_dict", None) or getattr(self.edit, "to_json", None)
        edit: Any = to_dict() if to_dict is not None else str(self.edit)
        return {
            "edit": edit,
            "index": self.index,
            "reason": self.reason,
            "applied_with": self.applied_with,
            "differences": [d.to_dict() for d in self.differences],
        }


@dataclass
class BisectResult(Generic[E]):
    """The edits kept (a set that verified) and those dropped, with the run count."""

    kept: list[E]
    dropped: list[DroppedEdit[E]]
    runs: int
    total: int

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict for the report."""
        return {
            "total": self.total,
            "kept": len(self.kept),
            "dropped": [d.to_dict() for d in self.dropped],
            "runs": self.runs,
        }


class _BudgetExhausted(Exception):
    pass


def _outcome_differences(outcome: object) -> list[Difference]:
    if isinstance(outcome, Outcome):
        return list(outcome.all_differences())
    return []


def bisect_edits(
    edits: Sequence[E],
    passes: Callable[[Sequence[E]], bool | Outcome],
    *,
    max_runs: int | None = None,
) -> BisectResult[E]:
    """Find and drop the edits that make the program differ; keep every innocent one.

    ``passes(subset)`` builds the program with only ``subset`` applied (always in the
    original order) and verifies it; it returns a bool or an :class:`Outcome` such as
    a :class:`VerifyResult`, whose differences become the evidence of a dropped edit.
    Pure: no I/O here, so it is testable with a fake ``passes``.

    The search is a delta-debugging "binary search for all culprits" over prefixes.
    It keeps a verified set ``kept`` (initially empty: the original program) and the
    edits not yet decided.  It tests ``kept + rest`` (at the start: all edits); if
    that passes, everything is kept.  Otherwise it finds the shortest failing prefix
    ``kept + rest[:p]``, by galloping from the previous culprit's distance and then
    binary search, so ``kept + rest[:p-1]`` passed and ``rest[p-1]`` is condemned by
    the smallest failing set containing it.  The passing prefix joins ``kept``, the
    culprit is dropped, and the search goes on with the edits after it.

    Why prefixes: they handle interacting edits (two edits bad only together: the
    later one is dropped, the earlier kept), and every set kept was itself tested and
    passed, so the final kept set is verified.  Each culprit costs O(log n) runs, so
    k culprits among n edits cost O(k log n) (about k * log2(n/k) when they are
    spread out), and one run when nothing is wrong.  Identical subsets are never run
    twice.  If ``max_runs`` is reached, the undecided edits are dropped as unverified
    and the kept set is still a verified one.  Raises :class:`BisectError` if the
    program with no edit applied fails.
    """
    items = list(edits)
    n = len(items)
    if n == 0:
        return BisectResult(kept=[], dropped=[], runs=0, total=0)
    cache: dict[tuple[int, ...], tuple[bool, object]] = {}
    runs = 0

    def test(indices: list[int]) -> tuple[bool, object]:
        nonlocal runs
        key = tuple(indices)
        if key in cache:
            return cache[key]
        if max_runs is not None and runs >= max_runs:
            raise _BudgetExhausted
        runs += 1
        outcome = passes([items[i] for i in key])
        ok = outcome if isinstance(outcome, bool) else bool(outcome.ok)
        cache[key] = (ok, outcome)
        return ok, outcome

    kept: list[int] = []
    rest = list(range(n))
    dropped: list[DroppedEdit[E]] = []
    gap = n  # estimated distance to the next culprit: the last one's distance
    try:
        while rest:
            ok, fail_outcome = test(kept + rest)
            if ok:
                kept += rest
                rest = []
                break
            # Invariant: kept + rest[:lo] passes (lo == 0: kept itself, known to pass
            # or the original program), kept + rest[:hi] fails.
            lo, hi = 0, len(rest)
            step = max(1, gap)
            while lo + step < hi:  # gallop: culprits are often close together
                ok, outcome = test(kept + rest[: lo + step])
                if ok:
                    lo, step = lo + step, step * 2
                else:
                    hi, fail_outcome = lo + step, outcome
                    break
            while hi - lo > 1:  # binary search within (lo, hi]
                mid = (lo + hi) // 2
                ok, outcome = test(kept + rest[:mid])
                if ok:
                    lo = mid
                else:
                    hi, fail_outcome = mid, outcome
            if lo == 0 and not kept and not test([])[0]:
                raise BisectError(
                    "the program fails verification with no edit applied: the oracle is not "
                    "reproducible (non-deterministic program or a changed environment)"
                )
            culprit = rest[lo]
            diffs = _outcome_differences(fail_outcome)
            with_others = len(kept) + lo
            where = "alone" if with_others == 0 else f"on top of {with_others} verified edit(s)"
            first = f": {diffs[0].summary()}" if diffs else ""
            dropped.append(
                DroppedEdit(
                    edit=items[culprit],
                    index=culprit,
                    reason=f"the program differs from the original when this edit is applied "
                    f"{where}{first}",
                    differences=diffs,
                    applied_with=with_others,
                )
            )
            kept += rest[:lo]
            rest = rest[lo + 1 :]
            gap = lo + 1
    except _BudgetExhausted:
        # kept is still a set that passed; what was not decided is not trusted.
        for i in rest:
            dropped.append(
                DroppedEdit(
                    edit=items[i],
                    index=i,
                    reason=f"not verified: the budget of {max_runs} verification runs ran out",
                )
            )
    # The final kept set is exactly a set that was tested and passed (or, when empty,
    # the original program).
    assert not kept or cache[tuple(kept)][0], "bisection kept a set that did not verify"
    dropped.sort(key=lambda d: d.index)
    return BisectResult(kept=[items[i] for i in kept], dropped=dropped, runs=runs, total=n)
