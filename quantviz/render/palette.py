"""One palette for every face: node style by kind, pattern and delegate clusters, overlay colours."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Style:
    shape: str
    fill: str
    font: str = "#1d1d1f"
    style: str = "filled"
    label: str = ""


KIND_STYLES: dict[str, Style] = {
    "input": Style("ellipse", "#dbeafe", label="input"),
    "parameter": Style("note", "#f1f5f9", label="parameter / constant"),
    "output": Style("ellipse", "#dbeafe", label="output"),
    "quantize": Style("trapezium", "#f59e0b", label="quantize"),
    "dequantize": Style("invtrapezium", "#0d9488", "#ffffff", label="dequantize"),
    "choose_qparams": Style("hexagon", "#facc15", label="choose_qparams"),
    "observer": Style("octagon", "#c084fc", label="observer"),
    "delegate": Style("box3d", "#4c1d95", "#ffffff", label="delegate call"),
    "quantized_op": Style("box", "#dc2626", "#ffffff", "filled,bold", label="quantized operator (fused)"),
    "float_op": Style("box", "#ffffff", style="filled,rounded", label="float operator"),
    "other": Style("box", "#f8fafc", "#64748b", "filled,dashed", label="other"),
}
GROUP_STYLE = Style("folder", "#e2e8f0", label="collapsed module")
PATTERN_CLUSTER = {"style": "rounded,dashed", "color": "#0f766e", "fontcolor": "#0f766e", "penwidth": "1.4"}
DELEGATE_CLUSTER = {"style": "rounded,filled", "color": "#4c1d95", "fillcolor": "#ede9fe", "fontcolor": "#4c1d95"}
MODULE_CLUSTER = {"style": "rounded,filled", "color": "#64748b", "fillcolor": "#f8fafc", "fontcolor": "#334155",
                  "fontsize": "12", "class": "qv-open"}  # an expanded module, its children inside
HIGHLIGHT = {"penwidth": "3", "color": "#2563eb"}
ADDED, REMOVED = "#16a34a", "#dc2626"  # diff outlines: added (later pane), removed (earlier pane, dashed)
REMOVED_FILL, REMOVED_FONT = "#f1f5f9", "#94a3b8"  # removed nodes are greyed


def overlay_colour(value: float, low: float, high: float) -> str:
    """Red (low) through yellow to green (high), for values such as SQNR in dB."""
    if high <= low:
        t = 1.0
    else:
        t = min(1.0, max(0.0, (value - low) / (high - low)))
    r = int(220 + (22 - 220) * t) if t > 0.5 else 220
    g = int(38 + (163 - 38) * min(1.0, t * 2))
    b = 38
    return f"#{r:02x}{g:02x}{b:02x}"
