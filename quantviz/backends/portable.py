"""portable: ExecuTorch's portable and quantized CPU kernels, no delegate (the seed's flow).

pt2e quantizes with XNNPACKQuantizer's int8 scheme, which ExecuTorch's ``quantized_decomposed`` kernels and
QuantFusionPass expect; nothing is delegated unless ``--partitioner xnnpack|demo`` says so. Numbers come from the
runtime on this machine.
"""
from __future__ import annotations

from quantviz.backends.base import Backend
from quantviz.backends.xnnpack_quantizer import (xnnpack_quantizer, xnnpack_quantizer_calls,
                                                  xnnpack_quantizer_recovery)

BACKEND = Backend(
    "portable", "ExecuTorch's portable and quantized kernels (XNNPACKQuantizer's int8 scheme), no delegate",
    quantizer=xnnpack_quantizer, quantizer_calls=xnnpack_quantizer_calls, quantizer_key="xnnpack-int8",
    partitioner=None, numbers="runtime", recovery=xnnpack_quantizer_recovery, takes_xnnpack=True, pt2e_qat=True,
    rank=0)
