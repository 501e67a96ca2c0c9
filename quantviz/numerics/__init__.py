"""Numerics: metric functions and end-to-end comparisons between float, reference and runtime."""
from quantviz.numerics.metrics import accuracy, sqnr_db

__all__ = ["accuracy", "sqnr_db"]
