"""From ``run_table.csv`` to the summary: medians, pairwise ratios, targets, tables and plots.

Statistics (every figure comes from the table; nothing is estimated):

* peak RSS, wall and CPU time of a (variant, workload) pair: the median over its
  successful ``measure`` runs (a run whose exit status is not the expected one,
  or that timed out, is counted as failed and left out);
* the floor: the median peak RSS of the bare interpreter of the workload's venv,
  measured in the same experiment; *reducible* = peak - floor;
* reduction of a variant: ``1 - reducible(variant) / reducible(original)``;
* wall-time ratio to the original: for every repetition block holding a
  successful run of both, ``wall(variant) / wall(original)``; the median of those;
* output identical: ``yes`` when every run (warm-up included) matched the
  original's reference run after the app's normalizers, ``no`` if any did not;
* arenas and pools: the averages over the run of the separate arena run.

Plots reuse the report's matplotlib helpers (``report/plots.py``: its
figure factory, rc settings and palette) and are written as SVG and PNG.
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .runner import BARE, RunTable
from .variants import ORIGINAL

__all__ = [
    "MEMORY_TARGET_PCT",
    "PairStats",
    "Summary",
    "median",
    "pairwise_ratios",
    "reduction_pct",
    "render_markdown",
    "summarize",
    "write_plots",
    "write_summary",
]

MB = 1e6
MEMORY_TARGET_PCT = 34.6  # seed 000, Fig. 7: average footprint reduction over pyperformance
PAPER_TIME_PCT = 33.1  # seed 000, Fig. 8: average execution-time reduction
MEMTRIM_VARIANTS = ("memtrim-safe", "memtrim-specialize")
# One colour per variant in every plot (Okabe-Ito first, as the report's palette).
COLOURS = {
    "cpython": "#D55E00", "cpython-OO": "#E69F00", "lazy-imports": "#56B4E9",
    "minifier": "#CC79A7", "mypyc": "#009E73", "cython": "#44AA99", "nuitka": "#000000",
    "pypy": "#999999", "memtrim-safe": "#0072B2", "memtrim-specialize": "#882255",
}
# What each variant changes by construction: offered as the likely cause when it beats
# memtrim, never as a measured fact.
MECHANISMS = {
    "cpython-OO": "-S skips `site` (and whatever the venv's .pth files import) and -OO drops "
                  "docstrings and asserts; memtrim's output runs with the default flags",
    "minifier": "smaller code objects: docstrings, asserts and annotations removed, local "
                "names shortened",
    "mypyc": "compiled modules carry no bytecode or code objects",
    "cython": "compiled modules carry no bytecode or code objects",
    "nuitka": "a standalone binary: compiled C instead of unmarshalled code objects, no "
              "`site`, only the modules the program imports",
    "lazy-imports": "imports deferred to first use",
    "pypy": "a different interpreter and memory manager",
}


def median(values: Iterable[float]) -> float | None:
    """The median of ``values`` (None when empty)."""
    xs = list(values)
    return statistics.median(xs) if xs else None


def reduction_pct(before: float | None, after: float | None) -> float | None:
    """``100 * (1 - after / before)``: positive when ``after`` is smaller; None if undefined."""
    if before is None or after is None or before <= 0:
        return None
    return 100.0 * (1.0 - after / before)


def pairwise_ratios(variant: Mapping[int, float], original: Mapping[int, float]) -> list[float]:
    """``variant[r] / original[r]`` for every repetition ``r`` both have (a paired design)."""
    return [variant[r] / original[r] for r in sorted(variant)
            if r in original and original[r] > 0]


def _float(x: str | None) -> float | None:
    try:
        return float(x) if x not in (None, "") else None
    except ValueError:
        return None


@dataclass
class PairStats:
    """The summary of one (variant, workload) pair."""

    variant: str
    workload: str
    runs: int = 0
    failed: int = 0
    peak: float | None = None
    peak_min: float | None = None
    peak_max: float | None = None
    wall: float | None = None
    cpu: float | None = None
    wall_ratio: float | None = None
    reducible: float | None = None
    reduction: float | None = None  # reducible-footprint reduction vs the original, %
    peak_reduction: float | None = None  # whole peak RSS reduction vs the original, %
    identical: str = "n/a"
    difference: str = ""
    error: str = ""
    arenas_avg: float | None = None
    arenas_max: float | None = None
    pools_avg: float | None = None
    pools_max: float | None = None
    energy: str = "unavailable"
    llc: str = "unavailable"


@dataclass
class Summary:
    """Everything the Markdown and the plots need."""

    meta: dict[str, Any]
    builds: dict[str, Any]
    variants: list[str]
    workloads: list[str]
    pairs: dict[tuple[str, str], PairStats] = field(default_factory=dict)
    floors: dict[str, float | None] = field(default_factory=dict)
    rows: int = 0
    planned: int | None = None

    def suite(self, workload: str) -> str:
        """``examples``, ``pyperformance`` or ``user``."""
        return self.meta.get("workloads", {}).get(workload, {}).get("suite", "user")

    def get(self, variant: str, workload: str) -> PairStats | None:
        """The pair's statistics, if it ran."""
        return self.pairs.get((variant, workload))


