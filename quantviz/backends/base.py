"""What a backend is: its quantizer, its partitioner and the exact lowering call, how its refusals are read, how
numbers are obtained on this machine, and what installs it.

A backend is one file, ``quantviz/backends/<name>.py``, with one record, ``BACKEND = Backend(...)``::

    BACKEND = Backend("xnnpack", "XNNPACK: int8 CPU kernels", quantizer=xnnpack_quantizer,
                      quantizer_calls=xnnpack_quantizer_calls, partitioner=xnnpack_partitioner, numbers="runtime")

``recovery`` declares the backend's own higher-precision options for ``quantviz recover``; Arm's int16
activations are one line: ``recovery=lambda config, scope: [int16_activations()] if config.activation_bits == 8
else []`` (offered under the flows whose prepare is the backend's quantizer: ``Flow.backend_recovery``).

``--backend NAME`` picks it; ``--partitioner auto`` (the default) uses its partitioner, ``none`` none.
"""
from __future__ import annotations

import contextlib
import importlib.util
from dataclasses import dataclass, field
from typing import Any, Callable, ContextManager, Literal

from quantviz.config import ConfigChanges, PipelineConfig
from quantviz.candidates import Recovery

# How a backend's numbers are obtained here:
# runtime: the .pte runs in ExecuTorch's runtime (portable_lib) on this machine
# reference-model: the delegates run in the backend's reference model (Arm's TOSA reference model)
# report: the backend's compiler reports what it placed where and its estimates (Vela), no outputs
# none: no runtime for this backend on this machine; the .pte is written (not a failure)
Numbers = Literal["runtime", "reference-model", "report", "none"]


@dataclass(frozen=True)
class PartitionerChoice:
    """A partitioner and how a user's script writes it."""

    partitioner: Any  # the executorch Partitioner object
    import_line: str  # e.g. "from executorch.backends.xnnpack.partition.xnnpack_partitioner import ..."
    constructor: str  # e.g. "XnnpackPartitioner(per_op_mode=True)"


@dataclass(frozen=True)
class Requirement:
    """A Python package a backend needs, and the command that installs it."""

    module: str  # the import name checked, e.g. "tosa_reference_model"
    pip: str  # e.g. "pip install 'quantviz[arm]'"

    def missing(self) -> bool:
        return importlib.util.find_spec(self.module) is None


@dataclass(frozen=True)
class Backend:
    """One target of the flow, declared in the backend's own file."""

    name: str  # the --backend value, e.g. "arm-tosa"
    description: str  # one line
    # pt2e: the quantizer for a config (per channel, dynamic, int16 activations where the backend has them)
    quantizer: Callable[[PipelineConfig], Any]
    # the same as copyable Python: import lines and the statement that binds ``quantizer``
    quantizer_calls: Callable[[PipelineConfig], list[str]]
    # backends that quantize alike share this (portable and xnnpack: "xnnpack-int8"), so switching between them
    # does not re-run prepare and calibrate
    quantizer_key: str = ""
    # the backend's own partitioner (None: nothing is delegated, e.g. the portable kernels)
    partitioner: Callable[[PipelineConfig], PartitionerChoice] | None = None
    numbers: Numbers = "runtime"
    numbers_note: str = ""  # when numbers is not "runtime": what the run stage shows instead, and why
    requires: tuple[Requirement, ...] = ()  # packages beyond quantviz's own dependencies
    # EdgeCompileConfig keyword arguments the backend's lowering needs, as values and as source text
    compile_options: dict[str, Any] = field(default_factory=dict)
    # convert_pt2e keyword arguments its delegate needs (OpenVINO: fold_quantize=False); applied only when its
    # partitioner lowers the program (quantviz/stages/convert_pt2e.py: convert_options)
    convert_options: dict[str, Any] = field(default_factory=dict)
    # transform passes to_edge_transform_and_lower runs first (Vulkan: I64toI32), with their source text
    transform_passes: Callable[[Any], list[Any]] | None = None
    transform_passes_call: str = ""
    # ExecuTorch export recipes of this backend: name -> RecipeType (e.g. "xnnpack_fp32" -> XNNPackRecipeType.FP32),
    # built on first use (it imports the backend's recipe provider, which registers it)
    recipes: Callable[[], dict[str, Any]] | None = None
    # numbers == "reference-model": a TorchFunctionMode factory that runs each delegate call on the backend's
    # reference model (quantviz.backends.delegate_runs), and what to call it ("TOSA reference model")
    reference_dispatch: Callable[[], Any] | None = None
    reference_name: str = ""
    # the backend compiler's own report of a lowered program (Vela: ops on the NPU, cycles, SRAM), or None
    report: Callable[[Any], dict[str, Any]] | None = None
    # a context manager that fills {node name: [reasons]} with what the partitioner refused while it runs
    refusals: Callable[[dict[str, list[str]]], ContextManager[Any]] | None = None
    # runtime backend ids its delegates need (portable_lib._get_registered_backend_names tells what is here)
    runtime_ids: tuple[str, ...] = ()
    # the config changes of its own ``quantviz recover`` may try (its quantizer's options: per-channel weights,
    # observers, a higher-precision mode such as Arm's int16 activations); None: it offers none
    recovery: Recovery | None = None
    # -- capabilities, checked by one validation (``quantviz.backends.check``) --
    # config values it needs where the config keeps PipelineConfig's default (Arm: check_guards=False, Vulkan:
    # per-channel weights): the pipeline applies them and says so (``quantviz.flows.with_backend_defaults``)
    defaults: ConfigChanges = field(default_factory=dict)
    activation_bits: tuple[int, ...] = (8,)  # the activation widths its quantizer has (Arm: 16 too, a16w8)
    # its programs may hold XNNPACK delegates: the torchao flow's configurations and the demo partitioner lower
    # to XNNPACK, so they run only on the backends that take them (portable, xnnpack)
    takes_xnnpack: bool = False
    # quantviz's PT2E QAT (XNNPACKQuantizer's QAT config, ``--flow qat_pt2e``) quantizes for it: its quantizer is
    # XNNPACKQuantizer and its programs are checked with that QAT (portable, xnnpack)
    pt2e_qat: bool = False
    # the --partitioner value that stands for this backend (XNNPACK: "xnnpack", the legacy spelling of --backend
    # xnnpack): ``quantviz.backends.normalize`` rewrites it to --backend NAME --partitioner auto; None: none
    partitioner_choice: str | None = None
    splits_per_op: bool = False  # its partitioner splits per op itself (XNNPACK's per_op_mode): no PerOpPartitioner
    int4_group_step: int = 8  # groupwise int4 weights: group sizes a multiple of this (XNNPACK: 32)
    # the op names its partitioner takes (``format_target_name`` keys), for the ledger's support check; None:
    # quantviz cannot list them
    supported_ops: Callable[[], set[str]] | None = None
    on_backends_page: bool = True  # ticked by default on the Backends page (Core ML's quantizer takes minutes)
    rank: int = 100  # where the CLI, the app and the tables list it (lower first; then by name)

    @property
    def title(self) -> str:
        """How messages name it: its description up to the first colon or parenthesis, e.g. "XNNPACK"."""
        return self.description.split(":")[0].split(" (")[0]

    def capture_refusals(self, into: dict[str, list[str]]) -> ContextManager[Any]:
        """The backend's refusal capture, or one that captures nothing."""
        return self.refusals(into) if self.refusals is not None else contextlib.nullcontext()

    def missing(self) -> list[Requirement]:
        """The requirements not installed here."""
        return [r for r in self.requires if r.missing()]
