"""Terminal summaries of memtrim's results, drawn with rich."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from ..measure.imports import ImportNode, prune


def mb(value: float | None) -> str:
    """Bytes as megabytes (MiB-free decimal MB, as boards are sold), or '-' if unknown."""
    if value is None:
        return "-"
    return f"{value / 1e6:.1f} MB"


def kb(value: float | None) -> str:
    """Bytes as kilobytes, signed, or '-' if unknown."""
    if value is None:
        return "-"
    return f"{value / 1e3:,.0f} kB"


def _secs(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f} s"


def _nodes_from_dicts(items: list[dict]) -> list[ImportNode]:
    out = []
    for d in items:
        node = ImportNode(
            d["module"],
            cum_rss=d["cum_rss"],
            cum_traced=d["cum_traced"],
            cum_time=d["cum_time"],
            ok=d["ok"],
            children=_nodes_from_dicts(d["children"]),
        )
        out.append(node)
    return out


def render_profile(doc: dict, console: Console, *, top: int = 20) -> None:
    """Print the profile document as a few readable tables."""
    interp = doc["interpreter"]
    head = doc["headline"]
    where = "venv" if interp.get("venv") else "base interpreter"
    site = "site on" if interp.get("site", True) else "site off (-S)"
    console.print(
        f"[bold]memtrim profile[/] {doc['target']['name']} "
        f"[dim]({interp.get('implementation', 'python')} {interp.get('version', '?')}, "
        f"{where}, {site}, args {' '.join(interp.get('args', [])) or 'none'})[/]"
    )
    if not interp.get("venv") and interp.get("site", True):
        console.print(
            "[yellow]note:[/] measured on the base interpreter with site enabled: .pth files "
            "in its site-packages may import extra modules; use a venv or --python-arg=-S."
        )

    t = Table(title="Footprint", title_justify="left", show_edge=False)
    for col in ("", "min", "median", "max"):
        t.add_column(col, justify="right" if col else "left")
    pk = head["peak_rss"]
    t.add_row("peak RSS", mb(pk["min"]), mb(pk["median"]), mb(pk["max"]))
    floor = doc.get("floor", {}).get("peak_rss")
    if floor:
        t.add_row("bare interpreter", mb(floor["min"]), mb(floor["median"]), mb(floor["max"]))
    red = doc.get("reducible", {}).get("peak_rss")
    if red is not None:
        t.add_row("[bold]reducible[/] (peak - bare)", "", mb(red), "")
    t.add_row(
        "wall time",
        _secs(head["wall"]["min"]),
        _secs(head["wall"]["median"]),
        _secs(head["wall"]["max"]),
    )
    t.add_row(
        "CPU time",
        _secs(head["cpu"]["min"]),
        _secs(head["cpu"]["median"]),
        _secs(head["cpu"]["max"]),
    )
    console.print(t)
    console.print(f"[dim]peak from: {head['peak_source']}; exit status {head['exit_code']}[/]")
    samples = doc["timeline"]["samples"]
    if samples:
        peak_sample = max(samples, key=lambda s: s[1])
        console.print(
            f"[dim]timeline: {len(samples)} samples every "
            f"{doc['timeline']['interval'] * 1000:g} ms; "
            f"at the highest sample ({peak_sample[0]:.2f} s) anon {mb(peak_sample[2])}, "
            f"file {mb(peak_sample[3])}, shmem {mb(peak_sample[4])}[/]"
        )
    kids = doc.get("children", {})
    if kids.get("seen"):
        console.print(
            f"[yellow]child processes:[/] {kids['seen']} seen; NOT counted in peak RSS. "
            f"Process tree peak (sampled): {mb(kids['tree_peak_rss'])}"
        )

    imports = doc.get("imports", {})
    if imports.get("available"):
        roots = _nodes_from_dicts(imports["tree"])
        total = imports["total_rss"] or 1
        rows = prune(roots, min_cum_rss=max(total // 200, 64 * 1024), limit=top * 2)
        t = Table(
            title=f"Import costs ({imports['modules']} modules, {mb(imports['total_rss'])} RSS"
            + (f", {mb(imports['total_traced'])} traced" if imports.get("total_traced") else "")
            + ")",
            title_justify="left",
            show_edge=False,
        )
        for col in ("RSS self", "RSS cum", "traced self", "traced cum", "module"):
            t.add_column(col, justify="left" if col == "module" else "right")
        for depth, node in rows:
            t.add_row(
                kb(node.self_rss),
                kb(node.cum_rss),
                kb(node.self_traced),
                kb(node.cum_traced),
                "  " * depth + node.name,
            )
        console.print(t)

    alloc = doc.get("allocations", {})
    if alloc.get("available"):
        t = Table(
            title=f"Top allocation lines at the traced peak ({mb(alloc['snapshot_traced'])} of "
            f"{mb(alloc['traced_peak'])} peak traced)",
            title_justify="left",
            show_edge=False,
        )
        t.add_column("bytes", justify="right")
        t.add_column("blocks", justify="right")
        t.add_column("where")
        for row in alloc["top_lines"][: top // 2 or 1]:
            t.add_row(kb(row["bytes"]), f"{row['count']:,}", f"{row['file']}:{row['line']}")
        console.print(t)
        if alloc.get("snapshot_traced") and alloc["snapshot_traced"] < 0.9 * alloc["traced_peak"]:
            console.print(
                "[dim]the snapshot missed part of a short-lived peak: snapshots are spaced by "
                "their own cost to keep the run short[/]"
            )
    census = doc.get("census", {})
    if census.get("available"):
        t = Table(
            title=f"Live objects by type at the RSS high ({census['objects']:,} objects, "
            f"{mb(census['bytes'])}, taken at {mb(census['rss_at_census'])} RSS)",
            title_justify="left",
            show_edge=False,
        )
        t.add_column("bytes", justify="right")
        t.add_column("count", justify="right")
        t.add_column("type")
        for row in census["types"][: top // 2 or 1]:
            t.add_row(kb(row["bytes"]), f"{row['count']:,}", row["type"])
        console.print(t)

    arenas = doc.get("arenas", {})
    if arenas.get("available") and arenas.get("arenas_avg") is not None:
        console.print(
            f"[bold]pymalloc[/]: arenas avg {arenas['arenas_avg']:.1f} "
            f"/ max {arenas['arenas_max']}, "
            f"pools avg {arenas['pools_avg']:.1f} / max {arenas['pools_max']} "
            f"[dim]({arenas['sample_count']} samples; arena {kb(arenas.get('arena_size'))}, "
            f"pool {kb(arenas.get('pool_size'))})[/]"
        )
    elif arenas:
        console.print(
            f"[dim]pymalloc arenas: unavailable ({arenas.get('reason', 'no arena data')})[/]"
        )
    energy = doc.get("energy", {})
    if energy.get("available"):
        console.print(f"energy: {energy['joules']['median']:.2f} J (median; {energy['scope']})")
    else:
        console.print(f"[dim]energy: unavailable ({energy.get('reason', 'unknown')})[/]")
    for w in doc.get("warnings", []):
        console.print(f"[yellow]warning:[/] {w}")


def render_optimize(report: dict, console: Console) -> None:
    """Print what ``optimize`` did: per step, its edits, what verification dropped, the gains."""
    app = report["app"]
    console.print(
        f"[bold]memtrim optimize[/] {app['entry'] or '-m ' + str(app['module'])} "
        f"[dim](mode {report['mode']}, {len(app['workloads'])} workload(s))[/]"
    )
    if report.get("warning"):
        console.print(f"[bold red]WARNING: {report['warning']}[/]")
    for problem in report.get("problems", []):
        where = problem["path"] + (f":{problem['line']}" if problem.get("line") else "")
        console.print(f"[yellow]skipped[/] {where}: {problem['message']}")
    for w in report.get("warnings", []):
        console.print(f"[yellow]warning:[/] {w}")
    for step in report["steps"]:
        kinds = ", ".join(f"{n} {k}" for k, n in sorted(step["edits_by_kind"].items())) or "none"
        console.print(
            f"[bold]{step['name']}[/]: {step['proposed']} edits proposed, {len(step['kept'])} kept "
            f"({kinds}), {len(step['dropped'])} dropped by verification "
            f"[dim]({step['verification_runs']} verification runs, {step['duration']:.1f} s)[/]"
        )
        for d in step["dropped"]:
            edit = d["edit"]
            console.print(
                f"  [red]dropped[/] {edit['path']}:{edit['line']} {edit['kind']} "
                f"{edit['symbol']}: {d['reason']}",
                highlight=False,
            )
        if step.get("kept_step") is False:
            console.print(f"  [yellow]step not kept:[/] {step['why_not_kept']}")
        gain = step.get("gain")
        if gain:
            t = Table(show_edge=False)
            for col in ("workload", "peak RSS before", "after", "reduction", "time ratio"):
                t.add_column(col, justify="left" if col == "workload" else "right")
            for name, g in gain.items():
                t.add_row(
                    name,
                    mb(g["peak_rss_before"]),
                    mb(g["peak_rss_after"]),
                    f"{g['reduction_pct']:.1f}%",
                    f"{g['wall_ratio']:.2f}x" if g["wall_ratio"] else "-",
                )
            console.print(t)
    if report.get("floor_peak_rss"):
        console.print(f"[dim]bare interpreter: {mb(report['floor_peak_rss'])}[/]")
    target = report.get("device_target")
    if target:
        from ..devices import verdict_line

        how = (f"enforced by {target.get('mechanism')}" if target.get("enforced")
               else f"not enforced: {target.get('reason')}")
        console.print(f"[bold]device[/]: {verdict_line(target)} [dim]({how})[/]")
    bundle = report.get("bundle")
    if bundle:
        console.print(f"bundle written to {bundle.get('outdir')}")
    if report.get("warning"):
        console.print(f"[bold red]WARNING: {report['warning']}[/]")
    if report.get("outdir") and report.get("changed") is not None:
        console.print(
            f"written to {report['outdir']}" + ("" if report["changed"] else " (no changes)")
        )
