"""Weighted-sum kernel (mlx_stark.custom_kernels.linear): the native path of
:func:`mlx_stark.prover.stacked_reduction.weighted_sum`.

- source (its structure in both dialects: tests/test_custom_kernels.py): the shared 64-bit
  accumulation helpers of the prelude, one fold per product and one reduction per output;
- emulation (needs g++): the rendered CUDA and Metal sources run as C++ on the CPU (see
  tests/kernel_helpers.py) and equal the MLX-ops reference on awkward shapes of the three
  regimes the prover uses (few outputs with many terms, split into parts; many outputs with
  few terms; ``A = 1`` with a wide ``B``), ``C`` = 1, 4 and 8, ``X`` = 1, and through the
  stage function's registry dispatch; ``fold_skip`` of base tables through it; the fold of a
  trace's logical table read from its parts (rotated and selector columns made as it reads)
  equals ``fold_skip`` of the logical table built by hand, and whole proofs through it give
  the golden fingerprints;
- device: on a GPU with native kernels, the stage function equals its ops path on the CPU.
"""
import mlx.core as mx
import numpy as np
import pytest

from mlx_stark import custom_kernels
from mlx_stark.custom_kernels import render
from mlx_stark.custom_kernels import linear as klin
from mlx_stark.custom_kernels import sizing
from mlx_stark.errors import InvalidInputError
from mlx_stark.field import bb, ext
from mlx_stark.field.bb import P
from mlx_stark.field.host import EF
from mlx_stark.poly import fold_skip, host
from mlx_stark.prover import stacked_reduction
from mlx_stark.prover.stacked_reduction import weighted_sum

from .kernel_helpers import check_twins, emulation, needs_native, ops_path, route

# (A, X, B, C): small A·B with large X (several parts, uneven last part), large A with small
# X, A = 1 with a wide B, X = 1, C = 1, 4, 8
SHAPES = [
    (3, 1000, 2, 8),
    (2, 37, 3, 4),
    (700, 5, 1, 4),
    (300, 42, 1, 4),
    (1, 130, 600, 4),
    (5, 1, 7, 8),
    (1, 1, 1, 1),
    (4, 2048, 1, 1),
]


def _case(a, x, b, c):
    seed = a * 7919 + x * 31 + b * 5 + c
    values = bb.random((a, x, b), seed)
    weights = bb.random((x, c), seed + 1)
    return values, weights


def _extreme(a, x, b, c):
    """Every value and weight ``p − 1``: the largest products and the most folds."""
    return mx.full((a, x, b), P - 1, dtype=mx.uint32), mx.full((x, c), P - 1, dtype=mx.uint32)


def _naive(values, weights) -> np.ndarray:
    v = np.array(values).astype(object)
    w = np.array(weights).astype(object)
    return (np.einsum("axb,xc->abc", v, w) % P).astype(np.uint32)


# ---------------------------------------------------------------- source
def test_source():
    for c in (1, 4, 8):
        src = klin.weighted_sum_source(c)
        assert src.input_names == ("values", "weights", "params") and src.output_names == ("out",)
        header, _ = render(src, "cuda")
        assert "KFN uint64_t bb_fold" in header and "KFN uint32_t bb_redc" in header
        # one fold per product, one reduction per output
        assert src.body.count("bb_fold(") == c and src.body.count("bb_redc(") == c
        assert "SHARED" not in src.body and "BARRIER()" not in src.body


def test_plan_ranges():
    # the keccakf shapes: WHIR's μ-combination, round 0, the query weights
    assert klin.plan_ranges(1 << 21, 42) == (1, 42)
    parts, span = klin.plan_ranges(42 * 16, 1 << 11)
    assert parts > 1 and parts * 42 * 16 <= sizing.TARGET_THREADS and span >= klin.MIN_PART_TERMS
    assert klin.plan_ranges(1 << 17, 300) == (2, 150)
    for outputs, terms in [(1, 1), (3, 1000), (1, 17), (5, 10 ** 6), (1 << 20, 3)]:
        parts, span = klin.plan_ranges(outputs, terms)
        assert 1 <= parts <= klin.MAX_PARTS and (parts - 1) * span < terms <= parts * span


# ---------------------------------------------------------------- emulation
emulated = emulation(klin)
emulated_cuda = emulation(klin, dialects=("cuda",))


