"""Round-finish kernels of the multilinear rounds (mlx_stark.custom_kernels.rounds): the
round message and the state update, one thread each.

- sources: the structure of both dialects (tests/kernel_helpers.check_twins);
- emulation (needs g++): the rendered CUDA and Metal sources run as C++ on the CPU and equal
  the MLX-ops references (:func:`~mlx_stark.prover.batch_constraints.mle_rounds.round_message`,
  :func:`~mlx_stark.prover.batch_constraints.mle_rounds.round_update`) for several head
  counts and degrees, random and all-``p − 1`` values; whole proofs with the emulated kernels
  give the golden fingerprints;
- device: on a GPU, the kernels equal the ops path on the CPU.
"""
import mlx.core as mx
import pytest

from mlx_stark.custom_kernels import rounds as kr
from mlx_stark.errors import InvalidInputError
from mlx_stark.field import bb, ext
from mlx_stark.field.bb import P
from mlx_stark.field.host import EF
from mlx_stark.prover.batch_constraints import mle_rounds

from .kernel_helpers import arrays_equal, check_twins, emulation, needs_native, ops_path, route

KERNELS = {"mle_rounds.round_message": kr.round_message, "mle_rounds.round_update": kr.round_update}
X = EF(5, P - 3, 17, 2)
# a table of three rounds' points; the tests use the last row
POINTS = mle_rounds.RoundPoints([EF(7), EF(1, 2, 3, 4), X])
TOP = mle_rounds.RoundPoints([EF(3), EF(P - 1, P - 1, P - 1, P - 1)])


def _inputs(heads: int, degree: int, kind: str, seed: int) -> tuple:
    if kind == "top":
        top = lambda shape: mx.full(shape, P - 1, dtype=mx.uint32)  # noqa: E731
        return top((heads, 3, degree, 4)), top((heads, 3, 4)), top((4, 4)), top((degree + 1, 4)), top((4,))
    return (bb.random((heads, 3, degree, 4), seed), bb.random((heads, 3, 4), seed + 1),
            bb.random((4, 4), seed + 2), bb.random((degree + 1, 4), seed + 3), ext.random((), seed + 4))


def test_sources():
    for src in (kr.round_message_source(), kr.round_update_source()):
        check_twins(src)


emulated = emulation(kr)


@pytest.mark.parametrize("heads, degree", [(1, 1), (1, 2), (3, 3), (2, 5)])
@pytest.mark.parametrize("kind", ["random", "top"])
def test_emulated_equal_the_references(emulated, heads, degree, kind):
    vals, coefs, state, msg, r = _inputs(heads, degree, kind, heads * 10 + degree)
    pts = POINTS if kind == "random" else TOP
    j = len(pts.x) - 1
    got = kr.round_message(vals, coefs, state, pts.table(), j, degree)
    assert got.shape == (degree + 1, 4)
    assert arrays_equal(got, ops_path(lambda: mle_rounds.round_message(vals, coefs, state, pts, j, degree)))
    new = kr.round_update(msg, r, state, pts.table(), j)
    assert new.shape == (4, 4)
    assert arrays_equal(new, ops_path(lambda: mle_rounds.round_update(msg, r, state, pts, j)))
    # another row reads another point
    other = kr.round_update(msg, r, state, pts.table(), 0)
    assert arrays_equal(other, ops_path(lambda: mle_rounds.round_update(msg, r, state, pts, 0)))
    assert not arrays_equal(other, new)


def test_emulated_rejects_bad_shapes(emulated):
    vals, coefs, state, msg, r = _inputs(2, 3, "random", 1)
    table = POINTS.table()
    with pytest.raises(InvalidInputError):
        kr.round_message(vals, coefs[:1], state, table, 0, 3)
    with pytest.raises(InvalidInputError):
        kr.round_message(vals, coefs, state, table, 0, 2)
    with pytest.raises(InvalidInputError):
        kr.round_message(vals, coefs, state, table, 3, 3)  # no such round
    with pytest.raises(InvalidInputError):
        kr.round_update(msg, r[:2], state, table, 0)
    with pytest.raises(InvalidInputError):
        kr.round_update(bb.random((40, 4), 1), r, state, table, 0)
    with pytest.raises(InvalidInputError):
        kr.round_update(msg, r, state, table[:, :4], 0)


emulated_cuda = emulation(kr, dialects=("cuda",))


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
        for vals, coefs, state, msg, r in cases:
            d = vals.shape[2]
            out += [mle_rounds.round_message(vals, coefs, state, POINTS, 2, d),
                    mle_rounds.round_update(msg, r, state, POINTS, 2)]
        mx.eval(out)
        return [a.tolist() for a in out]

    assert run() == reference(run)
