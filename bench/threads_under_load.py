"""Benchmark: calibration batches of a 1,300-block observed model, with torch's default threads or one thread.

    .venv/bin/python bench/threads_under_load.py --blocks 1300              # torch's default thread count
    .venv/bin/python bench/threads_under_load.py --blocks 1300 --threads 1  # one thread

Backs the README's "Scale" paragraph on why calibrate is 30x slower on a loaded machine: the observed model runs
thousands of tiny ops, each an OpenMP parallel region whose barrier waits for a thread another process holds.
Prints each batch's seconds (two passes over four batches) and their median and range.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
warnings.filterwarnings("ignore")

import torch  # noqa: E402

from quantviz import Pipeline, PipelineConfig  # noqa: E402
from quantviz.model_spec import ModelSpec  # noqa: E402
from scale_model import Chain  # noqa: E402


def batch_seconds(blocks: int, passes: int = 2, batches: int = 4) -> list[float]:
    """Seconds of each forward call of the prepared (observed) fx model on fresh random batches."""
    spec = ModelSpec(name="chain", model=Chain(blocks).eval(), example_inputs=(torch.randn(1, 4, 8, 8),),
                     calibration_batches=[(torch.randn(1, 4, 8, 8),) for _ in range(batches)])
    observed = Pipeline(spec, PipelineConfig(flow="fx")).run(until="prepare").results["prepare"].artifact
    seconds = []
    with torch.no_grad():
        for _ in range(passes):
            for batch in spec.calibration_batches:
                t0 = time.perf_counter()
                observed(*batch)
                seconds.append(time.perf_counter() - t0)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=1300)
    parser.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    seconds = batch_seconds(args.blocks)
    print("batch seconds:", " ".join(f"{s:.3f}" for s in seconds))
    print(f"| {args.blocks} blocks, {torch.get_num_threads()} thread(s) | median {statistics.median(seconds):.2f} s "
          f"| range {min(seconds):.2f}–{max(seconds):.2f} s |")


if __name__ == "__main__":
    main()
