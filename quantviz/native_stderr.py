"""Capture what native code (the ExecuTorch runtime, XNNPACK) prints to file descriptor 2."""
from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from typing import Iterator


@contextlib.contextmanager
def capture_native_stderr(lines: list[str]) -> Iterator[None]:
    """Redirect fd 2 while the block runs; append what was written to ``lines``.

    Example::

        log: list[str] = []
        with capture_native_stderr(log):
            module.forward(inputs)
    """
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            lines.extend(tmp.read().decode("utf-8", "replace").splitlines())
