"""Numerics: metric functions and end-to-end comparisons between float, reference and runtime."""
from quantviz.measure.metrics import accuracy, sqnr_db

__all__ = ["accuracy", "sqnr_db"]