@pytest.mark.parametrize("shape", SHAPES)
def test_emulated_equals_ops(emulated, shape):
    values, weights = _case(*shape)
    got = klin.weighted_sum(values, weights)
    assert got.shape == (shape[0], shape[2], shape[3]) and got.dtype == mx.uint32
    ref = weighted_sum(values, weights)
    np.testing.assert_array_equal(np.array(got), np.array(ref))
    if shape[1] <= 130:
        np.testing.assert_array_equal(np.array(got), _naive(values, weights))


@pytest.mark.parametrize("shape", [(3, 1000, 2, 8), (300, 42, 1, 4)])
def test_emulated_extreme_values(emulated, shape):
    values, weights = _extreme(*shape)
    got = np.array(klin.weighted_sum(values, weights))
    np.testing.assert_array_equal(got, np.array(weighted_sum(values, weights)))
    np.testing.assert_array_equal(got, np.full(got.shape, shape[1] % P, dtype=np.uint32))  # Σ (−1)^2


def test_emulated_through_the_stage(emulated, monkeypatch):
    calls = []

    def kernel(values, weights):
        calls.append(values.shape)
        return klin.weighted_sum(values, weights)

    route(monkeypatch, {"stacked_reduction.weighted_sum": kernel})
    values, weights = _case(2, 37, 3, 4)
    got = stacked_reduction.weighted_sum(values, weights)
    assert calls == [(2, 37, 3)]
    np.testing.assert_array_equal(np.array(got), np.array(ops_path(lambda: stacked_reduction.weighted_sum(values, weights))))


@pytest.mark.parametrize("l, shape", [(2, (32, 5)), (0, (7, 3)), (3, (16,)), (1, (8, 3, 2))])
def test_emulated_fold_skip(emulated, monkeypatch, l, shape):
    """``fold_skip`` of a base table as one weighted sum over ``X = 2^l`` equals its ops path."""

    table = bb.random(shape, l + len(shape))
    calls = route(monkeypatch, {"mle.fold_skip:base": klin.weighted_sum})
    got = fold_skip(table, l, 12345)
    assert calls == ["mle.fold_skip:base"] and got.shape == (shape[0] >> l,) + shape[1:] + (4,)
    np.testing.assert_array_equal(np.array(got), np.array(ops_path(lambda: fold_skip(table, l, 12345))))


def test_emulated_proofs_match_golden(emulated_cuda, monkeypatch):
    """Whole proofs with the weighted-sum kernel (emulated CUDA; the Metal twin is covered
    above), also for the univariate-skip folds, give the golden fingerprints."""
    from .golden import fingerprint, golden_workloads
    from .test_golden_fingerprints import GOLDEN

    shapes = []

    def kernel(values, weights):
        shapes.append(values.shape + weights.shape[1:])
        return klin.weighted_sum(values, weights)

    calls = route(monkeypatch, {"stacked_reduction.weighted_sum": kernel, "mle.fold_skip:base": kernel})
    for w in golden_workloads():
        assert fingerprint(w) == GOLDEN[w.name], w.name
    assert "mle.fold_skip:base" in calls
    # the WHIR μ-combination (B = 1) and the stacked reduction's round 0 (C = 8) went through it
    assert any(s[2] == 1 and s[0] > 1 for s in shapes) and any(s[3] == 8 for s in shapes)


def test_emulated_empty(emulated):
    for a, x, b, c in [(0, 3, 2, 4), (2, 0, 3, 4), (2, 3, 0, 8), (2, 3, 4, 0)]:
        values, weights = _case(a, x, b, c)
        got = klin.weighted_sum(values, weights)
        assert got.shape == (a, b, c)
        np.testing.assert_array_equal(np.array(got), np.array(weighted_sum(values, weights)))


def test_stage_rejects_mismatched_weights():
    values = bb.random((2, 5, 3), 1)
    for weights in (bb.random((4, 4), 2), bb.random((5,), 3), bb.random((5, 4, 1), 4)):
        with pytest.raises(InvalidInputError):
            stacked_reduction.weighted_sum(values, weights)


# ---------------------------------------------------------------- on the GPU (CUDA or Metal)
@needs_native
def test_device_equals_ops(reference):
    assert custom_kernels.native("stacked_reduction.weighted_sum") is not None
    # the test shapes, then the keccakf-1024 shapes (WHIR μ-combination, stacked-reduction
    # round 0, WHIR query weights) and a large X split into many parts
    shapes = SHAPES + [(1 << 21, 42, 1, 4), (42, 1 << 11, 16, 8), (1, 300, 1 << 17, 4),
                       (1, 137, 1 << 16, 4), (2, 1 << 20, 1, 4)]
    cases = [_case(*s) for s in shapes] + [_extreme(*s) for s in ((3, 1000, 2, 8), (4, 1 << 16, 3, 4))]
    for v, w in cases:
        got = np.array(stacked_reduction.weighted_sum(v, w))
        ref = reference(lambda: np.array(stacked_reduction.weighted_sum(v, w)))
        np.testing.assert_array_equal(got, ref, str(v.shape))


