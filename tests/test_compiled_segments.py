"""Device segments as compiled graphs (``transcript.device_segment`` with a key).

- CPU: the mechanism with a stand-in sponge (MLX ops, so that ``mx.compile`` can trace it on
  any device): a segment run once as Python, then traced once per key, rate position and input
  shapes, replays the same
  values as the segment run as Python, for other inputs and another sponge; the host
  transcript ends in the same state; a body that cannot be traced (an evaluation inside) runs
  as Python; no key, or timed spans, never compile.
- GPU (native kernels): fib proofs of two inputs of one shape are the same bytes compiled and
  as Python, and the compiled path was taken.
"""
import mlx.core as mx
import numpy as np
import pytest

import mlx_stark as ms
from mlx_stark import custom_kernels, device, tracing, transcript
from mlx_stark.errors import ConfigError
from mlx_stark.field import ext
from mlx_stark.field.bb import P
from mlx_stark.tracing import Rows
from mlx_stark.transcript import Transcript, device_segment

from .kernel_helpers import needs_native


def _stand_in_duplex(state, values, absorb_idx, permute_last):
    """A deterministic stand-in for the duplex kernel: ``(24,)`` -> ``(24,)`` canonical."""
    s = state.astype(mx.uint64)
    total = mx.sum(values.astype(mx.uint64)) if values.size else mx.array(0, dtype=mx.uint64)
    mixed = (s * 3 + total + absorb_idx + 7 * int(permute_last) + mx.arange(24, dtype=mx.uint64)) % P
    return mixed.astype(mx.uint32)


def _never_called(*args):
    raise AssertionError("the test segments search nothing")


@pytest.fixture
def stand_in(monkeypatch):
    kernels = {"transcript.DeviceTranscript": _stand_in_duplex,
               "transcript.DeviceTranscript.grind": _never_called}
    monkeypatch.setattr(custom_kernels, "native", lambda op: kernels.get(op))
    monkeypatch.setattr(transcript, "_COMPILED", {})
    monkeypatch.setattr(transcript, "COMPILE_SEGMENTS", True)
    return kernels


def _body(dt, a, b):
    dt.observe(a)
    r = dt.sample_ext()
    c = ext.mul(b, r)  # (n, 4)
    dt.observe(c)
    s = dt.sample(3)
    return ("static", a.shape[0]), [c, Rows([r, r], (4,)), s]


def _start(seed: int) -> Transcript:
    t = Transcript()
    t.observe_many(range(seed, seed + 5))
    return t


def _inputs(seed: int, n: int = 6):
    rng = np.random.default_rng(seed)
    return [mx.array(rng.integers(0, P, n, dtype=np.uint32)), mx.array(rng.integers(0, P, (n, 4), dtype=np.uint32))]


def _run(t: Transcript, inputs, compiled: bool, key="test"):
    transcript.COMPILE_SEGMENTS = compiled
    try:
        result, arrays = device_segment(t, _body, inputs, key=key)
    finally:
        transcript.COMPILE_SEGMENTS = None
    return result, [np.asarray(a) for a in arrays], (list(t._state), t._absorb_idx, t._sample_idx)


def test_compiled_segment_replays_the_python_segment(stand_in):
    for seed in (1, 2, 3, 4):  # Python, the trace, then replays with other inputs and sponges
        plain = _run(_start(seed), _inputs(seed), compiled=False)
        compiled = _run(_start(seed), _inputs(seed), compiled=True)
        assert compiled[0] == plain[0]
        assert all(np.array_equal(x, y) for x, y in zip(compiled[1], plain[1]))
        assert compiled[2] == plain[2]
    assert [isinstance(v, tuple) for v in transcript._COMPILED.values()] == [True]
    # another shape is another graph
    _run(_start(4), _inputs(4, n=10), compiled=True)
    assert len(transcript._COMPILED) == 2


def test_compiled_results_differ_with_the_inputs(stand_in):
    """The replay reads its inputs and sponge (nothing of the traced call is kept)."""
    _run(_start(1), _inputs(1), compiled=True)  # the Python run
    first = _run(_start(1), _inputs(1), compiled=True)
    second = _run(_start(1), _inputs(2), compiled=True)
    third = _run(_start(2), _inputs(1), compiled=True)
    assert not np.array_equal(first[1][0], second[1][0])
    assert first[2] != third[2]


