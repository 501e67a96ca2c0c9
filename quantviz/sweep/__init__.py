"""Sweeps: many models under many configurations, the cells on warm Ray workers.

- ``grid``: the cross product of the flag values -> cells (model, PipelineConfig)
- ``cell``: run one cell in this process -> ``CellResult`` (no Ray)
- ``actors``: warm workers (one Ray actor per CPU, libraries loaded once), the job queue, dead workers replaced
- ``ray_setup``: starting or joining Ray, model files for a cluster, breadcrumbs, a crash in words
- ``ray_runner``: the cells on the warm workers (or one task per cell, ``fresh_process``), crashed cells
- ``results``: sweep.json, sweep.csv, sweep.html (heatmap), the baseline gate

Example::

    from quantviz.sweep.grid import build_grid
    from quantviz.sweep.ray_runner import run_sweep
    from quantviz.sweep.results import write_results

    sweep = run_sweep(build_grid(["sample:conv_add"], {"flow": ["fx", "pt2e"]}))
    write_results(sweep, Path("out/sweep"))
"""