def summarize(rows: Sequence[Mapping[str, str]], meta: Mapping[str, Any],
              builds: Mapping[str, Any] | None = None) -> Summary:
    """Compute every pair's statistics from the table's rows."""
    variants = list(meta.get("variants") or sorted({r["variant"] for r in rows} - {BARE}))
    suites = {"examples": 0, "user": 1, "pyperformance": 2}
    info = meta.get("workloads") or {}
    # examples first, then other applications, then pyperformance; by name within each
    workloads = sorted(info or {r["workload"] for r in rows if r["variant"] != BARE},
                       key=lambda w: (suites.get(info.get(w, {}).get("suite", "user"), 1), w))
    s = Summary(dict(meta), dict(builds or {}), variants, workloads, rows=len(rows))
    floor_peaks: dict[str, list[float]] = defaultdict(list)
    measured: dict[tuple[str, str], list[Mapping[str, str]]] = defaultdict(list)
    for r in rows:
        if r["kind"] == "floor" and r["ok"] == "yes" and _float(r["peak_rss"]):
            floor_peaks[r["workload"]].append(float(r["peak_rss"]))
        elif r["kind"] in ("measure", "warmup", "arenas"):
            measured[(r["variant"], r["workload"])].append(r)
    s.floors = {f: median(v) for f, v in floor_peaks.items()}
    for (v, w), rs in measured.items():
        p = PairStats(v, w)
        runs = [r for r in rs if r["kind"] == "measure"]
        good = [r for r in runs if r["ok"] == "yes"]
        p.runs, p.failed = len(good), len(runs) - len(good)
        peaks = [float(r["peak_rss"]) for r in good if _float(r["peak_rss"])]
        p.peak = median(peaks)
        p.peak_min = min(peaks) if peaks else None
        p.peak_max = max(peaks) if peaks else None
        p.wall = median(float(r["wall"]) for r in good if _float(r["wall"]) is not None)
        p.cpu = median(float(r["cpu"]) for r in good if _float(r["cpu"]) is not None)
        checked = [r["output_identical"] for r in rs if r["kind"] in ("measure", "warmup")
                   and r["output_identical"] in ("yes", "no")]
        p.identical = "no" if "no" in checked else ("yes" if checked else "n/a")
        p.difference = next((r["difference"] for r in rs if r["output_identical"] == "no"), "")
        p.error = next((r["error"] for r in runs if r["ok"] != "yes" and r["error"]), "")
        arena = next((r for r in rs if r["kind"] == "arenas" and r["arenas_avg"]), None)
        if arena:
            p.arenas_avg, p.arenas_max = _float(arena["arenas_avg"]), _float(arena["arenas_max"])
            p.pools_avg, p.pools_max = _float(arena["pools_avg"]), _float(arena["pools_max"])
        energies = [float(r["energy_j"]) for r in good if _float(r["energy_j"]) is not None]
        p.energy = f"{median(energies):.2f} J" if energies else "unavailable"
        llcs = [float(r["llc_miss_pct"]) for r in good if _float(r["llc_miss_pct"]) is not None]
        p.llc = f"{median(llcs):.1f} %" if llcs else "unavailable"
        s.pairs[(v, w)] = p
    for w in workloads:
        floor_id = meta.get("workloads", {}).get(w, {}).get("floor")
        floor = s.floors.get(floor_id) if floor_id else None
        orig = s.pairs.get((ORIGINAL, w))
        orig_walls = _walls(measured.get((ORIGINAL, w), []))
        for v in variants:
            p = s.pairs.get((v, w))
            if p is None:
                continue
            if p.peak is not None and floor is not None:
                p.reducible = p.peak - floor
            if orig is not None and orig.peak is not None:
                p.peak_reduction = reduction_pct(orig.peak, p.peak)
                if floor is not None and p.reducible is not None:
                    p.reduction = reduction_pct(orig.peak - floor, p.reducible)
            ratios = pairwise_ratios(_walls(measured.get((v, w), [])), orig_walls)
            p.wall_ratio = median(ratios)
    return s


def _walls(rows: Iterable[Mapping[str, str]]) -> dict[int, float]:
    return {int(r["repetition"]): float(r["wall"]) for r in rows
            if r["kind"] == "measure" and r["ok"] == "yes" and _float(r["wall"])}


