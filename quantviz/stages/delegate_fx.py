"""delegate (fx): the shared delegate stage, with the remedy the fx flow's program needs when a partitioner refuses
it. Partitioners (XNNPACK's, OpenVINO's) are written for PT2E's q/dq patterns; on the fx flow's reference program
they can fail outright (``sample:mobilenet_v2 --flow fx --backend xnnpack``: "Invalid partition, found dependency
cycles"; the backend alone runs pt2e, its declared default flow), and the same model lowers under ``--flow pt2e``
(docs/backends.md), so that is offered first, and ``--partitioner none`` (the graph without delegation) after it."""
from __future__ import annotations

import dataclasses

from quantviz.remedy import Remedy
from quantviz.stages import delegate

STAGE = dataclasses.replace(
    delegate.STAGE, variant="delegate_fx",
    remedy=Remedy("try --flow pt2e (the partitioner is written for PT2E's quantize/dequantize patterns), or "
                  "--partitioner none to see the graph without delegation",
                  ({"flow": "pt2e"}, {"partitioner": "none"})))
