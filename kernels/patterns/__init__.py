"""One file per operator, each a pattern and its replacement side by side. ``ALL`` is the order they are tried:
patterns that swallow an activation come before the ones that do not, so conv -> relu -> quantize becomes one
conv2d, not a conv2d and a hardtanh."""
from quantviz_kernels.patterns import add, conv2d, hardtanh, linear, mul, pool, view
from quantviz_kernels.patterns.base import FusionPattern

ALL: list[FusionPattern] = [*conv2d.PATTERNS, *linear.PATTERNS, *add.PATTERNS, *mul.PATTERNS, *pool.PATTERNS,
                            *hardtanh.PATTERNS, *view.PATTERNS]

__all__ = ["ALL", "FusionPattern"]
