"""quantviz against the bare calls on the same model, in the same process: does quantviz reach ``run`` whenever a
user's own script does?

    row = check_parity(lambda: load_model("sample:zoo_vit"), PipelineConfig(flow="pt2e", backend="xnnpack"))
    row.bare_ok, row.quantviz_ok, row.regression   # True, True, False
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any, Callable

from quantviz.bare_flow import BareRun, run_bare
from quantviz.data import evaluation_data
from quantviz.config import PipelineConfig, config_flags
from quantviz.lowering import delegates as hands_ops_to_a_partitioner
from quantviz.lowering import graph_ops
from quantviz.model_spec import ModelSpec
from quantviz.pipeline import Pipeline


@dataclass
class ParityRow:
    """One model under one configuration, both ways."""

    model: str
    config: str                    # the config as CLI flags (as given)
    nodes_after_convert: int       # quantviz's convert graph (0 when convert did not run)
    bare_ok: bool                  # the bare calls reached a running .pte
    bare_failure: str              # "step: Type: message" when not; "no bare equivalent: why" when there is none
    bare_seconds: float
    bare_delegates: int
    quantviz_ok: bool              # every quantviz stage succeeded
    quantviz_failure: str          # "stage: message" when not
    quantviz_failure_site: str     # the failing node, its module and source line, when the failure has one
    quantviz_seconds: float
    quantviz_delegates: int
    same_lowering: bool | None     # same delegate count and non-delegated op set (transform_and_lower only)
    reference_vs_runtime_sqnr_db: float | None  # quantviz's run stage, drift reported
    runtime_error_over_quantization_error_db: float | None
    float_vs_runtime_sqnr_db: float | None = None  # quantviz's run stage, on ``data``
    data: str = ""                 # what the figures were measured on ("evaluation", "calibration", ...)
    same_pte: bool | None = None   # quantviz's .pte is the bare calls' byte for byte (when both emitted one)
    backend_defaults: str = ""     # the backend's declared defaults both sides applied, as CLI flags ("" if none)
    bare_absent: bool = False      # the configuration has no bare equivalent (bare_failure says why)

    @property
    def regression(self) -> bool:
        """The bare calls succeed and quantviz does not: quantviz's bug, never the model's."""
        return self.bare_ok and not self.quantviz_ok

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "regression": self.regression}


def check_parity(make_spec: Callable[[], ModelSpec], config: PipelineConfig) -> ParityRow:
    """Run ``config`` on a fresh model through the bare calls, then through quantviz; both sides apply the backend's
    declared defaults (``with_backend_defaults``: ``PipelineConfig(backend="arm-tosa")`` runs pt2e on both)."""

    spec = make_spec()
    t0 = time.perf_counter()
    bare = run_bare(spec, config)
    bare_seconds = time.perf_counter() - t0
    spec = make_spec()
    t0 = time.perf_counter()
    pipe = Pipeline(spec, config).run()
    seconds = time.perf_counter() - t0
    delegate = pipe.results.get("delegate")
    delegates, leftover = graph_ops(delegate.artifact) if delegate is not None and delegate.ok else (0, ())
    same = None
    lowered = "edge" in pipe.stage_names and not bare.absent and (
        bare.failed_step is None or pipe.flow.index(bare.failed_step) > pipe.flow.index("edge"))
    applied = pipe.config  # the backend's declared defaults applied, as on the bare side
    if hands_ops_to_a_partitioner(applied) and applied.lowering == "transform_and_lower" and delegate is not None \
            and delegate.ok and lowered:
        same = delegates == bare.delegate_calls and leftover == bare.non_delegated_ops
    convert = pipe.results.get("convert")
    failed = pipe.failed
    numerics = pipe.numerics()
    return ParityRow(
        model=spec.name, config=config_flags(config),
        nodes_after_convert=len(convert.graph.nodes) if convert is not None and convert.ok else 0,
        bare_ok=bare.ok, bare_failure=bare_failure(bare),
        bare_seconds=bare_seconds, bare_delegates=bare.delegate_calls,
        quantviz_ok=pipe.ok, quantviz_failure=f"{failed.name}: {failed.error.message}" if failed else "",
        quantviz_failure_site=failed.error.site.describe() if failed and failed.error.site else "",
        quantviz_seconds=seconds, quantviz_delegates=delegates, same_lowering=same,
        reference_vs_runtime_sqnr_db=numerics.reference_vs_runtime_sqnr_db,
        runtime_error_over_quantization_error_db=numerics.runtime_error_over_quantization_error_db,
        float_vs_runtime_sqnr_db=numerics.float_vs_runtime_sqnr_db,
        data=evaluation_data(spec, applied).source,
        same_pte=(bare.pte == pipe.pte_bytes()) if bare.pte is not None and pipe.pte_bytes() is not None else None,
        backend_defaults=config_flags(applied, config) if pipe.backend_defaults else "",
        bare_absent=bool(bare.absent))


def bare_failure(bare: BareRun) -> str:
    """What the bare calls did not do: ``"step: Type: message"`` when they failed, ``"no bare equivalent: why"``
    when there are none, else an empty string."""
    if bare.absent:
        return f"no bare equivalent: {bare.absent}"
    return "" if bare.ok else f"{bare.failed_step}: {bare.error}"


# The configurations every zoo model is held to (tests/test_zoo_e2e.py, bench/zoo.py).
STANDARD_CONFIGS: dict[str, PipelineConfig] = {
    "pt2e + xnnpack": PipelineConfig(flow="pt2e", backend="xnnpack"),
    "pt2e + xnnpack (to_backend)": PipelineConfig(flow="pt2e", backend="xnnpack", lowering="to_backend"),
    "pt2e + quantviz fusion": PipelineConfig(flow="pt2e", fusion="quantviz"),
    "fx --skip-untraceable": PipelineConfig(flow="fx", skip_untraceable=True),
}

# The configurations the sequence models are held to: what language and speech models are quantized with today.
SEQUENCE_CONFIGS: dict[str, PipelineConfig] = {
    "pt2e dynamic": PipelineConfig(flow="pt2e", backend="xnnpack", mode="dynamic", per_channel=True),
    "pt2e static": PipelineConfig(flow="pt2e", backend="xnnpack", per_channel=True),
    "torchao 8da4w": PipelineConfig(flow="torchao", scheme="8da4w", group_size=32),
    "recipe": PipelineConfig(recipe="xnnpack_torchao_int8da_int4w_per_channel"),
    # the remedy quantviz offers where PT2E fails on decoders (the bare calls have no such pass: they still fail)
    "pt2e dynamic --keep-integer-scalars": PipelineConfig(flow="pt2e", backend="xnnpack", mode="dynamic",
                                                          per_channel=True, keep_integer_scalars=True),
}