# ---------------------------------------------------------------- field sums
SUM_CASES = [((5,), None), ((1000,), None), ((3, 7, 4), 0), ((3, 7, 4), 1), ((3, 7, 4), -1),
             ((2, 3000, 5), 1), ((4096, 3), 0), ((1,), 0), ((6, 1), 1)]


def test_field_sum_source():
    check_twins(klin.field_sum_source())


@pytest.mark.parametrize("shape, axis", SUM_CASES)
def test_emulated_field_sum(emulated, shape, axis):
    for a in (bb.random(shape, len(shape) * 31 + (axis or 0)), mx.full(shape, P - 1, dtype=mx.uint32)):
        got = klin.field_sum(a, axis)
        want = ops_path(lambda: bb.sum(a, axis))
        assert got.shape == want.shape and np.array_equal(np.array(got), np.array(want)), (shape, axis)


def test_field_sum_declines(emulated):
    assert klin.field_sum(mx.zeros((3,), dtype=mx.float32), None) is None
    assert klin.field_sum(bb.random((3, 4), 1), (0, 1)) is None
    assert klin.field_sum(mx.zeros((0, 3), dtype=mx.uint32), 0) is None
    long = mx.zeros((klin.THREADS * klin.MAX_TERMS_PER_THREAD + 1,), dtype=mx.uint32)
    assert klin.field_sum(long, 0) is None


@pytest.mark.parametrize("op, module, kernel", [("bb.sum", bb, klin.field_sum),
                                                 ("ext.mul_sum", ext, klin.ext_mul_sum)])
def test_emulated_sum_proofs_match_golden(emulated_cuda, monkeypatch, op, module, kernel):
    """Whole proofs with every field sum / extension dot product on its kernel (emulated CUDA)
    give the golden fingerprints."""
    from .golden import fingerprint, golden_workloads
    from .test_golden_fingerprints import GOLDEN

    calls = []

    def unfused(name, *args):
        if name != op:
            return None
        calls.append(args[0].shape)
        return kernel(*args)

    monkeypatch.setattr(module, "unfused_native", unfused)
    for w in golden_workloads():
        assert fingerprint(w) == GOLDEN[w.name], w.name
    assert len(calls) > 10


@needs_native
def test_device_field_sum_equals_ops(reference):
    cases = [(bb.random(s, 7), a) for s, a in SUM_CASES + [((3, 2, 1 << 15, 4), 2), ((1 << 20,), None)]]
    for a, axis in cases:
        got = np.array(bb.sum(a, axis))  # the kernel where fusion is off
        np.testing.assert_array_equal(got, reference(lambda: np.array(bb.sum(a, axis))), str(a.shape))


# ---------------------------------------------------------------- extension dot products
# (lhs leading shape, rhs leading shape, axis): the stages' shapes (a round's head values and
# eq weights, round 0's contraction, the sum claims), broadcasts both ways, long sums
MUL_SUM_CASES = [((3, 2, 8), (8,), 2), ((8, 3, 16), (8, 1, 1), 0), ((2, 16), (16,), 1),
                 ((5,), (5,), 0), ((1,), (1,), 0), ((4, 1, 3), (1, 6, 3), 2), ((3000,), (3000,), 0),
                 ((2, 5, 7), (2, 5, 7), 1), ((7, 2), (7, 1), -2), ((2, 3, 4, 5, 6), (6,), 4)]


def test_ext_mul_sum_source():
    check_twins(klin.ext_mul_sum_source())


# (lhs, rhs, axis, also): a multilinear round's parts of the head values with the eq weights
# (the parts axis first), a part axis after the term axis, one where the rhs has it
MUL_SUM_ALSO_CASES = [((4, 3, 2, 8), (8,), 2 + 1, 0), ((5, 3, 1, 1), (1,), 3, 0),
                      ((6, 2, 3), (1, 3), 0, 2), ((3, 4, 5), (3, 4, 5), 2, 0)]


