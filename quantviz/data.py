"""Which data a figure is measured on, and synthetic held-out batches when the factory gives none.

Every number quantviz reports names its data: the factory's evaluation batches, the calibration batches (when
the factory gives no evaluation data: figures measured on the data the observers saw flatter the model), or
synthetic held-out batches drawn like the example inputs (``--held-out N``). Whether the flow's observers saw the
calibration batches is the flow's to say (``Flow.calibrates(config)``): a caller that describes the data passes it::

    data = evaluation_data(spec, PipelineConfig(held_out=4))
    data.source        # "synthetic held-out"
    data.describe()    # "synthetic held-out: 4 batch(es) drawn like the example inputs (input_ids: token ids ...)"
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from quantviz.config import PipelineConfig
from quantviz.model_spec import Batch, Inputs, ModelSpec

DataSource = Literal["evaluation", "calibration", "synthetic held-out"]
HELD_OUT_SEED = 20260  # the synthetic batches are the same on every run


@dataclass
class EvaluationData:
    """The batches end-to-end figures are measured on, and what they are."""

    batches: list[Inputs]  # each with the example inputs' shapes and dtypes
    labels: list[torch.Tensor | None]  # per batch; None where there are none (synthetic data has none)
    source: DataSource
    # how each input of a synthetic batch was drawn, e.g. "input_ids: token ids in [0, 1000) (embed_tokens)"
    drawn: list[str] = field(default_factory=list)
    calibrated: bool = True  # the flow's observers saw the calibration batches (False: torchao, dynamic, ...)

    @property
    def labelled(self) -> bool:
        return bool(self.labels) and all(lbl is not None for lbl in self.labels)

    def describe(self) -> str:
        """One line naming the data, e.g. "calibration data (4 batch(es)): the factory gave no evaluation data,
        so these figures are measured on the data the observers saw"."""
        n = f"{len(self.batches)} batch(es)"
        if self.source == "evaluation":
            return f"evaluation data: {n} from the factory, not used for calibration"
        if self.source == "calibration" and not self.calibrated:
            return (f"the factory's calibration batches ({n}; it gave no evaluation data): this flow calibrates "
                    "nothing (activation scales are computed at run time or not used), so they are not flattered")
        if self.source == "calibration":
            return (f"calibration data ({n}): the factory gave no evaluation data, so these figures are measured on "
                    "the data the observers saw and flatter the model (--held-out N draws synthetic held-out "
                    "batches)")
        return f"synthetic held-out: {n} drawn like the example inputs ({'; '.join(self.drawn)})"

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "batches": len(self.batches), "labelled": self.labelled,
                "description": self.describe(), "drawn": list(self.drawn)}


def evaluation_data(spec: ModelSpec, config: PipelineConfig, calibrated: bool = True) -> EvaluationData:
    """The data end-to-end numerics use under ``config``: synthetic held-out batches with ``held_out``, else the
    factory's evaluation batches, else its calibration batches (said so). ``calibrated``: the flow's observers saw
    the calibration batches (``Flow.calibrates(config)``; it words ``describe()`` only: left True, figures on the
    calibration batches are said to flatter the model)."""
    if config.held_out:
        batches, drawn = synthetic_batches(spec, config.held_out)
        return EvaluationData(batches, [None] * len(batches), "synthetic held-out", drawn)
    if spec.eval_batches:
        return EvaluationData([spec.arranged(b) for b, _ in spec.eval_batches],
                              [lbl for _, lbl in spec.eval_batches], "evaluation")
    batches = [spec.arranged(b) for b in spec.calibration_batches or [spec.example]]
    return EvaluationData(batches, [None] * len(batches), "calibration", calibrated=calibrated)


def synthetic_batches(spec: ModelSpec, n: int, seed: int = HELD_OUT_SEED) -> tuple[list[Inputs], list[str]]:
    """``n`` batches of the example inputs' kind and ``how`` each input was drawn:

    - integer inputs whose values go beyond 0/1 are token ids: uniform over the vocabulary of the model's first
      ``nn.Embedding`` large enough for the example's largest id (else over the example's own range);
    - 0/1 integer or bool inputs are masks: each row is one of the example's rows, drawn with replacement;
    - floating inputs: normal with the example's mean and standard deviation;
    - anything else is passed as the example has it.
    """
    gen = torch.Generator().manual_seed(seed)
    drawn: list[str] = []
    if spec.example_kwargs:  # keyword inputs: every leaf drawn on its own, named by its path
        leaves, tree = torch.utils._pytree.tree_flatten((tuple(spec.example_inputs), dict(spec.example_kwargs)))
        kinds = [_kind(spec, i, t) for i, t in enumerate(leaves)]
        drawn = [f"{path}: {what}" for path, (what, _) in zip(spec.input_paths(), kinds)]
        batches = [Batch(*torch.utils._pytree.tree_unflatten([draw(t, gen) for (_, draw), t in zip(kinds, leaves)],
                                                             tree)) for _ in range(n)]
        return batches, drawn
    kinds = [_kind(spec, i, t) for i, t in enumerate(spec.example_inputs)]
    for i, (what, _) in enumerate(kinds):
        drawn.append(f"{spec.input_name(i)}: {what}")
    batches = [tuple(draw(t, gen) for (_, draw), t in zip(kinds, spec.example_inputs)) for _ in range(n)]
    return batches, drawn


def _kind(spec: ModelSpec, index: int, t: Any):
    """(how it is drawn, draw(example, generator) -> value) for one example input."""
    if not isinstance(t, torch.Tensor):
        return "passed as given", lambda x, g: x
    if t.dtype == torch.bool or (not t.is_floating_point() and t.numel() and int(t.min()) >= 0
                                 and int(t.max()) <= 1):
        return "mask rows drawn from the example's", _mask_rows
    if not t.is_floating_point():
        lo, hi = int(t.min()), int(t.max())
        vocab, owner = _vocabulary(spec.model, hi)
        if vocab:
            return (f"token ids in [0, {vocab}) ({owner})",
                    lambda x, g: torch.randint(0, vocab, x.shape, generator=g, dtype=x.dtype))
        return (f"integers in [{lo}, {hi}] (the example's range)",
                lambda x, g: torch.randint(lo, hi + 1, x.shape, generator=g, dtype=x.dtype))
    mean, std = float(t.float().mean()), float(t.float().std()) if t.numel() > 1 else 1.0
    return (f"normal, mean {mean:.3g}, std {std:.3g} (the example's)",
            lambda x, g: (torch.randn(x.shape, generator=g) * std + mean).to(x.dtype))


def _mask_rows(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    if x.dim() == 0:
        return x.clone()
    rows = torch.randint(0, x.shape[0], (x.shape[0],), generator=gen)
    return x[rows].clone()


def _vocabulary(model: torch.nn.Module, largest_id: int) -> tuple[int, str]:
    """(num_embeddings, module name) of the first embedding that can look up ``largest_id``, or (0, "")."""
    for name, m in model.named_modules():
        if isinstance(m, torch.nn.Embedding) and m.num_embeddings > largest_id:
            return m.num_embeddings, name or "embedding"
    return 0, ""