def test_search_miss_of_a_replay_reruns_exhaustively(stand_in, monkeypatch):
    """A replay whose proof-of-work batch held no witness leaves the transcript as it was and
    the segment runs again as Python with exhaustive searches."""
    want = _run(_start(1), _inputs(1), compiled=False)
    for _ in range(2):  # the Python run and the trace
        _run(_start(1), _inputs(1), compiled=True)
    read_back, exhaustive = transcript._read_back, []

    def missing(host, *args):
        if not exhaustive:
            raise transcript.PowBatchMiss()
        return read_back(host, *args)

    init = transcript.DeviceTranscript.__init__

    def recording(self, host, exhaustive_search=False, state=None):
        exhaustive.append(exhaustive_search)
        init(self, host, exhaustive_search, state)

    monkeypatch.setattr(transcript, "_read_back", missing)
    monkeypatch.setattr(transcript.DeviceTranscript, "__init__", recording)
    got = _run(_start(1), _inputs(1), compiled=True)
    assert exhaustive == [True]
    assert got[0] == want[0] and got[2] == want[2]
    assert all(np.array_equal(x, y) for x, y in zip(got[1], want[1]))


@pytest.mark.parametrize("native", [True, False])
@pytest.mark.parametrize("returned", [False, True])
def test_observe_after_sync_compiled(stand_in, monkeypatch, native, returned):
    """A segment ending with ``observe_after_sync`` (a run long enough for the host's worker
    thread, or absorbed in the segment where the host has no native sponge; its values an
    output of their own, or among the segment's arrays and gathered by rows) leaves the same
    transcript and arrays compiled as run as Python."""
    monkeypatch.setattr(Transcript, "native_runs", staticmethod(lambda: native))
    n = transcript._WORKER_RUN + 13
    rows = list(range(n // 4 + 1, -1, -1)) * 2 if returned else None

    def body(dt, a, b):
        dt.observe(a)
        r = dt.sample_ext()
        values = ext.mul(b, r)
        dt.observe_after_sync(values, rows)
        return None, [r, values] if returned else [r]

    def run(seed, compiled):
        t = _start(seed)
        transcript.COMPILE_SEGMENTS = compiled
        _, arrays = device_segment(t, body, _inputs(seed, n // 4 + 1), key=("after", native, returned))
        return [a.tolist() for a in arrays], (list(t._state), t._absorb_idx, t._sample_idx)

    for seed in (1, 2, 3):  # Python, the trace, a replay
        assert run(seed, True) == run(seed, False)
    assert [isinstance(v, tuple) for v in transcript._COMPILED.values()] == [True]


def test_untraceable_body_runs_as_python(stand_in):
    def body(dt, a):
        dt.observe(a)
        mx.eval(a)  # no evaluation can happen inside a compiled function
        return None, [dt.sample_ext()]

    t1 = _start(1)
    transcript.COMPILE_SEGMENTS = False
    _, want = device_segment(t1, body, [mx.arange(4, dtype=mx.uint32)], key="eval")
    transcript.COMPILE_SEGMENTS = True  # (the fixture restores it)
    for _ in range(2):  # the Python run, then the failed trace
        t2 = _start(1)
        _, got = device_segment(t2, body, [mx.arange(4, dtype=mx.uint32)], key="eval")
        assert np.array_equal(got[0], want[0]) and t1._state == t2._state
    assert list(transcript._COMPILED.values()) == [None]


def test_no_key_or_timed_spans_do_not_compile(stand_in):
    device_segment(_start(1), _body, _inputs(1))
    assert not transcript._COMPILED
    with tracing.timing():
        device_segment(_start(1), _body, _inputs(1), key="timed")
    assert not transcript._COMPILED


def test_setting(monkeypatch):
    monkeypatch.delenv("MLX_STARK_COMPILE_SEGMENTS", raising=False)
    for backend, on in (("cuda", True), ("metal", False), ("cpu", False)):  # the defaults
        monkeypatch.setattr(device, "backend", lambda: backend)
        assert device.compile_segments() == on
    monkeypatch.setenv("MLX_STARK_COMPILE_SEGMENTS", "1")
    assert device.compile_segments()
    monkeypatch.setenv("MLX_STARK_COMPILE_SEGMENTS", "0")
    assert not device.compile_segments()
    monkeypatch.setenv("MLX_STARK_COMPILE_SEGMENTS", "yes")
    with pytest.raises(ConfigError, match="MLX_STARK_COMPILE_SEGMENTS"):
        device.check_env()


@needs_native
def test_device_compiled_fib_proofs_are_the_python_proofs(monkeypatch):
    from mlx_stark import workloads
    from mlx_stark.airs import fib_trace

    w = workloads.fib(10)
    pk, vk = ms.keygen(w.airs, w.params)
    other = list(w.inputs)
    other[0] = ms.AirInput(*fib_trace(5, 8, 1 << 10, on_device=True))
    for inputs, runs in ((w.inputs, 3), (other, 1)):  # Python, trace, replay; then a replay
        monkeypatch.setattr(transcript, "COMPILE_SEGMENTS", False)
        plain = ms.prove(pk, inputs).to_bytes()
        monkeypatch.setattr(transcript, "COMPILE_SEGMENTS", True)
        for _ in range(runs):
            compiled = ms.prove(pk, inputs).to_bytes()
            assert compiled == plain
        ms.verify(vk, compiled)
    assert any(isinstance(v, tuple) for v in transcript._COMPILED.values())
