"""Any combination of options either succeeds or ends in a StageError with a cause and a hint."""
import signal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quantviz import Pipeline, PipelineConfig, StageError, load_model
from quantviz.config import DUPLICATE_DEQUANT, FLOWS, FUSIONS, MODES, PARTITIONERS

pytestmark = pytest.mark.e2e
SECONDS_PER_EXAMPLE = 300  # a hang fails the test instead of stalling CI


class Hang(Exception):
    pass


def _alarm(signum, frame):
    raise Hang(f"a pipeline ran longer than {SECONDS_PER_EXAMPLE} s")


@settings(max_examples=10, deadline=None, derandomize=True, database=None)
@given(sample=st.sampled_from(["conv_add", "mlp_dynamic", "embedding"]), flow=st.sampled_from(FLOWS),
       mode=st.sampled_from(MODES), per_channel=st.booleans(), partitioner=st.sampled_from(PARTITIONERS),
       fusion=st.sampled_from(FUSIONS), duplicate_dequant=st.sampled_from(DUPLICATE_DEQUANT))
def test_every_combination_succeeds_or_fails_with_a_stage_error(sample, flow, mode, per_channel, partitioner, fusion,
                                                                 duplicate_dequant):
    config = PipelineConfig(flow=flow, mode=mode, per_channel=per_channel, partitioner=partitioner, fusion=fusion,
                            duplicate_dequant=duplicate_dequant)
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(SECONDS_PER_EXAMPLE)
    try:
        pipe = Pipeline(load_model(f"sample:{sample}"), config).run()
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    if pipe.ok:
        assert pipe.pte_bytes() and "float_vs_runtime_sqnr_db" in pipe.numerics()
        return
    err = pipe.failed.error
    assert isinstance(err, StageError) and err.stage == pipe.failed.name
    assert err.message.strip() and err.hint.strip()
