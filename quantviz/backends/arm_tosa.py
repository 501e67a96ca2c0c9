"""arm-tosa: Arm's TOSA backend (``TOSA-1.0+INT``; ``+int16`` for a16w8). ``TOSAQuantizer`` with Arm's symmetric
configs, ``TOSAPartitioner``; no runtime for ``TOSABackend`` on this machine, so numbers come from the TOSA
reference model (``tosa-tools``): the edge program runs in PyTorch with every delegate call on the reference model
(end-to-end figures), and each delegate is checked against its own edge subgraph (per-delegate figures)::

    BACKEND.quantizer(PipelineConfig(flow="pt2e", backend="arm-tosa", per_channel=True))   # a TOSAQuantizer

Arm's annotation passes cannot run the ``_guards_fn`` call_module that torch 2.13's ``ExportedProgram.module()``
adds; ``--no-check-guards`` (``check_guards=False``) exports without it (quantviz.known_issues says so when a pass
fails on it).
"""
from __future__ import annotations

import contextlib
from typing import Any, Iterator

from quantviz.backends.base import Backend, PartitionerChoice, Requirement
from quantviz.config import PipelineConfig
from quantviz.candidates import Candidate, Scope, int16_activations, per_channel

ARM_EXTRA = "pip install 'quantviz[arm]'  # tosa-tools, ethos-u-vela, ml_dtypes, semver as executorch pins them"


def tosa_spec(config: PipelineConfig) -> str:
    """The TOSA specification: int8, or int8 + int16 activations (a16w8)."""
    return "TOSA-1.0+INT+int16" if config.activation_bits == 16 else "TOSA-1.0+INT"


def arm_qconfig(config: PipelineConfig) -> Any:
    """Arm's symmetric quantization config: int8, or a16w8 (int16 activations, int8 weights)."""
    from executorch.backends.arm.quantizer import (
        get_symmetric_a16w8_quantization_config,
        get_symmetric_quantization_config,
    )

    if config.activation_bits == 16:
        return get_symmetric_a16w8_quantization_config(is_per_channel=config.per_channel)
    return get_symmetric_quantization_config(is_per_channel=config.per_channel, is_dynamic=config.mode == "dynamic")


def arm_qconfig_call(config: PipelineConfig) -> str:
    if config.activation_bits == 16:
        return f"get_symmetric_a16w8_quantization_config(is_per_channel={config.per_channel})"
    return (f"get_symmetric_quantization_config(is_per_channel={config.per_channel}, "
            f"is_dynamic={config.mode == 'dynamic'})")


def compile_spec(config: PipelineConfig) -> Any:
    from executorch.backends.arm.tosa.compile_spec import TosaCompileSpec

    return TosaCompileSpec(tosa_spec(config))


def arm_recovery(config: PipelineConfig, scope: Scope) -> list[Candidate]:
    """Arm's quantizer options ``quantviz recover`` may try (pt2e): per-channel weights and int16 activations
    (a16w8, ``TOSA-1.0+INT+int16``)::

        [c.id for c in arm_recovery(PipelineConfig(flow="pt2e", backend="arm-tosa"), Scope())]
        # ['per_channel', 'int16_activations:16']
    """
    return [*([per_channel()] if not config.per_channel else []),
            *([int16_activations()] if config.activation_bits == 8 else [])]


def tosa_quantizer(config: PipelineConfig) -> Any:
    from executorch.backends.arm.quantizer import TOSAQuantizer

    return TOSAQuantizer(compile_spec(config)).set_global(arm_qconfig(config))


def tosa_quantizer_calls(config: PipelineConfig) -> list[str]:
    return ["from executorch.backends.arm.quantizer import TOSAQuantizer, get_symmetric_quantization_config, "
            "get_symmetric_a16w8_quantization_config",
            "from executorch.backends.arm.tosa.compile_spec import TosaCompileSpec",
            f"compile_spec = TosaCompileSpec({tosa_spec(config)!r})",
            f"quantizer = TOSAQuantizer(compile_spec).set_global({arm_qconfig_call(config)})"]


def tosa_partitioner(config: PipelineConfig) -> PartitionerChoice:
    from executorch.backends.arm.tosa.partitioner import TOSAPartitioner

    return PartitionerChoice(TOSAPartitioner(compile_spec(config)),
                             "from executorch.backends.arm.tosa.partitioner import TOSAPartitioner",
                             f"TOSAPartitioner(TosaCompileSpec({tosa_spec(config)!r}))")


@contextlib.contextmanager
def arm_refusals(into: dict[str, list[str]]) -> Iterator[None]:
    """Every ``WhyNoPartitionReporter`` Arm's partitioner makes while the block runs is kept, and its rejected
    nodes (placeholders and outputs left out, as Arm's own table does) land in ``into`` as node -> reasons."""
    import executorch.backends.arm.tosa.partitioner as arm_partitioner
    from executorch.exir.backend.utils import WhyNoPartitionReporter

    reporters: list[Any] = []

    class Keeping(WhyNoPartitionReporter):
        def __init__(self) -> None:
            super().__init__()
            reporters.append(self)

    old = arm_partitioner.WhyNoPartitionReporter
    arm_partitioner.WhyNoPartitionReporter = Keeping
    try:
        yield
    finally:
        arm_partitioner.WhyNoPartitionReporter = old
        for r in reporters:
            for node, reason in getattr(r, "_rejected_nodes", {}).items():
                if node.op not in ("placeholder", "output"):
                    into.setdefault(node.name, []).append(f"Arm partitioner: {reason}")


def tosa_reference_dispatch() -> Any:
    """Arm's ``TosaReferenceModelDispatch``: each TOSABackend delegate call runs its TOSA flatbuffer on the TOSA
    reference model (q/dq ops outside run in PyTorch)."""
    from executorch.backends.arm.test.runner_utils import TosaReferenceModelDispatch

    return TosaReferenceModelDispatch()


def arm_recipes(prefix: str):
    """The Arm export recipes whose names start with ``prefix`` (``arm_tosa_``, ``arm_ethos_``)."""
    def recipes() -> dict[str, Any]:
        from executorch.backends.arm.recipes import ArmRecipeType

        return {t.value: t for t in ArmRecipeType if t.value.startswith(prefix)}

    return recipes


REQUIRES = (Requirement("tosa_serializer", ARM_EXTRA), Requirement("tosa_reference_model", ARM_EXTRA))

BACKEND = Backend(
    "arm-tosa", "Arm TOSA (TOSA-1.0+INT, +int16 for a16w8): TOSAQuantizer and TOSAPartitioner; numbers from the "
                "TOSA reference model (no TOSABackend runtime here)",
    quantizer=tosa_quantizer, quantizer_calls=tosa_quantizer_calls, quantizer_key="arm-tosa",
    partitioner=tosa_partitioner, numbers="reference-model",
    numbers_note="the TOSA reference model runs every delegate (the ExecuTorch runtime here has no TOSABackend); "
                 "the q/dq ops outside delegates run in PyTorch",
    requires=REQUIRES, reference_dispatch=tosa_reference_dispatch, reference_name="TOSA reference model",
    refusals=arm_refusals, runtime_ids=("TOSABackend",), recipes=arm_recipes("arm_tosa_"),
    recovery=arm_recovery,
    # its own quantizer (pt2e: the fx flow's uint8 activations are not TOSA's), and no export guards (Arm's
    # quantizer passes cannot run the _guards_fn call_module torch 2.13 adds to ep.module())
    defaults={"flow": "pt2e", "check_guards": False}, activation_bits=(8, 16), rank=2)