@pytest.mark.parametrize("sa, sb, axis, also", MUL_SUM_ALSO_CASES)
def test_emulated_ext_mul_sum_two_axes(emulated, sa, sb, axis, also):
    """The sum along a second axis (the parts of a generated kernel) equals the ops path's
    two field sums."""
    a, b = ext.random(sa, len(sa) + axis), ext.random(sb, 5 + also)
    got = klin.ext_mul_sum(a, b, axis, also)
    want = ops_path(lambda: ext.mul_sum(a, b, axis, also))
    ref = ops_path(lambda: bb.sum(bb.sum(ext.mul(a, b), axis=max(axis, also)), axis=min(axis, also)))
    assert got is not None and got.shape == want.shape == ref.shape, (sa, sb, axis, also)
    assert np.array_equal(np.array(got), np.array(want)) and np.array_equal(np.array(want), np.array(ref))


@pytest.mark.parametrize("sa, sb, axis", MUL_SUM_CASES)
def test_emulated_ext_mul_sum(emulated, sa, sb, axis):
    seed = len(sa) * 7 + axis
    for a, b in ((ext.random(sa, seed), ext.random(sb, seed + 1)),
                 (mx.full(sa + (4,), P - 1, dtype=mx.uint32), mx.full(sb + (4,), P - 1, dtype=mx.uint32))):
        got = klin.ext_mul_sum(a, b, axis)
        want = ops_path(lambda: ext.mul_sum(a, b, axis))
        assert got is not None and got.shape == want.shape, (sa, sb, axis)
        assert np.array_equal(np.array(got), np.array(want)), (sa, sb, axis)
        # the reference is the product's field sum
        ref = ops_path(lambda: bb.sum(ext.mul(a, b), axis=axis % max(len(sa), len(sb))))
        assert np.array_equal(np.array(want), np.array(ref))


def test_ext_mul_sum_declines(emulated):
    a = ext.random((3, 5), 1)
    assert klin.ext_mul_sum(a.astype(mx.int32), a, 0) is None
    assert klin.ext_mul_sum(a, ext.random((4, 5), 2), 0) is None  # shapes do not broadcast
    assert klin.ext_mul_sum(a, a, 2) is None  # no such leading axis
    # five output dimensions that do not merge (the operands broadcast in turn)
    assert klin.ext_mul_sum(ext.random((2, 3, 2, 3, 2, 3), 3), ext.random((1, 3, 1, 3, 1, 3), 4), 0) is None
    assert klin.ext_mul_sum(bb.random((3, 5), 1), bb.random((3, 5), 2), 0) is None  # not (..., 4)
    empty = klin.ext_mul_sum(ext.random((0, 3), 5), ext.random((3,), 6), 1)
    assert empty.shape == (0, 4)


@needs_native
def test_device_ext_mul_sum_equals_ops(reference):
    cases = [(ext.random(sa, 3), ext.random(sb, 4), axis)
             for sa, sb, axis in MUL_SUM_CASES + [((3, 2, 1 << 15), (1 << 15,), 2)]]
    for a, b, axis in cases:
        got = np.array(ext.mul_sum(a, b, axis))  # the kernel where fusion is off
        np.testing.assert_array_equal(got, reference(lambda: np.array(ext.mul_sum(a, b, axis))),
                                      str((a.shape, b.shape, axis)))
    for sa, sb, axis, also in MUL_SUM_ALSO_CASES + [((64, 3, 3, 1 << 10), (1 << 10,), 3, 0)]:
        a, b = ext.random(sa, 5), ext.random(sb, 6)
        got = np.array(ext.mul_sum(a, b, axis, also))
        np.testing.assert_array_equal(got, reference(lambda: np.array(ext.mul_sum(a, b, axis, also))))


# ---------------------------------------------------------------- shifted polynomial sums
# (lengths, offsets, length): s_0's quotient sum (Z^N·Q − Q), its LogUp sums, a chained launch
RAGGED_CASES = [([5, 5], [4, 0], 16), ([3, 8, 1, 8], [0, 0, 0, 0], 8), ([2] * 21, list(range(21)), 32),
                ([1], [0], 1), ([4, 0], [2, 0], 6)]


