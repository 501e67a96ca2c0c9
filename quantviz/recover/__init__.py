"""Recovery search: from "where is accuracy lost" to "this configuration gets it back" (``quantviz recover``).

- ``candidates``: the ``Candidate`` record (one structured config change) and how changes compose; flows and
  backends declare theirs (``Flow.recovery``, ``Backend.recovery``) with its constructors
- ``generate``: the candidates of a model under a config (its weighted layers, its flow's and backend's lists)
- ``search``: greedy selection and pruning over measured trials, the target, the winner (no torch, no Ray)
- ``evaluate``: one change set run through the whole flow to the runtime in this process, stages shared by fork
- ``runner``: the evaluators: in this process, or on warm Ray actors (``quantviz.sweep.actors``)
- ``results``: recover.json, recover.csv, reproduce.py, the Pareto charts, the summary and its Markdown table

This package's ``__init__`` imports nothing: flows and backends import ``candidates`` (a record) without
pulling the search, the pipeline or Ray along.

Example::

    from quantviz.recover.runner import recover
    from quantviz.recover.search import Target

    found = recover("sample:digits_cnn", PipelineConfig(flow="pt2e"), Target("sqnr", 38.0), budget=8)
    found.met, found.winner.flags
"""
