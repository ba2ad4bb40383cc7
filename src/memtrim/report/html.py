"""``memtrim report``: read a profile or optimize document and render it as self-contained HTML.

The document is first turned into a *view* (plain dicts and lists, no drawing),
which both this module and :mod:`memtrim.report.markdown` render.  Every section
of the document is optional: what is absent is shown as "not measured", what a
measurement marked unavailable is shown with its reason, never estimated.  The
shapes read here, including the optimize sections the pipeline adds over time
(``timeline``, ``arenas``, ``imports``, ``energy``, ``device``), are in
``docs/report.md``.

The HTML has its plots inline (SVG drawn by :mod:`memtrim.report.plots`), its
CSS inline and no script: it opens from a file with no network.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

PROFILE_SCHEMA = "memtrim.profile/1"
OPTIMIZE_SCHEMA = "memtrim.optimize/1"
RUN_REPORT = "memtrim-report.json"  # the optimize report inside a RUN_DIR (OUTDIR)
HTML_NAME = "memtrim-report.html"
MARKDOWN_NAME = "memtrim-report.md"
MAX_DIFF_LINES = 5000  # beyond this the diff is cut in the HTML (the JSON keeps all of it)
TOP_MODULES = 25
NOT_MEASURED = "not measured"


class ReportInputError(Exception):
    """The input cannot be reported on; the message is one line for the user."""


# --------------------------------------------------------------------------- input


def load_document(path: str | os.PathLike[str]) -> dict:
    """Read a RUN_DIR (an optimize OUTDIR with ``memtrim-report.json``) or a JSON document.

    Raises :class:`ReportInputError` (one line) for a missing path, a directory
    without the report, unreadable or non-JSON text, or an unknown ``schema``.
    """
    p = Path(path)
    if p.is_dir():
        if not (p / RUN_REPORT).is_file():
            raise ReportInputError(f"{p} is a directory without {RUN_REPORT} "
                                   "(give an optimize OUTDIR or a JSON file)")
        p = p / RUN_REPORT
    elif not p.exists():
        raise ReportInputError(f"no such file or directory: {p}")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ReportInputError(f"cannot read {p}: {getattr(e, 'strerror', None) or e}") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise ReportInputError(f"{p} is not JSON ({e.msg} at line {e.lineno})") from None
    if not isinstance(doc, dict):
        raise ReportInputError(f"{p} is not a memtrim document (a JSON object with 'schema')")
    schema = doc.get("schema")
    if schema not in (PROFILE_SCHEMA, OPTIMIZE_SCHEMA):
        what = f"schema {schema!r}" if schema is not None else "no 'schema' field"
        raise ReportInputError(f"{p} has {what}; expected {PROFILE_SCHEMA} or {OPTIMIZE_SCHEMA}")
    return doc


# --------------------------------------------------------------------------- formatting


def fmt_mb(value: float | None, digits: int = 1) -> str:
    """Bytes as decimal megabytes (``25.9 MB``), or ``-`` when unknown."""
    if value is None:
        return "-"
    return f"{value / 1e6:,.{digits}f} MB"


def fmt_delta_mb(value: float | None) -> str:
    """A signed change in MB (``-5.2 MB``)."""
    if value is None:
        return "-"
    return f"{value / 1e6:+,.1f} MB".replace("-", "−")


def fmt_pct(value: float | None) -> str:
    """A signed percentage (``-22.9%``), or ``-``."""
    if value is None:
        return "-"
    return f"{value:+.1f}%".replace("-", "−")


def fmt_secs(value: float | None) -> str:
    """Seconds with a precision that suits the size (``0.136 s``, ``12.4 s``)."""
    if value is None:
        return "-"
    return f"{value:.3f} s" if value < 10 else f"{value:,.1f} s"


def change_pct(before: float | None, after: float | None) -> float | None:
    """``after`` relative to ``before`` in percent (negative: smaller), or None."""
    if not before or after is None:
        return None
    return 100.0 * (after - before) / before


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-") or "x"


# --------------------------------------------------------------------------- view


def _program_sections(src: Mapping[str, Any], measurements: Mapping[str, Any] | None) -> dict:
    """Per-workload sections of one program, from a step or the optimize top level.

    The documented place is ``src[section][workload]``; a ``timeline``/``arenas``/
    ``imports``/``energy`` key inside a workload's measurement is read too.
    """
    out: dict[str, dict] = {}
    for key in ("timeline", "arenas", "imports", "energy"):
        per: dict[str, Any] = {}
        section = src.get(key)
        if isinstance(section, Mapping):
            if "available" in section or "samples" in section:
                per["*"] = section  # one section for every workload
            else:
                per.update({w: v for w, v in section.items() if isinstance(v, Mapping)})
        for w, m in (measurements or {}).items():
            if isinstance(m, Mapping) and isinstance(m.get(key), Mapping):
                per.setdefault(w, m[key])
        out[key] = per
    return out


def _lookup(per: Mapping[str, Any], workload: str) -> Any:
    return per.get(workload, per.get("*"))


def _programs(doc: Mapping[str, Any]) -> tuple[list[dict], list[str]]:
    """The original program and one per step, each with its measurements and sections."""
    if doc.get("schema") == PROFILE_SCHEMA:
        target = doc.get("target") or {}
        name = _short(str(target.get("name") or "application"))
        head = doc.get("headline") or {}
        kept = {"kept_step": True}

        def median(key: str) -> float | None:
            return _num((head.get(key) or {}).get("median"))

        runs = [r for r in doc.get("runs") or [] if r.get("mode") == "plain"]
        meas = {name: {
            "peak_rss": median("peak_rss"), "wall": median("wall"), "cpu": median("cpu"),
            "runs": len(runs) or None,
            "failures": [r.get("exit_code") for r in runs if r.get("exit_code")],
        }} if head else {}
        sections = {k: ({name: doc[k]} if isinstance(doc.get(k), Mapping) else {})
                    for k in ("timeline", "arenas", "imports", "energy")}
        return [{"name": "original", **kept, "measurements": meas, **sections}], [name]

    baseline = doc.get("baseline") if isinstance(doc.get("baseline"), Mapping) else {}
    workloads = list((doc.get("app") or {}).get("workloads") or [])
    for w in baseline:
        if w not in workloads:
            workloads.append(w)
    programs = [{"name": "original", "kept_step": True, "measurements": dict(baseline),
                 **_program_sections(doc, baseline)}]
    if isinstance(doc.get("final"), Mapping):
        programs[0]["final"] = doc["final"]
    for step in doc.get("steps") or []:
        meas = step.get("measurements") if isinstance(step.get("measurements"), Mapping) else {}
        # A step measured but not kept (its gain was below lambda) is not part of the
        # final program: it is drawn, but never taken as "optimized".
        programs.append({"name": str(step.get("name") or f"step {len(programs)}"),
                         "kept_step": step.get("kept_step") is not False,
                         "measurements": dict(meas), **_program_sections(step, meas)})
        for w in meas:
            if w not in workloads:
                workloads.append(w)
    return programs, workloads


def _latest(programs: Sequence[dict], key: str, workload: str) -> tuple[str, Any] | None:
    """The last kept step (not the original) that has ``key`` for ``workload``.

    That is the final program as far as ``key`` was measured; ``final`` (the
    pipeline's measurements of the final program), when present, wins for
    measurements.
    """
    if key == "measurements" and len(programs) > 1 and programs[0].get("final"):
        m = programs[0]["final"].get(workload)
        if isinstance(m, Mapping) and m.get("peak_rss") is not None:
            kept = [p["name"] for p in programs[1:] if p["kept_step"]]
            return (kept[-1] if kept else "original"), m
    for prog in reversed(programs[1:]):
        if not prog["kept_step"]:
            continue
        if key == "measurements":
            m = prog["measurements"].get(workload)
            if isinstance(m, Mapping) and m.get("peak_rss") is not None:
                return prog["name"], m
        else:
            v = _lookup(prog[key], workload)
            if v is not None:
                return prog["name"], v
    return None


def _summary_rows(programs: Sequence[dict], workloads: Sequence[str]) -> list[dict]:
    rows = []
    for w in workloads:
        base = programs[0]["measurements"].get(w) or {}
        final = _latest(programs, "measurements", w)
        after = final[1] if final else {}
        rows.append({
            "workload": w,
            "runs": base.get("runs"),
            "failures": list(base.get("failures") or []) + list(after.get("failures") or []),
            "peak_before": _int(base.get("peak_rss")),
            "peak_after": _int(after.get("peak_rss")),
            "peak_change": change_pct(base.get("peak_rss"), after.get("peak_rss")),
            "wall_before": _num(base.get("wall")),
            "wall_after": _num(after.get("wall")),
            "wall_change": change_pct(base.get("wall"), after.get("wall")),
            "cpu_before": _num(base.get("cpu")),
            "cpu_after": _num(after.get("cpu")),
            "final_step": final[0] if final else None,
        })
    return rows


def _step_rows(doc: Mapping[str, Any], programs: Sequence[dict],
               workloads: Sequence[str]) -> list[dict]:
    steps = doc.get("steps") or []
    rows = []
    for i, prog in enumerate(programs):
        step = steps[i - 1] if i else {}
        # the change is against the program this step started from: the last kept one
        prev = next((p["measurements"] for p in reversed(programs[:i]) if p["kept_step"]), {})
        cells = []
        for w in workloads:
            m = prog["measurements"].get(w) or {}
            p = prev.get(w) or {}
            cells.append({
                "peak": _int(m.get("peak_rss")), "wall": _num(m.get("wall")),
                "peak_change": change_pct(p.get("peak_rss"), m.get("peak_rss")) if i else None,
                "wall_change": change_pct(p.get("wall"), m.get("wall")) if i else None,
            })
        rows.append({
            "name": prog["name"],
            "kept_step": prog["kept_step"],
            "why_not_kept": str(step.get("why_not_kept") or "") if i else "",
            "description": str(step.get("description") or "") if i else "",
            "proposed": step.get("proposed") if i else None,
            "kept": len(step.get("kept") or []) if i else None,
            "dropped": len(step.get("dropped") or []) if i else None,
            "runs": step.get("verification_runs") if i else None,
            "duration": _num(step.get("duration")) if i else None,
            "files_changed": len(step.get("files_changed") or []) if i else None,
            "cells": cells,
        })
    return rows


def _peak_overall(
    programs: Sequence[dict], workloads: Sequence[str]
) -> tuple[int | None, int | None]:
    """The largest peak over workloads, original and final: what a board must hold."""
    before = [_int((programs[0]["measurements"].get(w) or {}).get("peak_rss")) for w in workloads]
    after = []
    for w in workloads:
        final = _latest(programs, "measurements", w)
        after.append(_int(final[1].get("peak_rss")) if final else None)
    b = [v for v in before if v is not None]
    a = [v for v in after if v is not None]
    return (max(b) if b else None), (max(a) if a and len(a) == len(workloads) else None)


def _device_view(doc: Mapping[str, Any], programs: Sequence[dict],
                 workloads: Sequence[str]) -> dict | None:
    from ..devices import BOARDS, boards_by_name, device_fit, size_label

    peak_before, peak_after = _peak_overall(programs, workloads)
    section = doc.get("device")
    computed = not isinstance(section, Mapping) or not section
    if computed:
        if peak_before is None and peak_after is None:
            return None
        section = device_fit(peak_before, peak_after, BOARDS)
    known = boards_by_name()
    rows = []
    for name, d in section.items():
        if not isinstance(d, Mapping):
            continue
        ram = _int(d.get("ram_bytes"))
        rows.append({
            "name": name,
            "ram": ram,
            "ram_label": size_label(ram) if ram else "-",
            "fits_original": d.get("fits_original"),
            "fits_optimized": d.get("fits_optimized"),
            "headroom": _int(d.get("headroom_bytes")),
            "notes": known[name].notes if name in known else "",
        })
    return {"rows": rows, "computed": computed, "peak_before": peak_before,
            "peak_after": peak_after}


def _arena_rows(programs: Sequence[dict], workloads: Sequence[str]) -> list[dict]:
    rows = []
    for w in workloads:
        before = _lookup(programs[0]["arenas"], w)
        final = _latest(programs, "arenas", w)
        after = final[1] if final else None

        def get(sec: Any, key: str) -> float | None:
            if isinstance(sec, Mapping) and sec.get("available", True):
                return _num(sec.get(key))
            return None

        def why(sec: Any) -> str | None:
            if sec is None:
                return NOT_MEASURED
            if isinstance(sec, Mapping) and sec.get("available") is False:
                return f"unavailable: {sec.get('reason', 'no reason given')}"
            return None

        row: dict[str, Any] = {"workload": w, "before_note": why(before),
                               "after_note": why(after) if len(programs) > 1 else None,
                               "after_step": final[0] if final else None}
        for key in ("arenas_avg", "arenas_max", "pools_avg", "pools_max"):
            row[key] = (get(before, key), get(after, key))
            row[key + "_change"] = change_pct(*row[key])
        for key in ("arena_size", "pool_size"):
            row[key] = get(before, key) or get(after, key)
        rows.append(row)
    return rows


def _flatten(tree: Iterable[Mapping[str, Any]], depth: int = 0) -> Iterable[tuple[int, Mapping]]:
    for node in tree:
        yield depth, node
        yield from _flatten(node.get("children") or [], depth + 1)


def _modules_view(programs: Sequence[dict], workloads: Sequence[str]) -> dict | None:
    """The module cost tree of the first workload whose original has one, before and after."""
    for w in workloads:
        before = _lookup(programs[0]["imports"], w)
        if isinstance(before, Mapping) and before.get("available") and before.get("tree"):
            break
    else:
        notes = [s.get("reason") for p in programs for s in p["imports"].values()
                 if isinstance(s, Mapping) and s.get("available") is False]
        return {"available": False,
                "reason": f"unavailable: {notes[0]}" if notes else NOT_MEASURED}
    final = _latest(programs, "imports", w)
    after = final[1] if final and isinstance(final[1], Mapping) and final[1].get("available") \
        else None

    def index(section: Mapping | None) -> dict[str, dict]:
        out: dict[str, dict] = {}
        for depth, node in _flatten((section or {}).get("tree") or []):
            out.setdefault(str(node.get("module")), {**node, "depth": depth})
        return out

    b, a = index(before), index(after)
    order = sorted(b, key=lambda m: -(b[m].get("self_rss") or 0))[:TOP_MODULES]
    rows = [{
        "module": m,
        "depth": b[m]["depth"],
        "ok": b[m].get("ok", True),
        "self_before": _int(b[m].get("self_rss")), "cum_before": _int(b[m].get("cum_rss")),
        "self_traced_before": _int(b[m].get("self_traced")),
        "self_after": _int(a[m].get("self_rss")) if m in a else None,
        "cum_after": _int(a[m].get("cum_rss")) if m in a else None,
        "gone": after is not None and m not in a,
    } for m in order]
    gone = sorted((m for m in b if after is not None and m not in a),
                  key=lambda m: -(b[m].get("cum_rss") or 0))
    # A module whose importer is gone too is counted with it, not twice.
    top_gone = [m for m in gone if not any(m.startswith(g + ".") for g in gone if g != m)]
    return {
        "available": True,
        "traced": any(r["self_traced_before"] is not None for r in rows),
        "workload": w,
        "before": before,
        "after": after,
        "after_step": final[0] if after is not None and final else None,
        "modules_before": before.get("modules") or len(b),
        "modules_after": (after.get("modules") or len(a)) if after is not None else None,
        "rows": rows,
        "gone": [{"module": m, "cum": _int(b[m].get("cum_rss"))} for m in top_gone[:20]],
        "gone_count": len(gone),
    }


def _energy_rows(programs: Sequence[dict], workloads: Sequence[str]) -> list[dict]:
    rows = []

    def describe(sec: Any) -> tuple[float | None, str]:
        if not isinstance(sec, Mapping):
            return None, "unavailable: energy was not measured in this run"
        if sec.get("available"):
            j = _num((sec.get("joules") or {}).get("median"))
            return j, (f"{j:.2f} J" if j is not None else "unavailable: no value")
        return None, f"unavailable: {sec.get('reason') or 'no reason given'}"

    for w in workloads:
        before = describe(_lookup(programs[0]["energy"], w))
        final = _latest(programs, "energy", w)
        after = describe(final[1] if final else None) if len(programs) > 1 else (None, "")
        scope = ""
        sec = _lookup(programs[0]["energy"], w)
        if isinstance(sec, Mapping) and sec.get("available"):
            scope = str(sec.get("scope") or "")
        rows.append({"workload": w, "before": before[1], "after": after[1],
                     "change": change_pct(before[0], after[0]), "scope": scope})
    return rows


def parse_diff(diff: str) -> list[dict]:
    """Split a unified diff into files and hunks with stable anchors and line classes."""
    files: list[dict] = []
    hunk: dict | None = None
    lines = diff.splitlines()
    i = 0
    shown = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("--- ") and i + 1 < len(lines) and lines[i + 1].startswith("+++ "):
            new = lines[i + 1][4:].split("\t")[0]
            old = line[4:].split("\t")[0]
            path = new[2:] if new.startswith("b/") else new
            if path == "/dev/null":
                path = old[2:] if old.startswith("a/") else old
            files.append({"path": path, "anchor": f"diff-{len(files) + 1}", "hunks": [],
                          "truncated": False})
            hunk = None
            i += 2
            continue
        m = re.match(r"@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@(.*)", line)
        if m and files:
            f = files[-1]
            hunk = {"anchor": f"{f['anchor']}-h{len(f['hunks']) + 1}", "header": line,
                    "old_start": int(m.group(1)),
                    "old_len": int(m.group(2)) if m.group(2) is not None else 1,
                    "lines": []}
            f["hunks"].append(hunk)
        elif hunk is not None:
            if shown >= MAX_DIFF_LINES:
                files[-1]["truncated"] = True
            else:
                cls = {"+": "add", "-": "del", "\\": "meta"}.get(line[:1], "ctx")
                hunk["lines"].append((cls, line))
                shown += 1
        i += 1
    return files


def _hunk_for(files: Sequence[dict], path: str | None, line: int | None) -> str | None:
    """The anchor of the hunk that shows an edit at ``path:line`` (else of its file)."""
    if not path:
        return None
    p = str(path).replace(os.sep, "/")
    for f in files:
        fp = f["path"]
        if fp == p or fp.endswith("/" + p) or p.endswith("/" + fp):
            if isinstance(line, int):
                for h in f["hunks"]:
                    # Three lines of context either side: an edit at a hunk's edge is its own.
                    if h["old_start"] - 3 <= line <= h["old_start"] + max(h["old_len"], 1) + 3:
                        return h["anchor"]
            return f["anchor"]
    return None


def _evidence_items(evidence: Any) -> list[dict]:
    """``[{key, text, refs}]``: one item per piece of evidence; ``refs`` are edit ids it names."""
    if evidence is None or evidence == {} or evidence == []:
        return []

    def item(key: str, value: Any) -> dict:
        # Edits that depend on other edits name them by id: linked in the HTML.
        refs = [v for v in value if isinstance(v, str)] \
            if key == "depends_on" and isinstance(value, list) else []
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        return {"key": key, "text": text, "refs": refs}

    if isinstance(evidence, Mapping):
        return [item(str(k), v) for k, v in evidence.items()]
    if isinstance(evidence, (list, tuple)):
        return [item("", e) for e in evidence]
    return [item("", str(evidence))]


def _edit_view(edit: Any, step: str, files: Sequence[dict]) -> dict:
    if not isinstance(edit, Mapping):
        return {"id": None, "anchor": None, "pass": step, "kind": "", "path": None, "line": None,
                "where": "", "symbol": "", "reason": str(edit), "evidence": [], "hunk": None}
    path = edit.get("path")
    line = edit.get("line")
    where = f"{path}:{line}" if path and line is not None else str(path or "")
    ident = str(edit.get("id") or f"{step}-{where}-{edit.get('symbol')}")
    return {
        "id": edit.get("id"),
        "anchor": "edit-" + _slug(ident),
        "pass": str(edit.get("pass_name") or step),
        "kind": str(edit.get("kind") or ""),
        "path": path, "line": line, "where": where,
        "symbol": str(edit.get("symbol") or ""),
        "reason": str(edit.get("reason") or ""),
        "evidence": _evidence_items(edit.get("evidence")),
        "hunk": _hunk_for(files, path, line if isinstance(line, int) else None),
    }


def _edit_groups(doc: Mapping[str, Any], files: Sequence[dict]) -> list[dict]:
    """Kept and dropped edits grouped by the pass that proposed them, in pipeline order.

    The edits of a step that was measured but not kept (``kept_step: false``)
    verified but are not in the result: their group says why, with no diff link.
    """
    groups: dict[tuple[str, str], dict] = {}

    def group(name: str, step: Mapping[str, Any], sname: str) -> dict:
        not_kept = step.get("kept_step") is False
        return groups.setdefault((name, sname), {
            "pass": name, "step": sname, "kept": [], "dropped": [],
            "not_kept": (str(step.get("why_not_kept") or "its gain was too small")
                         if not_kept else ""),
        })

    for step in doc.get("steps") or []:
        if not isinstance(step, Mapping):
            raise TypeError("a step is not an object")
        sname = str(step.get("name") or "")
        for e in step.get("kept") or []:
            ev = _edit_view(e, sname, files)
            g = group(ev["pass"], step, sname)
            if g["not_kept"]:
                ev["hunk"] = None
            g["kept"].append(ev)
        for d in step.get("dropped") or []:
            ev = _edit_view(d.get("edit") if isinstance(d, Mapping) else d, sname, files)
            ev["hunk"] = None  # a dropped edit is not in the diff
            diffs = [x for x in (d.get("differences") or []) if isinstance(x, Mapping)] \
                if isinstance(d, Mapping) else []
            ev["drop_reason"] = str(d.get("reason") or "") if isinstance(d, Mapping) else ""
            ev["applied_with"] = d.get("applied_with") if isinstance(d, Mapping) else None
            ev["differences"] = [{
                "workload": str(x.get("workload", "")), "stream": str(x.get("stream", "")),
                "excerpt": str(x.get("excerpt", "")), "normalized": bool(x.get("normalized")),
            } for x in diffs]
            group(ev["pass"], step, sname)["dropped"].append(ev)
    anchors = {e["id"]: e["anchor"] for g in groups.values() for e in g["kept"] if e["id"]}
    for g in groups.values():
        for e in g["kept"] + g["dropped"]:
            for it in e["evidence"]:
                it["links"] = [(r, anchors.get(r)) for r in it["refs"]]
    return list(groups.values())


def _meta(doc: Mapping[str, Any]) -> list[tuple[str, str]]:
    interp = doc.get("interpreter") or {}
    python = str(interp.get("python") or "?")
    if interp.get("version"):
        python += f" ({interp.get('implementation', 'python')} {interp['version']}"
        python += ", venv)" if interp.get("venv") else ")"
    rows = [("interpreter", python),
            ("interpreter options", " ".join(interp.get("args") or []) or "none")]
    if doc.get("schema") == PROFILE_SCHEMA:
        t = doc.get("target") or {}
        rows.insert(0, ("program", f"{'-m ' if t.get('kind') == 'module' else ''}{t.get('name')}"
                        + (" " + " ".join(map(str, t.get("args") or [])) if t.get("args") else "")))
        m = doc.get("machine") or {}
        if m:
            rows.append(("machine", f"{m.get('hostname', '?')} ({m.get('machine', '?')}, "
                                    f"{m.get('cpus', '?')} CPUs)"))
        s = doc.get("settings") or {}
        if s:
            rows.append(("runs", f"{s.get('repeat', 1)} headline, sampled every "
                                 f"{(s.get('interval') or 0) * 1000:g} ms; "
                                 + ", ".join(s.get("runs") or [])))
    else:
        app = doc.get("app") or {}
        entry = app.get("entry") or (f"-m {app.get('module')}" if app.get("module") else "?")
        rows.insert(0, ("program", str(entry)))
        rows.insert(1, ("workloads", ", ".join(app.get("workloads") or []) or "none"))
        rows.append(("mode", str(doc.get("mode") or "safe")))
        oracle = doc.get("oracle") or {}
        if oracle:
            rows.append(("verified against", f"{len(oracle.get('workloads') or [])} workload(s) "
                         f"recorded {oracle.get('repeat', '?')}x from the original, "
                         f"{len(oracle.get('normalizers') or [])} normalizer(s)"
                         + (", the app's tests" if oracle.get("test_command") else "")))
        if doc.get("outdir"):
            rows.append(("output", str(doc["outdir"])))
        if doc.get("duration") is not None:
            rows.append(("duration", fmt_secs(_num(doc.get("duration")))))
    rows.append(("created",
                 f"{doc.get('created', '?')} by memtrim {doc.get('memtrim_version', '?')}"))
    return rows


def _short(path: str) -> str:
    # "examples/gateway/run.py" -> "gateway/run.py": the file name alone is often "run.py".
    parts = Path(path).parts
    return "/".join(parts[-2:]) if len(parts) > 1 else path


def build_view(doc: Mapping[str, Any]) -> dict:
    """Everything the HTML and Markdown reports show, as plain data (no drawing)."""
    kind = "profile" if doc.get("schema") == PROFILE_SCHEMA else "optimize"
    programs, workloads = _programs(doc)
    if kind == "profile":
        name = _short(str((doc.get("target") or {}).get("name") or "application"))
        floor = _int(((doc.get("floor") or {}).get("peak_rss") or {}).get("median"))
    else:
        app = doc.get("app") or {}
        name = _short(str(app.get("entry"))) if app.get("entry") else f"-m {app.get('module')}"
        floor = _int(doc.get("floor_peak_rss"))
    files = parse_diff(str(doc.get("diff") or "")) if kind == "optimize" else []
    summary = _summary_rows(programs, workloads)
    for row in summary:
        row["reducible_before"] = (row["peak_before"] - floor
                                   if floor and row["peak_before"] is not None else None)
        row["reducible_after"] = (row["peak_after"] - floor
                                  if floor and row["peak_after"] is not None else None)
    groups = _edit_groups(doc, files)
    failure = doc.get("failure") if isinstance(doc.get("failure"), Mapping) else None
    return {
        "kind": kind,
        "name": name,
        "title": f"memtrim {kind} report: {name}",
        "meta": _meta(doc),
        "specialize": kind == "optimize" and doc.get("mode") == "specialize",
        "failure": failure,
        "warnings": [str(w) for w in doc.get("warnings") or []],
        "problems": [p for p in doc.get("problems") or [] if isinstance(p, Mapping)],
        "workloads": workloads,
        "programs": programs,
        "program_names": [p["name"] for p in programs],
        "floor": floor,
        "summary": summary,
        "steps": _step_rows(doc, programs, workloads),
        "device": _device_view(doc, programs, workloads),
        "arenas": _arena_rows(programs, workloads),
        "modules": _modules_view(programs, workloads),
        "energy": _energy_rows(programs, workloads),
        "edit_groups": groups,
        "kept_count": sum(len(g["kept"]) for g in groups),
        "dropped_count": sum(len(g["dropped"]) for g in groups),
        "diff_files": files,
        "changed": doc.get("changed"),
        "allocations": doc.get("allocations") if kind == "profile" else None,
        "children": doc.get("children") if kind == "profile" else None,
        "peak_source": ((doc.get("headline") or {}).get("peak_source")
                        if kind == "profile" else None),
    }


# --------------------------------------------------------------------------- figures


def _timeline_samples(section: Any) -> list | None:
    if not isinstance(section, Mapping):
        return None
    cols = section.get("columns") or ["t", "rss"]
    samples = section.get("samples") or []
    try:
        ti, ri = cols.index("t"), cols.index("rss")
    except ValueError:
        return None
    pts = [(s[ti], s[ri]) for s in samples if len(s) > max(ti, ri)]
    return pts or None


def _figures(view: Mapping[str, Any]) -> dict[str, Any]:
    """Draw the plots; a figure whose data is absent is None (the template says why)."""
    from . import plots

    plots.reset_ids()
    programs, workloads = view["programs"], view["workloads"]
    figs: dict[str, Any] = {}

    panels = {}
    for w in workloads:
        series = []
        before = _timeline_samples(_lookup(programs[0]["timeline"], w))
        if before:
            series.append(("original", before))
        final = _latest(programs, "timeline", w)
        after = _timeline_samples(final[1]) if final else None
        if after:
            series.append((f"optimized (after {final[0]})", after))
        if series:
            panels[w] = series
    figs["timeline"] = plots.timeline_svg(panels, view["floor"]) if panels else None

    names = view["program_names"]
    peaks = {w: [(p["measurements"].get(w) or {}).get("peak_rss") for p in programs]
             for w in workloads}
    walls = {w: [(p["measurements"].get(w) or {}).get("wall") for p in programs]
             for w in workloads}
    # One bar per program: a profile has only the original, whose figures the summary has.
    has_peaks = view["kind"] == "optimize" and any(
        v is not None for vs in peaks.values() for v in vs)
    rejected = [not p["kept_step"] for p in programs]
    figs["steps_rss"] = plots.step_bars_svg(
        names, peaks, ylabel="peak RSS (MB)", unit_scale=1e6, floor=view["floor"],
        not_kept=rejected,
    ) if has_peaks else None
    figs["steps_time"] = plots.step_bars_svg(
        names, walls, ylabel="wall time (s)", value_format="{:.2f}", not_kept=rejected,
    ) if has_peaks and any(v is not None for vs in walls.values() for v in vs) else None

    arena_panels = {}
    for w in workloads:
        series = []
        before = _lookup(programs[0]["arenas"], w)
        final = _latest(programs, "arenas", w)
        for label, sec in (("original", before),
                           (f"optimized (after {final[0]})" if final else "", final and final[1])):
            if isinstance(sec, Mapping) and sec.get("available") and sec.get("samples"):
                series.append((label, sec["samples"]))
        if series:
            arena_panels[w] = series
    figs["arenas"] = plots.arenas_svg(arena_panels) if arena_panels else None

    mods = view["modules"]
    figs["icicle_before"] = figs["icicle_after"] = None
    if mods and mods.get("available"):
        def total(sec: Mapping | None) -> float:
            tree = (sec or {}).get("tree") or []
            widths = plots.layout_widths(tree)
            return float(sum(widths[id(n)] for n in tree))

        scale = max(total(mods["before"]), total(mods["after"]), 1.0)
        figs["icicle_before"] = plots.icicle_svg(
            mods["before"]["tree"], title=f"original ({mods['workload']})", scale_total=scale)
        if mods["after"] is not None:
            figs["icicle_after"] = plots.icicle_svg(
                mods["after"]["tree"], title=f"after {mods['after_step']} ({mods['workload']})",
                scale_total=scale)
    return figs


# --------------------------------------------------------------------------- rendering


def _environment() -> Any:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(Path(__file__).parent / "templates")),
        autoescape=jinja2.select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
        # Documents come from other versions and from hand edits: a missing key renders
        # as nothing rather than failing the whole report.
        undefined=jinja2.ChainableUndefined,
        extensions=["jinja2.ext.loopcontrols"],
    )
    env.filters.update(mb=fmt_mb, dmb=fmt_delta_mb, pct=fmt_pct, secs=fmt_secs)
    return env


def render_html(doc: Mapping[str, Any]) -> str:
    """The report as one self-contained HTML page (inline SVG and CSS, no script, no fetch)."""
    view = build_view(doc)
    figs = _figures(view)
    return _environment().get_template("report.html").render(v=view, figs=figs,
                                                             NOT_MEASURED=NOT_MEASURED)


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_html(doc: Mapping[str, Any], path: str | os.PathLike[str]) -> Path:
    """Render ``doc`` and write it to ``path`` atomically; return the path."""
    out = Path(path)
    _write_atomic(out, render_html(doc))
    return out


def write_run_reports(doc: Mapping[str, Any], outdir: str | os.PathLike[str]) -> list[Path]:
    """What ``optimize`` writes next to ``memtrim-report.json``: the HTML and Markdown reports."""
    from .markdown import render_markdown

    out = Path(outdir)
    html_path = write_html(doc, out / HTML_NAME)
    md_path = out / MARKDOWN_NAME
    _write_atomic(md_path, render_markdown(doc))
    return [html_path, md_path]
