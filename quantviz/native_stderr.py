"""Capture what the ExecuTorch runtime and XNNPACK print while a block runs.

Their log lines reach either file descriptor 2 (native code) or Python's ``sys.stderr`` (the pybinding
routes some through it), so both are captured.
"""
from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile
from typing import Iterator


@contextlib.contextmanager
def capture_native_stderr(lines: list[str]) -> Iterator[None]:
    """Redirect fd 2 and ``sys.stderr`` while the block runs; append what was written to ``lines``.

    Example::

        log: list[str] = []
        with capture_native_stderr(log):
            module.forward(inputs)
    """
    sys.stderr.flush()
    saved_fd, saved_py = os.dup(2), sys.stderr
    py_buffer = io.StringIO()
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        os.dup2(tmp.fileno(), 2)
        sys.stderr = py_buffer
        try:
            yield
        finally:
            sys.stderr = saved_py
            os.dup2(saved_fd, 2)
            os.close(saved_fd)
            tmp.seek(0)
            lines.extend(tmp.read().decode("utf-8", "replace").splitlines())
            lines.extend(py_buffer.getvalue().splitlines())
