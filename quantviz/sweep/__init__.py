"""Sweeps: many models under many configurations, one Ray task per cell.

- ``grid``: the cross product of the flag values -> cells (model, PipelineConfig)
- ``cell``: run one cell in this process -> ``CellResult`` (no Ray)
- ``ray_runner``: the cells as Ray tasks, the ``ray.wait`` loop, crashed workers
- ``results``: sweep.json, sweep.csv, sweep.html (heatmap), the baseline gate

Example::

    from quantviz.sweep.grid import build_grid
    from quantviz.sweep.ray_runner import run_sweep
    from quantviz.sweep.results import write_results

    sweep = run_sweep(build_grid(["sample:conv_add"], {"flow": ["fx", "pt2e"]}))
    write_results(sweep, Path("out/sweep"))
"""