def load_summary(out: Path) -> Summary:
    """Read an experiment directory (``experiment.json``, ``builds.json``, the table)."""
    meta = json.loads((out / "experiment.json").read_text(encoding="utf-8"))
    builds_path = out / "builds.json"
    builds = json.loads(builds_path.read_text(encoding="utf-8")) if builds_path.is_file() else {}
    return summarize(RunTable(out / "run_table.csv").rows(), meta, builds)


# --------------------------------------------------------------------------- markdown


def _mb(x: float | None, digits: int = 1) -> str:
    return "-" if x is None else f"{x / MB:.{digits}f}"


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:+.1f}".replace("+-", "-")


def _num(x: float | None, fmt: str = "{:.3f}") -> str:
    return "-" if x is None else fmt.format(x)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _build(s: Summary, v: str, app: str) -> dict[str, Any] | None:
    return s.builds.get(f"{v}|{app}")


def _app_of(s: Summary, w: str) -> str:
    return s.meta.get("workloads", {}).get(w, {}).get("app", w.split(":")[0])


def _not_run(s: Summary, v: str, w: str) -> str:
    b = _build(s, v, _app_of(s, w))
    if b and not b.get("ok"):
        return "not built"
    return "-"


def targets(s: Summary) -> list[dict[str, Any]]:
    """The issue's targets, each with the measured figure and whether it is met."""
    out: list[dict[str, Any]] = []
    perf = [w for w in s.workloads if s.suite(w) == "pyperformance"]
    for mv in MEMTRIM_VARIANTS:
        if mv not in s.variants:
            continue
        reds = [p.reduction for w in perf if (p := s.get(mv, w)) and p.reduction is not None]
        mean = sum(reds) / len(reds) if reds else None
        out.append({
            "target": f"{mv}: reducible-footprint reduction, mean over pyperformance "
                      f"benchmarks >= {MEMORY_TARGET_PCT}%",
            "measured": f"{_pct(mean)} % over {len(reds)} benchmarks" if reds else "not measured",
            "met": None if mean is None else mean >= MEMORY_TARGET_PCT,
        })
        ratios = [p.wall_ratio for w in s.workloads
                  if (p := s.get(mv, w)) and p.wall_ratio is not None]
        med = median(ratios)
        slower = sum(1 for r in ratios if r > 1.0)
        out.append({
            "target": f"{mv}: wall time no worse than the original (median of the per-workload "
                      "median pairwise ratios <= 1.0)",
            "measured": f"{_num(med)} over {len(ratios)} workloads ({slower} above 1.0)"
            if ratios else "not measured",
            "met": None if med is None else med <= 1.0,
        })
        sts = standings(s, mv)
        won = sum(st.won for st in sts)
        beaten = sum(bool(st.beaten_by) for st in sts)
        tied = len(sts) - won - beaten
        differs = [st.workload for st in sts
                   if (p := s.get(mv, st.workload)) and p.identical != "yes"]
        measured = (f"strictly lowest on {won} of {len(sts)} workloads; beaten on {beaten}; "
                    f"tied within the run-to-run spread on {tied}") if sts else "not measured"
        if differs:
            measured += f"; its output differed (or was not checked) on {len(differs)}"
        out.append({
            "target": f"{mv}: peak RSS below every other variant's, on every workload",
            "measured": measured,
            "met": None if not sts else won == len(sts) and not differs,
        })
    return out


@dataclass
class Standing:
    """How one memtrim variant's peak compares with the others' on one workload."""

    workload: str
    beaten_by: list[str] = field(default_factory=list)  # lower by more than the spread
    tied_with: list[str] = field(default_factory=list)  # lower or equal, within the spread

    @property
    def won(self) -> bool:
        """Strictly the lowest: no competitor lower or equal, even within the noise."""
        return not self.beaten_by and not self.tied_with


def _spread(*ps: PairStats) -> float:
    return max((p.peak_max or 0) - (p.peak_min or 0) for p in ps)


def standings(s: Summary, mv: str) -> list[Standing]:
    """For every workload ``mv`` ran, which variants had a lower or equal median peak.

    A competitor lower by more than the larger run-to-run spread (max - min of
    the two pairs' runs) *beats* memtrim; one lower or equal within that spread
    *ties*.  Only variants whose output was identical to the original's count:
    a program that behaves differently is not an alternative.  The other memtrim
    mode does not count against this one.
    """
    out: list[Standing] = []
    for w in s.workloads:
        mine = s.get(mv, w)
        if mine is None or mine.peak is None:
            continue
        st = Standing(w)
        for v in s.variants:
            p = s.get(v, w)
            if v == mv or v in MEMTRIM_VARIANTS or p is None or p.peak is None or \
                    p.identical != "yes" or p.peak > mine.peak:
                continue
            (st.beaten_by if mine.peak - p.peak > _spread(mine, p) else st.tied_with).append(v)
        out.append(st)
    return out


