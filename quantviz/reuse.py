"""Stage reuse between runs of one model in one process: keep a few finished pipelines and start each new config
from the one sharing the most stages (``Pipeline.fork``: every stage before the first whose signature differs).

Under pt2e a layer kept float re-runs from prepare (torch.export's graph does not depend on what is skipped);
another observer or per-channel weights from prepare; more calibration batches from prepare too (calibration
changes the observers in place)::

    cache = PipelineCache(keep=2)
    pipe, reused, saved = cache.start(spec, "sample:digits_cnn", config)   # reused: ['trace'], saved: 0.41 s
    pipe.run()
    cache.keep_pipeline("sample:digits_cnn", pipe)
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Collection

from quantviz.config import PipelineConfig
from quantviz.flows import flow_of, with_backend_defaults
from quantviz.model_spec import ModelSpec
from quantviz.pipeline import Pipeline


def shared_stages(pipe: Pipeline, config: PipelineConfig) -> int:
    """How many leading stages a fork of ``pipe`` for ``config`` would keep (0 for another flow)."""
    try:
        flow = flow_of(config)
    except ValueError:
        return 0
    if (flow.name, flow.names) != (pipe.flow.name, pipe.flow.names):
        return 0
    stages, n = flow.stages, 0
    for s in stages:
        r = pipe.results.get(s.name)
        if r is None or not r.ok or s.signature(pipe.config) != s.signature(config):
            break
        n += 1
    while n > 0 and n < len(stages) and stages[n].mutates_input:
        n -= 1  # the next stage changes its input in place: that input is re-made too (Pipeline.update)
    return n


class PipelineCache:
    """The last ``keep`` pipelines (per model reference, least recently used dropped first) to fork from."""

    def __init__(self, keep: int = 2) -> None:
        self.keep = keep
        self._pipes: OrderedDict[tuple[str, int], Pipeline] = OrderedDict()

    def start(self, spec: ModelSpec, model_ref: str, config: PipelineConfig, explicit: Collection[str] = frozenset()
              ) -> tuple[Pipeline, list[str], float]:
        """A pipeline for ``config`` (``explicit``: the fields the user set, which the backend's defaults leave alone):
        a fork of the kept one that shares the most stages, else a new one; with the stages it starts with (reused)
        and the seconds those took when they ran."""
        best, best_n = None, 0
        runs = with_backend_defaults(config, explicit)[0]  # what the pipeline will run: what the kept ones ran
        for (ref, _), pipe in self._pipes.items():
            if ref == model_ref and pipe.spec is spec:
                n = shared_stages(pipe, runs)
                if n > best_n:
                    best, best_n = pipe, n
        if best is None:
            return Pipeline(spec, config, explicit=explicit), [], 0.0
        pipe = best.fork(config, explicit)
        pipe.on_event = lambda e: None
        reused = [name for name in pipe.stage_names if name in pipe.results]
        return pipe, reused, sum(pipe.results[name].seconds for name in reused)

    def keep_pipeline(self, model_ref: str, pipe: Pipeline) -> None:
        key = (model_ref, id(pipe))
        self._pipes[key] = pipe
        self._pipes.move_to_end(key)
        while len(self._pipes) > self.keep:
            self._pipes.popitem(last=False)

    def clear(self) -> None:
        self._pipes.clear()
