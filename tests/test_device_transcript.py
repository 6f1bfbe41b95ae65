"""The device-resident transcript (:class:`mlx_stark.transcript.DeviceTranscript`) and its
duplex kernel (``custom_kernels.poseidon2.duplex``) against the host sponge, bit for bit.

- emulation (needs g++): the rendered CUDA and Metal duplex kernels equal the host sponge at
  every absorb offset, length and final-permutation flag (the state, then its rate part
  reversed, and a 24-word state read back in);
- a scripted run of observations, samples and proof-of-work searches gives the same values
  and leaves the same host transcript, through the emulated kernels and on the host path;
- a search batch without a witness is caught at the sync and the segment runs again.
"""
import mlx.core as mx
import numpy as np
import pytest

from mlx_stark.custom_kernels import poseidon2 as kp2
from mlx_stark.field import bb
from mlx_stark.field.host import EF
from mlx_stark.hash import permute_host
from mlx_stark import transcript
from mlx_stark.transcript import DeviceTranscript, PowBatchMiss, Transcript, device_segment

from .kernel_helpers import emulation, route

emulated = emulation(kp2)


def _host_duplex(state: list, values: list, a: int, last: bool) -> list:
    state = list(state)
    for v in values:
        state[a] = v
        a += 1
        if a == 8:
            state, a = permute_host(state), 0
    return permute_host(state) if last else state


@pytest.mark.parametrize("a", [0, 3, 7])
def test_emulated_duplex_equals_host(emulated, a):
    state = bb.random((16,), a).tolist()
    for n in (0, 1, 5, 8, 9, 21):
        values = bb.random((n,), 100 + n)
        for last in (False, True):
            got = np.array(kp2.duplex(mx.array(state, dtype=mx.uint32), values, a, last)).tolist()
            want = _host_duplex(state, values.tolist(), a, last)
            assert got == want + want[7::-1], (n, last)  # the state, then its rate reversed
            again = np.array(kp2.duplex(mx.array(got, dtype=mx.uint32), values, a, last)).tolist()
            assert again[:16] == _host_duplex(want, values.tolist(), a, last)  # reads 16 of 24


def _script(t, device: bool):
    """The same actions on a host or device transcript; returns every value produced."""
    def obs(vals):
        if device:
            t.observe(mx.array(vals, dtype=mx.uint32))
        else:
            t.observe_many(vals)

    def get(x):
        return np.array(x).reshape(-1).tolist() if device else (list(x.c) if isinstance(x, EF) else [x])

    out = []
    obs([5, 6, 7])
    out += get(t.sample_ext())
    obs(list(range(8)))  # a full rate block: permutes, the next sample does not
    out += get(t.sample())
    out += get(t.sample_ext())
    out += get(t.sample_ext())  # crosses a permutation: the outputs run out
    obs(list(range(20, 33)))
    out += get(t.grind(6))
    out += get(t.sample_bits(9))
    out += get(t.grind(0))
    out += get(t.grind(3))
    obs([1])
    out += get(t.sample_ext())
    obs([2, 3])
    return out


def _snapshot(t: Transcript) -> tuple:
    return list(t._state), t._absorb_idx, t._sample_idx


def _check_script(exhaustive=False):
    host = Transcript()
    host.observe_many([9, 9])
    start = host.copy()
    expect = _script(host, device=False)
    dt = DeviceTranscript(start, exhaustive=exhaustive)
    got = _script(dt, device=True)
    dt.sync()
    assert got == expect
    assert _snapshot(start) == _snapshot(host)
    assert host.sample() == start.sample()


def test_device_transcript_emulated_kernels(emulated, monkeypatch):
    route(monkeypatch, {"transcript.DeviceTranscript": kp2.duplex, "transcript.DeviceTranscript.grind": kp2.grind})
    monkeypatch.setattr(kp2, "POW_MIN_BATCH", 256)  # emulated threads are OS threads: small batches
    _check_script()
    _check_script(exhaustive=True)


def test_device_transcript_host_path():
    _check_script()  # the CPU backend: the host sponge behind the same interface