def lowest_peak(s: Summary, mv: str) -> tuple[list[str], list[tuple[str, list[str]]]]:
    """Workloads where ``mv`` is strictly lowest, and the others with who was lower or equal."""
    sts = standings(s, mv)
    return ([st.workload for st in sts if st.won],
            [(st.workload, st.beaten_by + st.tied_with) for st in sts if not st.won])


def _ok(met: bool | None) -> str:
    return {True: "**met**", False: "**not met**", None: "not measured"}[met]


def render_markdown(s: Summary, *, plots: Mapping[str, str] | None = None,
                    partial: str | None = None, commands: Sequence[str] = (),
                    title: str = "memtrim bench: results") -> str:
    """The results as Markdown (``plots`` maps a figure name to its relative path)."""
    plots = plots or {}
    m = s.meta.get("machine", {})
    ins = s.meta.get("instruments", {})
    lines = [f"# {title}", ""]
    if partial:
        lines += [f"> **Partial run.** {partial}", ""]
    lines += [
        f"- date: {m.get('date', '?')} (experiment `{s.meta.get('experiment', '?')}`)",
        f"- machine: {m.get('cpu', '?')}, {m.get('cpus', '?')} CPUs (shared), "
        f"{m.get('memory', '?')} RAM, {m.get('platform', '?')}; load average at start "
        f"{', '.join(f'{x:.2f}' for x in m.get('load_average_at_start', []))}",
        f"- interpreter: {m.get('implementation', '?')} {m.get('python', '?')} "
        f"(`{m.get('base_executable', '?')}`), each workload in its own venv made from it",
        f"- memtrim: commit `{m.get('memtrim_commit', '?')}` (uncommitted changes in src: "
        f"{m.get('memtrim_src_modified', '?')})",
        f"- design: {s.meta.get('repeat')} measured repetitions per (variant, workload) in "
        f"shuffled complete blocks (seed {s.meta.get('seed')}), one warm-up run each "
        f"({'on' if s.meta.get('warmup') else 'original only'}), cool-down "
        f"{s.meta.get('cooldown', 0)} s; medians; {s.rows} rows in `run_table.csv`",
        f"- peak RSS: {ins.get('peak_rss', '?')}",
        f"- energy: {ins.get('energy', '?')}",
        f"- LLC misses: {ins.get('llc_misses', '?')}",
    ]
    if not commands and s.meta.get("command"):
        commands = [s.meta["command"], "memtrim bench --resume --out OUT   # if interrupted"]
    if commands:
        lines += ["", "Reproduce (from the repository root):", "", "```"]
        lines += list(commands)
        lines += ["```"]
    lines += ["", "## Targets", "", "| target | measured | |", "|---|---|---|"]
    for t in targets(s):
        lines.append(f"| {_cell(t['target'])} | {t['measured']} | {_ok(t['met'])} |")
    lines += _variants_section(s)
    lines += _comparison_section(s, plots)
    lines += _paper_sections(s, plots)
    lines += _losses_section(s)
    lines += _unrunnable_section(s)
    lines += _builds_section(s)
    return "\n".join(lines) + "\n"


def _builds_section(s: Summary) -> list[str]:
    """Every build, with its time and notes or the reason it failed (an appendix)."""
    if not s.builds:
        return []
    lines = ["", "## Appendix: builds", "",
             "Build logs are in the build cache (`.bench-venvs/builds/VARIANT/APP-HASH/`).", "",
             "| variant | app | built | seconds | notes, or why not |", "|---|---|---|---:|---|"]
    order = {v: i for i, v in enumerate(s.variants)}
    for key in sorted(s.builds, key=lambda k: (order.get(k.split("|")[0], 99), k)):
        b = s.builds[key]
        if str(b.get("reason", "")).startswith("unavailable:"):
            continue  # said once in the variants table
        text = b.get("notes") if b.get("ok") else b.get("reason")
        lines.append(f"| {b.get('variant')} | {b.get('app')} | {'yes' if b.get('ok') else 'no'} "
                     f"| {_num(b.get('seconds'), '{:.0f}')} | {_cell(str(text or ''))} |")
    return lines


