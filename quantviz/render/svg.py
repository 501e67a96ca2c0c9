"""SVG and PNG from DOT text through graphviz's `dot` binary, when it is installed."""
from __future__ import annotations

import shutil
import subprocess


def dot_available() -> bool:
    return shutil.which("dot") is not None


def dot_to_svg(dot_text: str, timeout: float = 120.0) -> str | None:
    """SVG text, or None without the `dot` binary. Raises RuntimeError when `dot` rejects the input."""
    return _run(dot_text, "svg", timeout).decode("utf-8") if dot_available() else None


def dot_to_png(dot_text: str, timeout: float = 120.0) -> bytes | None:
    return _run(dot_text, "png", timeout) if dot_available() else None


def _run(dot_text: str, fmt: str, timeout: float) -> bytes:
    proc = subprocess.run(["dot", f"-T{fmt}"], input=dot_text.encode("utf-8"), capture_output=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"dot failed: {proc.stderr.decode('utf-8', 'replace').strip()[:500]}")
    return proc.stdout
