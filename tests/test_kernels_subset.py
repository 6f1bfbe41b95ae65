"""Subset-sum transforms on the device: :func:`mlx_stark.poly.zeta` / :func:`~mlx_stark.poly.mobius`
and their ``mle.zeta`` / ``mle.mobius`` kernels (mlx_stark.custom_kernels.ntt.subset_transform),
used by WHIR (the coefficient table's hypercube values, each round's coefficients).

- host: the pass plan covers every bit with at most ``MAX_LOG_SUBSET`` per pass;
- source: both dialects render for every radix and direction;
- emulation (needs g++): the rendered CUDA and Metal sources run as C++ on the CPU and equal
  the MLX-ops path on base and extension data along every axis, lengths 1 to 2^11 (one to
  three passes), values near p; Möbius undoes zeta; whole proofs through both give the golden
  fingerprints;
- device: on a GPU with native kernels, both equal the ops path on the CPU.
"""
import mlx.core as mx
import numpy as np
import pytest

from mlx_stark.custom_kernels import ntt as kntt
from mlx_stark.errors import InvalidInputError
from mlx_stark.field import bb
from mlx_stark.field.bb import P
from mlx_stark.poly import mle

from .kernel_helpers import check_twins, emulation, needs_native, route

SHAPES = [  # (shape, axis)
    ((1 << 11, 4), 0),
    ((1 << 6,), 0),
    ((3, 1 << 7, 4), 1),
    ((1 << 5, 3), 0),
    ((2, 5, 1 << 3), 2),
    ((1, 4), 0),
    ((2,), 0),
]


def test_plan_covers_every_bit():
    for d in range(0, 30):
        plan = kntt.subset_plan(d)
        assert sum(plan) == d and all(1 <= r <= kntt.MAX_LOG_SUBSET for r in plan)
        assert len(plan) == -(-d // kntt.MAX_LOG_SUBSET)


def test_sources():
    for r in range(1, kntt.MAX_LOG_SUBSET + 1):
        for inverse in (False, True):
            src = kntt.subset_source(r, inverse)
            check_twins(src)
            assert ("bb_sub" in src.body) == inverse and "SHARED" not in src.body


def test_bad_length():
    with pytest.raises(InvalidInputError):
        kntt.subset_transform(mx.zeros((6, 4), dtype=mx.uint32), 0, False)


emulated = emulation(kntt)


@pytest.mark.parametrize("case", SHAPES)
def test_emulated_equals_ops(emulated, case):
    shape, axis = case
    x = bb.random(shape, sum(shape) + axis)
    for kernel, ops in ((kntt.zeta, mle.zeta), (kntt.mobius, mle.mobius)):
        got = kernel(x, axis)
        want = ops(x, axis=axis)  # the ops path (the CPU is the device)
        assert got.shape == x.shape and got.dtype == mx.uint32
        np.testing.assert_array_equal(np.array(got), np.array(want))
    np.testing.assert_array_equal(np.array(kntt.mobius(kntt.zeta(x, axis), axis)), np.array(x))


def test_emulated_extreme_values(emulated):
    x = mx.array(np.full((1 << 9, 4), P - 1, dtype=np.uint32))
    np.testing.assert_array_equal(np.array(kntt.zeta(x)), np.array(mle.zeta(x)))
    np.testing.assert_array_equal(np.array(kntt.mobius(x)), np.array(mle.mobius(x)))


def test_emulated_proofs_match_golden(emulated, monkeypatch):
    """Whole proofs with every whole-axis zeta and Möbius transform on the kernels."""
    from .golden import fingerprint, golden_workloads
    from .test_golden_fingerprints import GOLDEN

    calls = route(monkeypatch, {"mle.zeta": kntt.zeta, "mle.mobius": kntt.mobius})
    for w in golden_workloads():
        assert fingerprint(w) == GOLDEN[w.name], w.name
    assert {"mle.zeta", "mle.mobius"} <= set(calls)


@needs_native
def test_device_equals_ops(reference):
    for shape, axis in SHAPES + [((1 << 21, 4), 0)]:
        x = bb.random(shape, 5)
        for fn in (mle.zeta, mle.mobius):
            got = np.array(fn(x, axis=axis))
            np.testing.assert_array_equal(got, reference(lambda: np.array(fn(x, axis=axis))))