def _short(text: str, width: int = 140) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def _variants_section(s: Summary) -> list[str]:
    apps = sorted({_app_of(s, w) for w in s.workloads})
    desc = s.meta.get("variant_descriptions", {})
    lines = ["", "## Variants", "",
             "| variant | what | built for | build time (median s) | notes / why not |",
             "|---|---|---|---|---|"]
    for v in s.variants:
        bs = [b for a in apps if (b := _build(s, v, a))]
        ok = [b for b in bs if b.get("ok")]
        secs = median(float(b.get("seconds") or 0) for b in ok)
        reasons: dict[str, list[str]] = defaultdict(list)
        for b in bs:
            if not b.get("ok"):
                reasons[str(b.get("reason", ""))].append(str(b.get("app")))
        notes = [f"{b.get('app')}: {_short(str(b.get('notes')))}" for b in ok if b.get("notes")]
        why = "; ".join(f"{r} ({', '.join(a) if len(a) < 6 else f'{len(a)} apps'})"
                        for r, a in reasons.items())
        shown = "; ".join(notes[:3]) + (f"; and {len(notes) - 3} more" if len(notes) > 3 else "")
        text = "; ".join(([shown] if notes else []) + ([f"not built: {why}"] if why else []))
        lines.append(f"| {v} | {desc.get(v, '')} | {len(ok)} of {len(apps)} apps | "
                     f"{_num(secs, '{:.1f}')} | {_cell(text)} |")
    return lines


def _comparison_section(s: Summary, plots: Mapping[str, str]) -> list[str]:
    vs = s.variants
    lines = ["", "## All variants, every workload", "",
             "Peak RSS, median of the measured runs, in MB (10^6 bytes). **Bold**: the lowest "
             "among variants whose output was identical; `≠` marks output that differed from "
             "the original's; `not built` / `-`: no build / no successful run.", "",
             "| workload | floor | " + " | ".join(vs) + " |",
             "|---|---:|" + "---:|" * len(vs)]
    for w in s.workloads:
        floor_id = s.meta.get("workloads", {}).get(w, {}).get("floor")
        cells = []
        candidates = [p.peak for v in vs if (p := s.get(v, w)) and p.peak is not None
                      and p.identical == "yes"]
        best = min(candidates) if candidates else None
        for v in vs:
            p = s.get(v, w)
            if p is None or p.peak is None:
                cells.append(_not_run(s, v, w) if p is None else "failed")
                continue
            c = _mb(p.peak)
            if p.identical == "no":
                c += " ≠"
            if best is not None and p.peak == best and p.identical == "yes":
                c = f"**{c}**"
            cells.append(c)
        lines.append(f"| {w} | {_mb(s.floors.get(floor_id))} | " + " | ".join(cells) + " |")
    lines += ["", "Reducible footprint (peak minus the bare interpreter of the same venv, "
              "measured in the same experiment): reduction against the original, % "
              "(positive: smaller than the original).", "",
              "| workload | original reducible (MB) | " + " | ".join(vs[1:]) + " |",
              "|---|---:|" + "---:|" * (len(vs) - 1)]
    for w in s.workloads:
        o = s.get(ORIGINAL, w)
        cells = [_pct(p.reduction) if (p := s.get(v, w)) else _not_run(s, v, w) for v in vs[1:]]
        lines.append(f"| {w} | {_mb(o.reducible if o else None)} | " + " | ".join(cells) + " |")
    lines += ["", "Wall time: the original's median (s), and each variant's median of the "
              "pairwise ratios to the original within the same repetition block "
              "(< 1: faster). CPU time (s) of the original in the last column.", "",
              "| workload | original wall (s) | " + " | ".join(vs[1:]) + " | original CPU (s) |",
              "|---|---:|" + "---:|" * (len(vs) - 1) + "---:|"]
    for w in s.workloads:
        o = s.get(ORIGINAL, w)
        cells = [_num(p.wall_ratio) if (p := s.get(v, w)) else _not_run(s, v, w)
                 for v in vs[1:]]
        lines.append(f"| {w} | {_num(o.wall if o else None)} | " + " | ".join(cells) +
                     f" | {_num(o.cpu if o else None)} |")
    lines += ["", "Output identical to the original's (every run, after the app's normalizers); "
              "energy and LLC misses.", "",
              "| variant | identical | not identical (first difference) | failed runs | "
              "energy | LLC misses |", "|---|---:|---|---:|---|---|"]
    for v in vs:
        ps = [p for w in s.workloads if (p := s.get(v, w))]
        yes = sum(1 for p in ps if p.identical == "yes")
        no = [p for p in ps if p.identical == "no"]
        failed = sum(p.failed for p in ps)
        diff = "; ".join(f"{p.workload}: `{p.difference[:80]}`" for p in no[:3])
        if len(no) > 3:
            diff += f"; and {len(no) - 3} more"
        energy = sorted({p.energy for p in ps}) or ["-"]
        llc = sorted({p.llc for p in ps}) or ["-"]
        if not ps:
            lines.append(f"| {v} | - | not run | - | - | - |")
            continue
        lines.append(f"| {v} | {yes} of {len(ps)} | {_cell(diff) or '-'} | {failed} | "
                     f"{energy[0] if len(energy) == 1 else 'see table'} | "
                     f"{llc[0] if len(llc) == 1 else 'see table'} |")
    if "variants" in plots:
        lines += ["", f"![Peak RSS of every variant relative to the original]({plots['variants']})"]
    return lines


