"""Quantizer wrappers of quantviz's own (pt2e flow)."""
