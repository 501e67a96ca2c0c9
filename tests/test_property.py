"""Any combination of options either succeeds or ends in a StageError with a cause and a hint, and no exception
raised by quantviz's own code hides behind one.

A stage's exception becomes a StageError with a generic hint (known_issues.explain), so a crash in quantviz would
look like a library limitation. The test records every exception that reaches ``explain``: one whose raise site (the
innermost traceback frame) is in quantviz's own files (quantviz/ or kernels/) fails the test with its traceback.
StageErrors quantviz raises on purpose (a known cause, its own hint) are not counted.

Each example runs one combination from scratch and maybe one more (partitioner and fusion changed) as a fork of
it, the way the app's what-if does; a fork re-runs only the stages those options affect. 12 drawn examples and 2
explicit ones, about 23 combinations, take about a minute.
"""
from __future__ import annotations

import signal
import traceback
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import Phase, example, given, settings
from hypothesis import strategies as st

import quantviz
import quantviz.pipeline
import quantviz_kernels
from quantviz import Pipeline, PipelineConfig, StageError, load_model
from quantviz.backends import partitioner_choices
from quantviz.config import DUPLICATE_DEQUANT, FUSIONS, MODES

FLOWS = ("fx", "pt2e")  # the flows these options (mode, per channel, fusion, duplicate dequant) apply to

pytestmark = pytest.mark.e2e
SECONDS_PER_EXAMPLE = 300  # a hang fails the test instead of stalling CI
OWN_DIRS = tuple(Path(m.__file__).resolve().parent for m in (quantviz, quantviz_kernels))


class Hang(Exception):
    pass


def _alarm(signum, frame):
    raise Hang(f"a pipeline ran longer than {SECONDS_PER_EXAMPLE} s")


def raise_site(exc: BaseException) -> Path:
    """The file of the innermost frame of ``exc``'s traceback: where it was raised."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return Path(tb.tb_frame.f_code.co_filename).resolve() if tb is not None else Path()


def raised_by_quantviz(exc: BaseException) -> bool:
    """True for an exception quantviz's own code raised that is not a deliberate StageError."""
    return not isinstance(exc, StageError) and any(raise_site(exc).is_relative_to(d) for d in OWN_DIRS)


def run_recording(make_pipe) -> tuple[Pipeline, list[tuple[str, BaseException]]]:
    """``make_pipe().run()``, with every exception that reached ``explain`` (stage, exception)."""
    seen: list[tuple[str, BaseException]] = []
    real = quantviz.pipeline.explain

    def recording(stage, exc, *args, **kwargs):
        seen.append((stage, exc))
        return real(stage, exc, *args, **kwargs)

    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(SECONDS_PER_EXAMPLE)
    try:
        with mock.patch.object(quantviz.pipeline, "explain", recording):
            pipe = make_pipe().run()
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    return pipe, seen


def check(pipe: Pipeline, seen: list[tuple[str, BaseException]]) -> None:
    own = [(stage, exc) for stage, exc in seen if raised_by_quantviz(exc)]
    if own:
        stage, exc = own[0]
        pytest.fail(f"stage {stage!r} of {pipe.spec.name} under {pipe.config.to_dict()}: quantviz's own code raised "
                    f"{type(exc).__name__} at {raise_site(exc)}; it became a StageError with a generic hint:\n"
                    + "".join(traceback.format_exception(exc)), pytrace=False)
    if pipe.ok:
        assert pipe.pte_bytes() and "float_vs_runtime_sqnr_db" in pipe.numerics()
        return
    err = pipe.failed.error
    assert isinstance(err, StageError) and err.stage == pipe.failed.name
    assert err.message.strip() and err.hint.strip()


def test_raise_site_tells_quantviz_code_from_library_code():
    def own():
        raise ValueError("a bug")

    try:
        own()
    except ValueError as exc:
        assert raised_by_quantviz(exc) is False  # raised in tests/, not in quantviz/
    try:
        PipelineConfig(flow="no-such-flow")
    except Exception as exc:  # noqa: BLE001
        assert raised_by_quantviz(exc) is True  # config validation lives in quantviz/config.py
    try:
        import torch

        torch.zeros(2).view(3)
    except RuntimeError as exc:
        assert raised_by_quantviz(exc) is False  # torch raised it (the innermost Python frame is this test)
    assert raised_by_quantviz(StageError("trace", "m", "h")) is False


def test_a_crash_in_quantviz_code_fails_the_check_instead_of_passing_as_a_stage_error():
    """A KeyError raised in quantviz/stages/trace.py (compiled under that file name) reaches explain, becomes a
    generic StageError, and ``check`` turns it into a test failure."""
    import dataclasses

    namespace: dict = {}
    exec(compile("def run(ctx):\n    return {}['missing']\n", str(OWN_DIRS[0] / "stages" / "trace.py"), "exec"),
         namespace)
    from quantviz import flows

    fx = flows.FLOWS["fx"]
    patched = dataclasses.replace(fx, slots=tuple(dataclasses.replace(s, run=namespace["run"]) if s.name == "trace"
                                                  else s for s in fx.slots))
    spec = load_model("sample:conv_add")
    with mock.patch.dict(flows.FLOWS, {"fx": patched}):
        pipe, seen = run_recording(lambda: Pipeline(spec, PipelineConfig(until="trace")))
    assert not pipe.ok and pipe.failed.error.hint  # the pipeline alone would call this a handled failure
    with pytest.raises(pytest.fail.Exception, match="quantviz's own code raised KeyError"):
        check(pipe, seen)


VARIANTS = st.tuples(st.sampled_from(partitioner_choices()), st.sampled_from(FUSIONS))


# No shrinking: an example costs seconds, and the first failing one already names its configuration.
@settings(max_examples=12, deadline=None, derandomize=True, database=None,
          phases=(Phase.explicit, Phase.reuse, Phase.generate))
@given(sample=st.sampled_from(["conv_add", "mlp_dynamic", "embedding"]), flow=st.sampled_from(FLOWS),
       mode=st.sampled_from(MODES), per_channel=st.booleans(), duplicate_dequant=st.sampled_from(DUPLICATE_DEQUANT),
       variants=st.lists(VARIANTS, min_size=1, max_size=2, unique=True))
# Always tried first, whatever is drawn: each of the run stage's deliberate failures (ExecuTorch's add_relu without an
# out variant at emit, then the fx + XNNPACK delegate's wrong numbers; the embedding's float zero points refused
# before loading), so the code that builds those StageErrors runs on every test run.
@example(sample="conv_add", flow="fx", mode="static", per_channel=False, duplicate_dequant="auto",
         variants=[("none", "executorch"), ("xnnpack", "none")])
@example(sample="embedding", flow="fx", mode="dynamic", per_channel=False, duplicate_dequant="auto",
         variants=[("xnnpack", "both"), ("demo", "none")])
def test_every_combination_succeeds_or_fails_with_a_stage_error(sample, flow, mode, per_channel, duplicate_dequant,
                                                                 variants):
    spec = load_model(f"sample:{sample}")
    base = None
    for partitioner, fusion in variants:
        config = PipelineConfig(flow=flow, mode=mode, per_channel=per_channel, partitioner=partitioner,
                                fusion=fusion, duplicate_dequant=duplicate_dequant)
        if base is None:
            # every drawn field as given (fx with XNNPACK included: XNNPACK's default flow is not applied)
            pipe, seen = run_recording(lambda: Pipeline(spec, config, explicit={"flow"}))
            base = pipe
        else:
            pipe, seen = run_recording(lambda: base.fork(config))
        check(pipe, seen)
