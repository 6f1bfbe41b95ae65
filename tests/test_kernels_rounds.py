"""The multilinear round's finish as one kernel (mlx_stark.custom_kernels.rounds): the round
message, the device transcript's absorb of it and the challenge after it, the state update.

- sources: the structure of both dialects (tests/kernel_helpers.check_twins);
- emulation (needs g++): the rendered CUDA and Metal sources run as C++ on the CPU and equal
  the MLX-ops reference (:func:`~mlx_stark.prover.batch_constraints.mle_rounds.round_step` on a
  host transcript: :func:`~mlx_stark.prover.batch_constraints.mle_rounds.round_message`, the
  host sponge, :func:`~mlx_stark.prover.batch_constraints.mle_rounds.round_update`) for several
  head counts, degrees and rate positions, random and all-``p − 1`` values, and leave the same
  transcript; whole proofs with the emulated kernels give the golden fingerprints;
- device: on a GPU, the kernel equals the ops path on the CPU.
"""
import mlx.core as mx
import numpy as np
import pytest

from mlx_stark.custom_kernels import poseidon2 as kp2
from mlx_stark.custom_kernels import rounds as kr
from mlx_stark.errors import InvalidInputError
from mlx_stark.field import bb
from mlx_stark.field.bb import P
from mlx_stark.field.host import EF
from mlx_stark.prover.batch_constraints import mle_rounds
from mlx_stark.transcript import DeviceTranscript, Transcript

from .kernel_helpers import check_twins, emulation, needs_native, ops_path, route

KERNELS = {"mle_rounds.round_step": kr.round_step, "transcript.DeviceTranscript": kp2.duplex}
X = EF(5, P - 3, 17, 2)
# a table of three rounds' points; the tests use the last row
POINTS = mle_rounds.RoundPoints([EF(7), EF(1, 2, 3, 4), X])
TOP = mle_rounds.RoundPoints([EF(3), EF(P - 1, P - 1, P - 1, P - 1)])


def _inputs(heads: int, degree: int, kind: str, seed: int) -> tuple:
    """``vals (H, 3, d, 4)``, ``coefs (H, 3, 4)``, ``state (4, 4)``."""
    if kind == "top":
        top = lambda shape: mx.full(shape, P - 1, dtype=mx.uint32)  # noqa: E731
        return top((heads, 3, degree, 4)), top((heads, 3, 4)), top((4, 4))
    return bb.random((heads, 3, degree, 4), seed), bb.random((heads, 3, 4), seed + 1), bb.random((4, 4), seed + 2)


def test_sources():
    check_twins(kr.round_step_source())


emulated = emulation(kr, kp2)


def _transcript(before: int) -> Transcript:
    """A host transcript that has absorbed ``before`` values (its rate position)."""
    t = Transcript()
    t.observe_many(bb.random((before,), before).tolist())
    return t


def _step(t: Transcript, vals, coefs, state, pts, j, degree) -> tuple:
    """:func:`mle_rounds.round_step` on a device transcript over ``t``, synced back into it:
    the message, the challenge and the next state as lists."""
    dt = DeviceTranscript(t)
    msg, r, nxt = mle_rounds.round_step(dt, vals, coefs, state, pts, j, degree)
    return [a.tolist() for a in dt.sync(msg, r, nxt)]


@pytest.mark.parametrize("heads, degree", [(1, 1), (1, 2), (3, 3), (2, 5)])
@pytest.mark.parametrize("kind", ["random", "top"])
@pytest.mark.parametrize("before", [0, 3, 7, 8])
def test_emulated_equal_the_reference(emulated, monkeypatch, heads, degree, kind, before):
    vals, coefs, state = _inputs(heads, degree, kind, heads * 10 + degree)
    pts = POINTS if kind == "random" else TOP
    j = len(pts.x) - 1
    want_t = _transcript(before)
    want = _step(want_t, vals, coefs, state, pts, j, degree)  # the CPU: the ops path, host sponge
    route(monkeypatch, KERNELS)
    got_t = _transcript(before)
    got = _step(got_t, vals, coefs, state, pts, j, degree)
    assert [np.shape(g) for g in got] == [(degree + 1, 4), (4,), (4, 4)]
    assert got == want
    assert (got_t._state, got_t._absorb_idx, got_t._sample_idx) == \
        (want_t._state, want_t._absorb_idx, want_t._sample_idx)
    assert got_t.sample() == want_t.sample()
    # another row reads another point
    other = _step(_transcript(before), vals, coefs, state, pts, 0, degree)
    assert other != got
    assert other == ops_path(lambda: _step(_transcript(before), vals, coefs, state, pts, 0, degree))


def test_emulated_rejects_bad_shapes(emulated):
    vals, coefs, state = _inputs(2, 3, "random", 1)
    table = POINTS.table()
    sponge = mx.zeros((24,), dtype=mx.uint32)
    with pytest.raises(InvalidInputError):
        kr.round_step(vals, coefs[:1], state, table, 0, 3, sponge, 0, True)
    with pytest.raises(InvalidInputError):
        kr.round_step(vals, coefs, state, table, 0, 2, sponge, 0, True)
    with pytest.raises(InvalidInputError):
        kr.round_step(vals, coefs, state, table, 3, 3, sponge, 0, True)  # no such round
    with pytest.raises(InvalidInputError):
        kr.round_step(vals, coefs, state[:2], table, 0, 3, sponge, 0, True)
    with pytest.raises(InvalidInputError):
        kr.round_step(vals, coefs, state, table[:, :4], 0, 3, sponge, 0, True)


emulated_cuda = emulation(kr, kp2, dialects=("cuda",))


def test_emulated_golden_proofs(emulated_cuda, monkeypatch):
    """Whole proofs with the round kernels (emulated CUDA) give the golden fingerprints."""
    from .golden import fingerprint, golden_workloads
    from .test_golden_fingerprints import GOLDEN

    calls, used = route(monkeypatch, KERNELS), 0
    for w in golden_workloads():
        calls.clear()
        assert fingerprint(w) == GOLDEN[w.name], w.name
        if calls:  # a workload with multilinear rounds
            assert set(calls) == set(KERNELS), w.name
            used += 1
    assert used


@needs_native
def test_device_equals_ops(reference):
    cases = [_inputs(h, d, kind, h + d) for h, d in ((1, 2), (3, 3)) for kind in ("random", "top")]

    def run():
        out = []
        for before in (0, 5):
            for vals, coefs, state in cases:
                t = _transcript(before)
                out.append(_step(t, vals, coefs, state, POINTS, 2, vals.shape[2]))
                out.append(t.sample())
        return out

    assert run() == reference(run)