def _paper_sections(s: Summary, plots: Mapping[str, str]) -> list[str]:
    perf = [w for w in s.workloads if s.suite(w) == "pyperformance"]
    mvs = [v for v in MEMTRIM_VARIANTS if v in s.variants]
    lines = ["", "## Seed 000, Figures 7 and 8: pyperformance before and after", ""]
    if not perf or not mvs:
        return lines + ["No pyperformance benchmark (or no memtrim variant) in this run."]
    head = " | ".join(f"{v} peak (MB) | reduction of reducible (%)" for v in mvs)
    lines += ["Peak RSS (Fig. 7 analogue): original and memtrim, medians; the reduction is "
              "of the reducible footprint (the paper's 24 MB baseline is its empty "
              "interpreter; here the bare interpreter of the same venv).", "",
              f"| benchmark | original peak (MB) | reducible (MB) | {head} |",
              "|---|---:|---:|" + "---:|---:|" * len(mvs)]
    for w in perf:
        o = s.get(ORIGINAL, w)
        cells = []
        for v in mvs:
            p = s.get(v, w)
            cells += [_mb(p.peak) + (" ≠" if p and p.identical == "no" else "") if p else "-",
                      _pct(p.reduction) if p else "-"]
        lines.append(f"| {w} | {_mb(o.peak if o else None)} | "
                     f"{_mb(o.reducible if o else None)} | " + " | ".join(cells) + " |")
    for v in mvs:
        reds = [p.reduction for w in perf if (p := s.get(v, w)) and p.reduction is not None]
        whole = [p.peak_reduction for w in perf if (p := s.get(v, w)) and
                 p.peak_reduction is not None]
        if reds:
            lines.append(f"\n{v}: mean reduction of the reducible footprint "
                         f"{_pct(sum(reds) / len(reds))} % (paper: {MEMORY_TARGET_PCT} %), of "
                         f"the whole peak {_pct(sum(whole) / len(whole))} %, over {len(reds)} "
                         "benchmarks.")
    if "fig7" in plots:
        lines += ["", f"![Figure 7 analogue: peak RSS per benchmark]({plots['fig7']})"]
    head = " | ".join(f"{v} wall (s) | ratio" for v in mvs)
    lines += ["", "Wall time (Fig. 8 analogue): medians, and the median pairwise ratio to the "
              f"original (paper: {PAPER_TIME_PCT} % faster on average).", "",
              f"| benchmark | original wall (s) | {head} |", "|---|---:|" + "---:|---:|" * len(mvs)]
    for w in perf:
        o = s.get(ORIGINAL, w)
        cells = []
        for v in mvs:
            p = s.get(v, w)
            cells += [_num(p.wall if p else None), _num(p.wall_ratio if p else None)]
        lines.append(f"| {w} | {_num(o.wall if o else None)} | " + " | ".join(cells) + " |")
    if "fig8" in plots:
        lines += ["", f"![Figure 8 analogue: wall time per benchmark]({plots['fig8']})"]
    lines += ["", "## Seed 000, Table 3: arenas and pools", "",
              "Average number of pymalloc arenas and pools in use over the run (memtrim's "
              "harness sampling `sys._debugmallocstats()` every 10 ms in a separate run). "
              "CPython 3.11 arenas are 1 MiB and pools 16 KiB (the paper's were 256 KiB "
              "and 4 KiB), so the counts are about a quarter of the paper's for the same "
              "memory.", ""]
    head = " | ".join(f"{v} arenas | {v} pools" for v in mvs)
    lines += [f"| benchmark | original arenas | original pools | {head} |",
              "|---|---:|---:|" + "---:|---:|" * len(mvs)]
    sums: dict[str, list[float]] = defaultdict(list)
    for w in perf:
        o = s.get(ORIGINAL, w)
        if o is None or o.arenas_avg is None:
            continue
        cells = []
        for v in mvs:
            p = s.get(v, w)
            cells += [_num(p.arenas_avg if p else None, "{:.1f}"),
                      _num(p.pools_avg if p else None, "{:.1f}")]
            if p and p.arenas_avg is not None and p.pools_avg is not None:
                sums[f"{v}|a"].append(p.arenas_avg)
                sums[f"{v}|p"].append(p.pools_avg)
                sums[f"{v}|oa"].append(o.arenas_avg)
                sums[f"{v}|op"].append(o.pools_avg or 0)
        lines.append(f"| {w} | {o.arenas_avg:.1f} | {_num(o.pools_avg, '{:.1f}')} | "
                     + " | ".join(cells) + " |")
    for v in mvs:
        a, oa = sums.get(f"{v}|a"), sums.get(f"{v}|oa")
        p_, op = sums.get(f"{v}|p"), sums.get(f"{v}|op")
        if a and oa and p_ and op:
            arenas_change = -(reduction_pct(sum(oa), sum(a)) or 0.0)
            pools_change = -(reduction_pct(sum(op), sum(p_)) or 0.0)
            lines.append(f"\n{v}: average arenas {sum(oa) / len(oa):.1f} -> {sum(a) / len(a):.1f} "
                         f"({_pct(arenas_change)} %), pools "
                         f"{sum(op) / len(op):.1f} -> {sum(p_) / len(p_):.1f} "
                         f"({_pct(pools_change)} %) over {len(a)} benchmarks "
                         "(paper: -9.6 % and -12.07 %).")
    return lines


