"""The Markdown summary of a memtrim report, for CI logs and pull requests.

Short on purpose: the headline per workload, the steps, device fit, what
verification dropped and why, and energy.  The figures live in the HTML report;
this renders the same view (:func:`memtrim.report.html.build_view`), so the two
never disagree.  GitHub-flavoured: pipe tables and ``<details>`` blocks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .html import NOT_MEASURED, build_view, fmt_delta_mb, fmt_mb, fmt_pct, fmt_secs

MAX_DROPPED = 50  # a PR comment has a size limit; the HTML report lists all of them


def _cell(value: Any) -> str:
    # A pipe or a newline inside a cell would break the table.
    return str(value).replace("|", "\\|").replace("\n", " ").strip() or " "


def table(header: Sequence[str], rows: Sequence[Sequence[Any]], right: Sequence[int] = ()) -> str:
    """A pipe table; columns listed in ``right`` are right-aligned (numbers)."""
    lines = ["| " + " | ".join(_cell(h) for h in header) + " |",
             "|" + "|".join("---:" if i in right else "---" for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _fits(value: bool | None) -> str:
    return "-" if value is None else ("yes" if value else "**no**")


def _summary(v: Mapping[str, Any]) -> str:
    optimize = v["kind"] == "optimize"
    if optimize:
        header = ["workload", "peak RSS original", "optimized", "change",
                  "wall original", "optimized", "change"]
        rows = [[r["workload"], fmt_mb(r["peak_before"]), fmt_mb(r["peak_after"]),
                 fmt_pct(r["peak_change"]), fmt_secs(r["wall_before"]), fmt_secs(r["wall_after"]),
                 fmt_pct(r["wall_change"])] for r in v["summary"]]
        return table(header, rows, right=range(1, 7))
    header = ["workload", "peak RSS", "reducible (peak - bare)", "wall", "CPU"]
    rows = [[r["workload"], fmt_mb(r["peak_before"]), fmt_mb(r["reducible_before"]),
             fmt_secs(r["wall_before"]), fmt_secs(r["cpu_before"])] for r in v["summary"]]
    return table(header, rows, right=range(1, 5))


def _steps(v: Mapping[str, Any]) -> str:
    header = ["step", "kept / proposed", "dropped"] + [f"{w} peak RSS" for w in v["workloads"]]
    rows = []
    for s in v["steps"]:
        row = [s["name"] + ("" if s["kept_step"] else " (not kept)"),
               f"{s['kept']} / {s['proposed']}" if s["kept"] is not None else "-",
               s["dropped"] if s["dropped"] is not None else "-"]
        for c in s["cells"]:
            if c["peak"] is None:
                row.append(NOT_MEASURED)
            else:
                row.append(fmt_mb(c["peak"]) + (f" ({fmt_pct(c['peak_change'])})"
                                                if c["peak_change"] is not None else ""))
        rows.append(row)
    return table(header, rows, right=range(1, len(header)))


def _devices(v: Mapping[str, Any]) -> str:
    d = v["device"]
    if not d:
        return f"Device fit: {NOT_MEASURED}."
    optimize = v["kind"] == "optimize"
    header = ["board", "RAM", "original fits"] + (["optimized fits"] if optimize else []) \
        + ["headroom"]
    rows = []
    for r in d["rows"]:
        row = [r["name"], r["ram_label"], _fits(r["fits_original"])]
        if optimize:
            row.append(_fits(r["fits_optimized"]))
        row.append(fmt_delta_mb(r["headroom"]))
        rows.append(row)
    return (table(header, rows, right=(1, len(header) - 1))
            + "\n\nBoard RAM in binary units as sold (32 MB = 33.6 x 10^6 bytes); peaks and "
            "headroom in MB of 10^6 bytes.")


def _dropped(v: Mapping[str, Any]) -> list[str]:
    out = []
    for g in v["edit_groups"]:
        for e in g["dropped"]:
            streams = ", ".join(sorted({f"{x['workload']}: {x['stream']}"
                                        for x in e["differences"]}))
            out.append(f"- `{e['where']}` {e['kind']} `{e['symbol']}` ({g['pass']}): "
                       f"{e['drop_reason'] or e['reason']}"
                       + (f" [{streams}]" if streams and streams not in e["drop_reason"] else ""))
    return out


def _energy(v: Mapping[str, Any]) -> list[str]:
    lines = []
    for r in v["energy"]:
        same = v["kind"] == "profile" or r["after"] == r["before"]
        text = r["before"] if same else f"{r['before']} → {r['after']}"
        if v["kind"] == "optimize" and same:
            text += " (original and optimized)"
        if r["change"] is not None:
            text += f", {fmt_pct(r['change'])}"
        lines.append((r["workload"], text))
    if len({t for _, t in lines}) == 1 and len(lines) > 1:
        # The usual case without sensors: one reason, not one line per workload.
        return [f"- every workload: {lines[0][1]}"]
    return [f"- {w}: {t}" for w, t in lines]


def render_markdown(doc: Mapping[str, Any]) -> str:
    """The Markdown summary of a profile or optimize document."""
    v = build_view(doc)
    out = [f"## {v['title']}", ""]
    meta = dict(v["meta"])
    facts = [f"program `{meta.get('program', '?')}`"]
    if v["kind"] == "optimize":
        facts.append(f"mode **{meta.get('mode', 'safe')}**")
        facts.append(f"{v['kept_count']} edit(s) kept, {v['dropped_count']} dropped by "
                     "verification")
    facts.append(f"bare interpreter {fmt_mb(v['floor']) if v['floor'] else NOT_MEASURED}")
    out += ["; ".join(facts) + ".", ""]
    if v["specialize"]:
        out += ["> **specialize mode**: code that did not run in the workloads was removed; the "
                "result is only correct for inputs like the workloads'.", ""]
    if v["failure"]:
        out += [f"> **the application failed**: {v['failure'].get('message', '')}", ""]
    out += [f"> warning: {w}" for w in v["warnings"]]
    if v["summary"]:
        out += [_summary(v), ""]
    else:
        out += [f"Peak RSS: {NOT_MEASURED}.", ""]
    if v["kind"] == "optimize" and len(v["steps"]) > 1:
        out += ["### Per step", "", _steps(v), ""]
    out += ["### Device fit", "", _devices(v), ""]
    if v["kind"] == "optimize":
        out += ["### Edits", ""]
        if v["edit_groups"]:
            out += [table(["pass", "kept", "dropped"],
                          [[g["pass"], len(g["kept"]), len(g["dropped"])]
                           for g in v["edit_groups"]], right=(1, 2)), ""]
        else:
            out += ["No edit was proposed.", ""]
        dropped = _dropped(v)
        if dropped:
            out += ["<details><summary>Dropped by verification "
                    f"({len(dropped)})</summary>", "", *dropped[:MAX_DROPPED]]
            if len(dropped) > MAX_DROPPED:
                out.append(f"- … {len(dropped) - MAX_DROPPED} more in the HTML report")
            out += ["", "</details>", ""]
    out += ["### Energy", "", *_energy(v), ""]
    return "\n".join(out).rstrip() + "\n"
