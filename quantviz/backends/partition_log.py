"""Capture a partitioner's own reasons for the nodes it rejects, for the duration of one call.

ExecuTorch partitioners report rejections through ``WhyNoPartition``, which logs itself at DEBUG on
the partitioner's logger. :func:`capture_why_no_partition` attaches a handler to that one logger while
the block runs (enabling DEBUG on it only, not propagating), and restores it afterwards::

    reasons: dict[str, list[str]] = {}
    with capture_why_no_partition(reasons):
        edge = edge.to_backend(XnnpackPartitioner())
    reasons["aten_gelu_default"]   # ["unsupported ..."]
"""
from __future__ import annotations

import contextlib
import logging
from typing import Iterator

XNNPACK_LOGGER = "executorch.backends.xnnpack.partition.config.xnnpack_config"


class _WhyHandler(logging.Handler):
    def __init__(self, sink: dict[str, list[str]], prefix: str) -> None:
        super().__init__(logging.DEBUG)
        self.sink, self.prefix = sink, prefix

    def emit(self, record: logging.LogRecord) -> None:
        why = record.msg  # a WhyNoPartition object, read now: it is reused for the next report
        node, reason = getattr(why, "node", None), getattr(why, "reason", None)
        if node is not None and reason:
            reasons = self.sink.setdefault(str(getattr(node, "name", node)), [])
            text = f"{self.prefix}{reason}"
            if text not in reasons:
                reasons.append(text)


@contextlib.contextmanager
def capture_why_no_partition(sink: dict[str, list[str]], logger_name: str = XNNPACK_LOGGER,
                             prefix: str = "XNNPACK partitioner: ") -> Iterator[None]:
    logger = logging.getLogger(logger_name)
    handler = _WhyHandler(sink, prefix)
    level, propagate = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate


def xnnpack_supported_targets() -> set[str]:
    """Op names XNNPACK's partitioner has a config for (``convolution.default`` style)."""
    from executorch.backends.xnnpack.partition.config import ALL_PARTITIONER_CONFIGS

    return {cls.target_name for cls in ALL_PARTITIONER_CONFIGS if getattr(cls, "target_name", None)}
