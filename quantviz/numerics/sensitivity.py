"""Sensitivity: for each layer, quantize everything but that layer (it stays float) and measure the end-to-end
float-vs-reference SQNR and accuracy again. A layer whose float copy gains the most dB is the one to keep float.

Example::

    rows = sensitivity(pipe, batches, labels, limit=8, progress=print)
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Callable

import torch

from quantviz.measure.metrics import accuracy, sqnr_db
from quantviz.model_spec import call
from quantviz.runtime import concat_outputs

if TYPE_CHECKING:
    from quantviz.pipeline import Pipeline

WEIGHTED = (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Linear)


@dataclass
class SensitivityRow:
    layer: str
    sqnr_db: float             # float vs reference with this layer left float
    gain_db: float             # against everything quantized
    accuracy: float | None = None
    accuracy_change: float | None = None
    error: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def layers_of(model: torch.nn.Module) -> list[str]:
    return [name for name, m in model.named_modules() if isinstance(m, WEIGHTED)]


def _outputs(model, batches) -> torch.Tensor:
    with torch.no_grad():
        return concat_outputs([call(model, b) for b in batches])


def sensitivity(pipe: "Pipeline", batches: list[tuple], labels: torch.Tensor | None, limit: int,
                progress: Callable[[float, str], None] = lambda f, t: None) -> list[SensitivityRow]:
    """At most ``limit`` layers (in model order), most sensitive first (each a fork of ``pipe`` that keeps one
    more layer float, run to convert)."""
    floats = _outputs(pipe.spec.model, batches)
    base_out = _outputs(pipe.reference_module(), batches)
    base_db = sqnr_db(floats, base_out)
    base_acc = accuracy(base_out, labels) if labels is not None else None
    rows = []
    layers = [x for x in layers_of(pipe.spec.model) if x not in pipe.config.skip_modules][:limit]
    for i, layer in enumerate(layers):
        progress(i / max(len(layers), 1), f"sensitivity: {layer} kept float ({i + 1}/{len(layers)})")
        config = pipe.config.with_changes(skip_modules=tuple(pipe.config.skip_modules) + (layer,),
                                          until=pipe.role("reference"))
        other = pipe.fork(config)
        other.on_event = lambda e: None  # the variant's stages are not the user's run: no progress lines
        other.run()
        if not other.ok:
            rows.append(SensitivityRow(layer, float("nan"), float("nan"), error=str(other.failed.error)))
            continue
        out = _outputs(other.reference_module(), batches)
        db = sqnr_db(floats, out)
        acc = accuracy(out, labels) if labels is not None else None
        rows.append(SensitivityRow(layer, db, db - base_db, acc, None if acc is None else acc - base_acc))
    progress(1.0, "sensitivity done")
    rows.sort(key=lambda r: -(r.gain_db if r.gain_db == r.gain_db else float("-inf")))
    return rows
