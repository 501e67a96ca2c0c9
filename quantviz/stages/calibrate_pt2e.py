"""calibrate (pt2e): the observed module ``prepare_pt2e`` made, whose quantizer's ``transform_for_annotation`` turns
Python scalars into float tensors (a dtype drift gets ``--keep-integer-scalars``); a failing batch suggests fx."""
from quantviz.stages.calibrate import Prepared, calibration_stage

STAGE = calibration_stage(Prepared(other_flow="fx", scalars_to_attrs=True), "calibrate_pt2e")
