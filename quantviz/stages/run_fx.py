"""run (fx): the fx flow makes uint8 asymmetric activations with int8 weights, which the XNNPACK delegate does not
compute correctly: a mismatch or a rejected graph under a delegate suggests ``--flow pt2e``."""
from __future__ import annotations

import dataclasses
from functools import partial

from quantviz.stages import run

STAGE = dataclasses.replace(run.STAGE, run=partial(run.run, uint8_activations=True), variant="run_fx")
