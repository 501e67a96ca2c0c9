"""calibrate: run calibration batches through the observed model so observers record ranges."""
from __future__ import annotations

import torch

from quantviz.errors import StageError
from quantviz.stages.base import StageContext, StageOutput

DESCRIPTION = "run the calibration batches through the observed model (observers record ranges)"
EXPLANATION = (
    'Runs sample data through the observed model. Each observer records the range of the values it sees; '
    'those ranges become the scales and zero points of the int8 tensors.'
)


def check_finite(batch: tuple, index: int, stage: str) -> None:
    for j, t in enumerate(batch):
        if isinstance(t, torch.Tensor) and t.is_floating_point() and not torch.isfinite(t).all():
            bad = int((~torch.isfinite(t)).sum())
            raise StageError(stage, f"calibration batch {index} input {j} has {bad} NaN/Inf value(s); observers "
                                    "would record a NaN or infinite range",
                             "clean the calibration data (torch.nan_to_num) or drop that batch")


def run(ctx: StageContext) -> StageOutput:
    model = ctx.artifact("prepare")  # observers are updated in place
    batches = ctx.spec.calibration_data(ctx.config.calibration_batches)
    with torch.no_grad():
        for i, batch in enumerate(batches):
            check_finite(batch, i, "calibrate")
            model(*batch)
            ctx.progress((i + 1) / len(batches), f"calibration batch {i + 1}/{len(batches)}")
    return StageOutput(model, calls=["with torch.no_grad():", "    for batch in calibration_batches:",
                                     "        observed(*batch)"],
                       notes=[f"ran {len(batches)} calibration batch(es)"], metrics={"batches": len(batches)})
