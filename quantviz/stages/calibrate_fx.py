"""calibrate (fx): the observed GraphModule ``prepare_fx`` made; a failing batch suggests the pt2e flow."""
from quantviz.stages.calibrate import Prepared, calibration_stage

STAGE = calibration_stage(Prepared(other_flow="pt2e"), "calibrate_fx")