@pytest.mark.parametrize("lens, offs, length", RAGGED_CASES)
def test_emulated_ragged_sum(emulated, monkeypatch, lens, offs, length):
    from mlx_stark.custom_kernels import indexing as kidx
    from mlx_stark.prover.batch_constraints import round0

    monkeypatch.setattr(kidx, "launch", klin.launch)  # device weights gather in one launch
    polys = [ext.random((n,), 3 * i + n) for i, n in enumerate(lens)]
    for weights in ([EF(i + 1, P - i, 7, i * i) for i in range(len(lens))],
                    [ext.random((), 50 + i) for i in range(len(lens))]):  # host, device values
        terms = list(zip(polys, weights, offs))
        got = klin.ragged_sum(terms, length)
        want = ops_path(lambda: round0.shifted_sum(terms, length))
        assert got.shape == want.shape == (length, 4)
        np.testing.assert_array_equal(np.array(got), np.array(want))
    with pytest.raises(InvalidInputError):
        klin.ragged_sum([(polys[0], EF(1), length)], length)


@needs_native
def test_device_ragged_sum_equals_ops(reference):
    from mlx_stark.prover.batch_constraints import round0

    terms = [(ext.random((n,), n), EF(n, 3, P - n, 1), off)
             for n, off in ((40, 16), (40, 0), (3000, 0), (7, 99))]
    got = np.array(round0.shifted_sum(terms, 4096))  # the kernel
    np.testing.assert_array_equal(got, reference(lambda: np.array(round0.shifted_sum(terms, 4096))))


def test_ragged_sum_sources():
    for k in (2, 4, 8, 16):
        check_twins(klin.ragged_sum_source(k))


def test_emulated_ragged_sum_proofs_match_golden(emulated_cuda, monkeypatch):
    from .golden import fingerprint, golden_workloads
    from .test_golden_fingerprints import GOLDEN

    calls = route(monkeypatch, {"round0.shifted_sum": klin.ragged_sum})
    for w in golden_workloads():
        assert fingerprint(w) == GOLDEN[w.name], w.name
    assert "round0.shifted_sum" in calls


# ---------------------------------------------------------------- the logical table's fold
def _logical_fold(table: np.ndarray, need_rot: bool, l: int, z: int) -> np.ndarray:
    """The reference: the logical table built by hand (a table lower than ``2^l`` repeated,
    lifted), folded by ``fold_skip`` (ops path), column-major ``(W_tot, max(H, 2^l)/2^l, 4)``."""
    h = table.shape[0]
    rows = np.arange(h)
    parts = [table] + ([np.roll(table, -1, axis=0)] if need_rot else [])
    sel = np.stack([rows == 0, rows == h - 1, rows != h - 1], axis=1).astype(np.uint32)
    logical = np.concatenate(parts + [sel], axis=1)
    logical = mx.array(np.tile(logical, (max(1, (1 << l) // h), 1)))
    folded = np.array(ops_path(lambda: fold_skip(logical, l, z)))
    return np.transpose(folded, (1, 0, 2))


def test_fold_table_source():
    check_twins(klin.fold_table_source())


@pytest.mark.parametrize("h, wall, need_rot, l", [(16, 3, True, 2), (64, 5, False, 3), (8, 1, True, 3),
                                                  (32, 7, True, 0), (4, 2, True, 2),
                                                  (4, 3, True, 4), (2, 2, False, 3), (1, 1, True, 2)])
def test_emulated_fold_table(emulated, h, wall, need_rot, l):
    table = np.array(bb.random((h, wall), h + wall))
    z = 987654321
    weights = ext.from_host(host.lagrange_basis(l, z))
    got = np.array(klin.fold_table(mx.array(table), need_rot, l, weights))
    np.testing.assert_array_equal(got, _logical_fold(table, need_rot, l, z))


def test_emulated_fold_table_proofs_match_golden(emulated_cuda, monkeypatch):
    """Whole proofs with the multilinear rounds' first fold on the kernel (emulated CUDA) give
    the golden fingerprints."""
    from .golden import fingerprint, golden_workloads
    from .test_golden_fingerprints import GOLDEN

    calls = route(monkeypatch, {"mle_rounds.fold_table": klin.fold_table})
    for w in golden_workloads():
        assert fingerprint(w) == GOLDEN[w.name], w.name
    assert "mle_rounds.fold_table" in calls


@needs_native
def test_device_fold_table_equals_ops(reference):
    table = bb.random((1 << 12, 42), 11)
    weights = ext.from_host(host.lagrange_basis(4, 31337))
    got = np.array(klin.fold_table(table, True, 4, weights))
    np.testing.assert_array_equal(got, reference(lambda: _logical_fold(np.array(table), True, 4, 31337)))