@pytest.mark.parametrize("native", [True, False])
@pytest.mark.parametrize("kernels", [True, False])
@pytest.mark.parametrize("gather", [False, True])
def test_observe_after_sync(emulated, monkeypatch, native, kernels, gather):
    """``observe_after_sync`` (on the host after the read-back where the host sponge runs
    long arrays natively, else in the segment; through the emulated kernels or on the host
    path) leaves the host transcript as observing the values last does (with ``rows``: the
    rows, a zero row past the end, gathered), is the segment's last action, and reads values
    the segment also returns once."""
    if kernels:
        route(monkeypatch, {"transcript.DeviceTranscript": kp2.duplex,
                            "transcript.DeviceTranscript.grind": kp2.grind})
    monkeypatch.setattr(Transcript, "native_runs", staticmethod(lambda: native))
    values = bb.random((100, 3), 7)
    rows = [5, 100, 0, 99, 5, 100] if gather else None
    observed = np.array(values)
    if gather:
        observed = np.concatenate([observed, np.zeros((1, 3), dtype=np.uint32)])[rows]
    expect = Transcript()
    expect.observe_many([1, 2, 3])
    want_sample = expect.sample_ext()
    expect.observe_many(observed.reshape(-1).tolist())
    host = Transcript()
    dt = DeviceTranscript(host)
    dt.observe(mx.array([1, 2, 3], dtype=mx.uint32))
    sample = dt.sample_ext()
    dt.observe_after_sync(values, rows)
    if native:
        with pytest.raises(RuntimeError):
            dt.sample_ext()
    reads = []
    real_read = transcript.read
    monkeypatch.setattr(transcript, "read", lambda *xs: reads.append(xs) or real_read(*xs))
    got, back = dt.sync(sample, values)
    assert got.tolist() == list(want_sample.c)
    assert np.array_equal(back, np.array(values))
    assert sum(x is values for xs in reads for x in xs) == 1
    assert _snapshot(host) == _snapshot(expect)
    assert host.sample_ext() == expect.sample_ext()


def test_search_batch_miss_reruns_the_segment(emulated, monkeypatch):
    route(monkeypatch, {"transcript.DeviceTranscript": kp2.duplex, "transcript.DeviceTranscript.grind": kp2.grind})
    monkeypatch.setattr(kp2, "POW_MIN_BATCH", 1)  # one nonce per batch: 12 bits almost surely miss
    monkeypatch.setattr(kp2, "POW_MAX_BATCH", 1)
    host = Transcript()
    expect = host.copy()
    witness = expect.grind(12)
    dt = DeviceTranscript(host)
    dt.grind(12)
    with pytest.raises(PowBatchMiss):
        dt.sync()
    assert _snapshot(host) == _snapshot(Transcript())  # untouched by the failed segment
    runs = []

    def body(dt):
        runs.append(1)
        return None, [dt.grind(12), dt.sample_ext()]

    _, (w, sample) = device_segment(host, body)
    assert len(runs) == 2 and w.tolist() == [witness]
    assert sample.tolist() == list(expect.sample_ext().c)
    assert _snapshot(host) == _snapshot(expect)


def test_emulated_golden_proofs_on_device_transcripts(emulator_dir, monkeypatch):
    """Whole proofs whose device-transcript segments (GKR layers, MLE rounds with the column
    openings, stacked reduction, WHIR sumchecks) run the emulated CUDA duplex and search kernels, with the sumcheck and GKR
    kernels they feed, give the golden fingerprints."""
    from mlx_stark.custom_kernels import gkr as kg
    from mlx_stark.custom_kernels import indexing as kidx
    from mlx_stark.custom_kernels import linear as klin
    from mlx_stark.custom_kernels import sumcheck as ks

    from .golden import fingerprint, golden_workloads
    from .kernel_helpers import emulated_launch
    from .test_golden_fingerprints import GOLDEN
    from .test_kernels_gkr import KERNELS as GKR_KERNELS
    from .test_kernels_gkr import STEP_KERNELS as GKR_STEPS
    from .test_kernels_sumcheck import STEP_KERNELS as SUMCHECK_STEPS
    from .test_kernels_sumcheck import KERNELS

    launch = emulated_launch("cuda", emulator_dir)
    for module in (kp2, ks, kg, klin, kidx):
        monkeypatch.setattr(module, "launch", launch)
    # emulated threads are OS threads: small batches (a search of more bits misses its batch
    # and the segment reruns with host searches, which the fingerprints check too)
    monkeypatch.setattr(kp2, "POW_MIN_BATCH", 256)
    monkeypatch.setattr(kp2, "POW_MAX_BATCH", 4096)
    # the column openings absorbed in their segment, as where no native host sponge exists
    # (the CPU golden proofs cover the host's absorb of them)
    monkeypatch.setattr(Transcript, "native_runs", staticmethod(lambda: False))
    calls = route(monkeypatch, {**KERNELS, **GKR_KERNELS, **GKR_STEPS, **SUMCHECK_STEPS, "transcript.DeviceTranscript": kp2.duplex,
                                "transcript.DeviceTranscript.grind": kp2.grind})
    for w in golden_workloads():
        calls.clear()
        assert fingerprint(w) == GOLDEN[w.name], w.name
        assert {"transcript.DeviceTranscript", "transcript.DeviceTranscript.grind"} <= set(calls), w.name
