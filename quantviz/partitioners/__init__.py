"""Partitioners written by quantviz (XNNPACK's own lives in executorch)."""