def _cause(s: Summary, v: str, mv: str, w: str) -> str:
    """What ``v`` changes by construction, and what memtrim's build did about the same thing."""
    text = MECHANISMS.get(v, "not analysed")
    if v == "cpython-OO":
        b = _build(s, mv, _app_of(s, w)) or {}
        flags = " ".join(b.get("python_args") or []) or "none"
        text += f"; memtrim's launcher flags: {flags}"
        verdicts = b.get("verdicts") or {}
        for name in ("optimize-2", "no-site"):
            if name in verdicts:
                text += f"; memtrim bundle on {name}: {verdicts[name]}"
    return text


def _losses_section(s: Summary) -> list[str]:
    lines = ["", "## Where memtrim does not have the lowest peak RSS", "",
             "A variant *beats* memtrim when its median peak is lower by more than the larger "
             "run-to-run spread (max - min) of the two; lower or equal within that spread is a "
             "*tie*. Only variants whose output was identical count.", ""]
    any_loss = False
    for mv in MEMTRIM_VARIANTS:
        if mv not in s.variants:
            continue
        sts = [st for st in standings(s, mv) if not st.won]
        if not sts:
            continue
        any_loss = True
        lines += [f"### {mv}", "", "| workload | memtrim (MB) | beaten by (MB, difference) | "
                  "likely cause | tied with |", "|---|---:|---|---|---|"]
        for st in sts:
            mine = s.get(mv, st.workload)
            assert mine is not None and mine.peak is not None
            cells, causes = [], []
            for v in st.beaten_by:
                p = s.get(v, st.workload)
                assert p is not None and p.peak is not None
                cells.append(f"{v} {_mb(p.peak)} ({_mb(p.peak - mine.peak, 2)})")
                causes.append(f"{v}: {_cause(s, v, mv, st.workload)}")
            lines.append(f"| {st.workload} | {_mb(mine.peak)} | {'; '.join(cells) or '-'} | "
                         f"{_cell('; '.join(causes)) or '-'} | "
                         f"{', '.join(st.tied_with) or '-'} |")
        lines.append("")
    if not any_loss:
        lines.append("None in this run.")
    lines.append("The likely causes are what each variant changes by construction (and, for "
                 "-S/-OO, what memtrim's bundle decided about the same settings), not a "
                 "measured attribution.")
    return lines


def _unrunnable_section(s: Summary) -> list[str]:
    bad = s.meta.get("unrunnable") or []
    lines = ["", "## Workloads that cannot run here", ""]
    if not bad:
        return lines + ["None among those requested."]
    lines += ["| workload | suite | why |", "|---|---|---|"]
    for u in bad:
        lines.append(f"| {u['name']} | {u['suite']} | {_cell(u['reason'])} |")
    return lines


# --------------------------------------------------------------------------- plots


def _save(fig: Any, dest: Path, stem: str) -> str:
    from ..report.plots import _rc

    dest.mkdir(parents=True, exist_ok=True)
    with _rc():
        fig.savefig(dest / f"{stem}.svg", format="svg", metadata={"Date": None})
        fig.savefig(dest / f"{stem}.png", format="png", dpi=110)
    return f"{stem}.png"


