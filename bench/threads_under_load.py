"""Benchmark: one calibration batch of a 1,300-block observed model, with torch's default threads or one thread.

    .venv/bin/python bench/threads_under_load.py 1300      # default threads
    .venv/bin/python bench/threads_under_load.py 1300 1    # one thread

Backs the README's "Scale" paragraph on why calibrate is 30x slower on a loaded machine: tiny ops, each an OpenMP
parallel region whose barrier waits for a thread another process holds. Prints each batch's seconds, twice.
"""
import sys, time
sys.path.insert(0, "/work/main"); sys.path.insert(0, "/work/main/bench")
import warnings; warnings.filterwarnings("ignore")
from scale_model import Chain
import torch
if len(sys.argv) > 2: torch.set_num_threads(int(sys.argv[2]))
from quantviz import Pipeline, PipelineConfig
from quantviz.model_spec import ModelSpec
n = int(sys.argv[1])
m = Chain(n).eval()
spec = ModelSpec(name="chain", model=m, example_inputs=(torch.randn(1,4,8,8),), calibration_batches=[(torch.randn(1,4,8,8),) for _ in range(4)])
pipe = Pipeline(spec, PipelineConfig(flow="fx"))
pipe.run(until="prepare")
obs = pipe.results["prepare"].artifact
import copy
for trial in range(2):
    o = copy.deepcopy(obs) if trial == 0 else obs
    with torch.no_grad():
        for b in spec.calibration_batches:
            t=time.perf_counter(); o(*b); print(trial, "batch", f"{time.perf_counter()-t:.3f}")
