"""``memtrim bench``: memtrim against the tools users would pick instead, on the same workloads.

The experiment follows seed 003's runner (its Fig. 1): every variant of every
workload is built once (cached by content hash), run once to warm up, then
measured in ``N`` repetitions whose order is shuffled with a recorded seed, with
an optional cool-down pause between runs.  Each run is appended to
``run_table.csv`` as soon as it ends, so an interrupted experiment resumes
where it stopped.  ``summary`` turns the table into the Markdown tables and the
plots of ``benchmarks/RESULTS.md``.

Modules: ``probe`` (one measured run of any command), ``envs`` (pinned venvs
under ``.bench-venvs``), ``workloads``, ``variants``, ``runner``, ``summary``,
``cli_bench``.
"""