def _hbars(s: Summary, workloads: Sequence[str], variants: Sequence[str], value: str,
           xlabel: str, title: str, scale: float) -> Any:
    from ..report.plots import FLOOR, PALETTE, _figure, _rc

    n = max(len(variants), 1)
    with _rc():
        fig = _figure(7.5, 0.9 + 0.26 * n * len(workloads) / 1.6 + 0.3)
        ax = fig.add_subplot()
        height = 0.8 / n
        for vi, v in enumerate(variants):
            ys, xs = [], []
            for wi, w in enumerate(workloads):
                p = s.get(v, w)
                x = getattr(p, value) if p else None
                if x is not None:
                    ys.append(wi - 0.4 + height * (vi + 0.5))
                    xs.append(x / scale)
            ax.barh(ys, xs, height=height * 0.9, label=v,
                    color=COLOURS.get(v, PALETTE[vi % len(PALETTE)]))
        if value == "peak":
            floors = [s.floors.get(s.meta.get("workloads", {}).get(w, {}).get("floor"))
                      for w in workloads]
            known = [f for f in floors if f]
            if known:
                ax.axvline(median(known) / scale, color=FLOOR, linestyle="--", linewidth=0.9,
                           label=f"bare interpreter ({median(known) / scale:.1f} MB)")
        ax.set_yticks(range(len(workloads)), workloads, fontsize=7)
        ax.set_ylim(len(workloads) - 0.5, -0.5)
        ax.grid(axis="x", color="#e4e4e4", linewidth=0.6)
        ax.grid(axis="y", visible=False)
        ax.set_xlabel(xlabel)
        ax.set_title(title, loc="left", fontsize=9, fontweight="bold")
        ax.legend(loc="lower right", fontsize=7)
    return fig


def _relative(s: Summary) -> Any:
    from ..report.plots import PALETTE, _figure, _rc

    others = [v for v in s.variants if v != ORIGINAL]
    markers = "osD^v<>PX*"
    with _rc():
        fig = _figure(7.5, 1.0 + 0.2 * len(s.workloads))
        ax = fig.add_subplot()
        for vi, v in enumerate(others):
            ys, xs = [], []
            for wi, w in enumerate(s.workloads):
                p, o = s.get(v, w), s.get(ORIGINAL, w)
                if p and o and p.peak and o.peak:
                    ys.append(wi)
                    xs.append(100.0 * p.peak / o.peak)
            ax.scatter(xs, ys, s=34 if v in MEMTRIM_VARIANTS else 18,
                       marker=markers[vi % len(markers)], label=v, zorder=3,
                       color=COLOURS.get(v, PALETTE[(vi + 1) % len(PALETTE)]))
        ax.axvline(100, color="#555555", linewidth=0.9, linestyle="--")
        ax.set_yticks(range(len(s.workloads)), s.workloads, fontsize=7)
        ax.set_ylim(len(s.workloads) - 0.5, -0.5)
        ax.grid(axis="x", color="#e4e4e4", linewidth=0.6)
        ax.grid(axis="y", color="#f2f2f2", linewidth=0.4)
        ax.set_xlabel("peak RSS, % of the original's (median of runs)")
        ax.set_title("Every variant against the original", loc="left", fontsize=9,
                     fontweight="bold")
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=7)
    return fig


def write_plots(s: Summary, dest: Path) -> dict[str, str]:
    """Write the figures (SVG and PNG) into ``dest``; return name -> PNG file name."""
    out: dict[str, str] = {}
    perf = [w for w in s.workloads if s.suite(w) == "pyperformance"]
    mvs = [ORIGINAL] + [v for v in MEMTRIM_VARIANTS if v in s.variants]
    if perf and len(mvs) > 1:
        out["fig7"] = _save(_hbars(s, perf, mvs, "peak", "peak RSS (MB)",
                                   "pyperformance: peak RSS before and after (Fig. 7 analogue)",
                                   MB), dest, "fig7-peak-rss")
        out["fig8"] = _save(_hbars(s, perf, mvs, "wall", "wall time (s)",
                                   "pyperformance: wall time before and after (Fig. 8 analogue)",
                                   1.0), dest, "fig8-wall-time")
    if s.workloads and len(s.variants) > 1:
        out["variants"] = _save(_relative(s), dest, "variants-peak-rss")
    return out


def write_summary(out: Path, *, markdown: Path | None = None, assets: Path | None = None,
                  partial: str | None = None, commands: Sequence[str] = ()) -> Path:
    """Summarize the experiment in ``out``: plots and ``summary.md`` (or ``markdown``).

    Plots go to ``assets`` (default ``out/plots``); image links in the Markdown
    are relative to the Markdown file.
    """
    import os

    s = load_summary(out)
    md_path = markdown or out / "summary.md"
    assets = assets or out / "plots"
    try:
        files = write_plots(s, assets)
    except ImportError:  # matplotlib is in the 'report' extra: tables still get written
        files = {}
    rel = os.path.relpath(assets, md_path.parent)
    plots = {k: f"{rel}/{v}" for k, v in files.items()}
    md_path.parent.mkdir(parents=True, exist_ok=True)
    md_path.write_text(render_markdown(s, plots=plots, partial=partial, commands=commands),
                       encoding="utf-8")
    return md_path
