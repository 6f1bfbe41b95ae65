"""Coset low-degree extension of short blocks: :func:`mlx_stark.poly.coset_lde` and its
``ntt.coset_lde`` kernel (mlx_stark.custom_kernels.ntt.coset_lde), used by round 0 of the
batch constraint sumcheck.

- host: the result equals a naive Lagrange interpolation on tiny cases; bad arguments raise
  ``InvalidInputError``; the matrices are the circulant Lagrange maps;
- source (its structure in both dialects, for every ``N`` up to 32:
  tests/test_custom_kernels.py): the prelude's fold and reduction, one reduction per output,
  no shared memory and no pointers;
- emulation (needs g++): the rendered CUDA and Metal sources run as C++ on the CPU (see
  tests/kernel_helpers.py) and equal the MLX-ops path on awkward shapes and shifts, split
  over several launches, and inside round 0 of a proof;
- device: on a GPU with native kernels, ``coset_lde`` equals the ops path on the CPU.
"""
import re

import mlx.core as mx
import numpy as np
import pytest

from mlx_stark.airs import mixture_fixture_standard
from mlx_stark.custom_kernels import render
from mlx_stark.custom_kernels import ntt as kntt
from mlx_stark.custom_kernels.prelude import mont
from mlx_stark.errors import InvalidInputError
from mlx_stark.field import bb
from mlx_stark.field.bb import GENERATOR, P, two_adic_generator
from mlx_stark.params import default_test_params_small
from mlx_stark.poly import coset_lde
from mlx_stark.poly import ntt as pntt

from .kernel_helpers import arrays_equal, emulation, needs_native, route
from .test_batch_constraints import prove_stage

SIZES = (1, 2, 4, 8, 16, 32)


def _naive(values: list, shifts: list) -> list:
    """``f(s·ω^i)`` for every shift ``s`` and ``i < N``, ``f`` the Lagrange interpolant of
    ``values`` on ``⟨ω_N⟩`` (host ints)."""
    n = len(values)
    w = two_adic_generator(n.bit_length() - 1)
    dom = [pow(w, k, P) for k in range(n)]

    def f(x):
        total = 0
        for j, v in enumerate(values):
            term = v
            for k in range(n):
                if k != j:
                    term = term * (x - dom[k]) % P * pow(dom[j] - dom[k], P - 2, P) % P
            total += term
        return total % P

    return [[f(s * dom[i] % P) for i in range(n)] for s in shifts]


def _shifts(n: int, count: int) -> list:
    """``count`` shifts: the powers of the generator, then a point of ``D`` (the coset is
    ``D`` itself) and 0 (every point is 0)."""
    extra = [pow(two_adic_generator(n.bit_length() - 1), 3 % n, P), 0]
    return ([pow(GENERATOR, i, P) for i in range(1, count + 1)] + extra)[:count]


# ---------------------------------------------------------------- host
@pytest.mark.parametrize("lead, n", [((7, 5), 8), ((33,), 4), ((2, 3, 2), 16)])
def test_ops_chunks_equal_one_pass(monkeypatch, lead, n):
    """The ops path extends large inputs a chunk of rows at a time (uneven last chunk, several
    leading axes); the result equals one pass over all rows and the naive interpolation."""
    shifts = [GENERATOR, pow(GENERATOR, 2, P), 0]
    values = bb.random(lead + (n,), n + len(lead))
    whole = np.array(pntt.coset_lde_ops(values, shifts))
    monkeypatch.setattr(pntt, "_LDE_OPS_CHUNK_ELEMS", 3 * n * 4)  # 4 rows per chunk
    chunked = np.array(pntt.coset_lde_ops(values, shifts))
    assert chunked.shape == lead + (3, n) and np.array_equal(chunked, whole)
    flat, rows = np.array(values).reshape(-1, n), chunked.reshape(-1, 3, n)
    for r in (0, flat.shape[0] - 1):
        assert rows[r].tolist() == _naive(flat[r].tolist(), shifts)


@pytest.mark.parametrize("n", [1, 2, 4, 8])
def test_matches_naive_interpolation(n):
    shifts = [GENERATOR, pow(GENERATOR, 2, P), 1, 0, pow(two_adic_generator(3), 5, P)]
    values = bb.random((3, n), n)
    got = np.array(coset_lde(values, shifts))
    assert got.shape == (3, len(shifts), n)
    for r, row in enumerate(np.array(values).tolist()):
        assert got[r].tolist() == _naive(row, shifts), r


def test_matrices_are_lagrange_maps():
    for n in SIZES:
        mats = np.array(kntt.coset_lde_matrices(n, (1, GENERATOR))).reshape(2, n, n)
        assert mats[0].tolist() == np.diag([mont(1)] * n).tolist()  # s = 1: the identity
        inv_r = pow(1 << 32, P - 2, P)
        plain = [[int(x) * inv_r % P for x in row] for row in mats[1]]
        for i in range(n):
            assert plain[i] == [plain[0][(j - i) % n] for j in range(n)]  # circulant
        if n <= 8:  # column j: the unit vector e_j interpolated, i.e. L_j(g·ω^i)
            for j in range(n):
                unit = [int(j == k) for k in range(n)]
                assert [row[j] for row in plain] == _naive(unit, [GENERATOR])[0]


def test_bad_arguments():
    with pytest.raises(InvalidInputError):
        coset_lde(bb.random((4, 3), 0), [GENERATOR])
    with pytest.raises(InvalidInputError):
        coset_lde(bb.random((4, 0), 0), [GENERATOR])
    with pytest.raises(InvalidInputError):
        coset_lde(bb.random((4, 8), 0), [])
    with pytest.raises(InvalidInputError):
        coset_lde(bb.random((4, 8), 0), [P])
    with pytest.raises(InvalidInputError):
        coset_lde(mx.array(3, dtype=mx.uint32), [GENERATOR])
    for n in (0, 3, 64):
        with pytest.raises(ValueError):
            kntt.coset_lde_source(n)


# ---------------------------------------------------------------- sources
def test_sources():
    for n in SIZES:
        src = kntt.coset_lde_source(n)
        assert src.input_names == ("values", "mats", "params") and src.output_names == ("out",)
        # the fold and the reduction come from the shared prelude, one reduction per output
        header, _ = render(src, "cuda")
        assert "KFN uint64_t bb_fold" in header and "KFN uint32_t bb_redc" in header and not src.header
        assert src.body.count("bb_redc(") == 1 and src.body.count("mul_wide(") == n
        assert src.body.count("bb_fold(") == max(0, n // 2 - 1)
        assert "SHARED" not in src.body and not re.search(r"uint32_t\s*\*", src.body)


# ---------------------------------------------------------------- CPU emulation of the sources
emulated = emulation(kntt)


CASES = [((3, 5, 16), 1), ((3, 5, 16), 3), ((7, 1), 2), ((2, 3, 2), 3), ((5, 8), 4), ((3, 32), 2),
         ((2, 2, 32), 3), ((4,), 1), ((1, 16), 2)]


@pytest.mark.parametrize("shape, count", CASES)
def test_emulated_equals_ops(emulated, shape, count):
    n = shape[-1]
    shifts = _shifts(n, count)
    values = bb.random(shape, sum(shape) + count)
    got = kntt.coset_lde(values, shifts)
    assert got.shape == shape[:-1] + (count, n)
    assert arrays_equal(got, pntt.coset_lde_ops(values, shifts)), (shape, shifts)


def test_emulated_extreme_values(emulated):
    # every value p − 1: the largest products the accumulator sees
    for n in (16, 32):
        values = mx.full((3, n), P - 1, dtype=mx.uint32)
        shifts = _shifts(n, 2)
        assert arrays_equal(kntt.coset_lde(values, shifts), pntt.coset_lde_ops(values, shifts)), n


def test_emulated_split_launches(emulated, monkeypatch):
    monkeypatch.setattr(kntt, "MAX_LAUNCH_THREADS", 64)
    values = bb.random((5, 41, 8), 3)
    shifts = _shifts(8, 3)
    assert arrays_equal(kntt.coset_lde(values, shifts), pntt.coset_lde_ops(values, shifts))
    assert kntt.coset_lde(values[:0], shifts).shape == (0, 41, 3, 8)


def test_emulated_long_blocks_use_ops(emulated, monkeypatch):
    def no_launch(*args, **kwargs):
        raise AssertionError("blocks longer than 32 run the MLX-ops path")

    monkeypatch.setattr(kntt, "launch", no_launch)
    values = bb.random((3, 64), 4)
    shifts = _shifts(64, 2)
    assert arrays_equal(kntt.coset_lde(values, shifts), pntt.coset_lde_ops(values, shifts))


def test_emulated_round0_unchanged(emulated, monkeypatch):
    """The constraint stage with ``coset_lde`` on the emulated kernel gives the same proof
    (12 AIRs, zerocheck and LogUp, one and two cosets)."""
    params = default_test_params_small()
    fx = mixture_fixture_standard(3)
    *_, (gkr, batch, r), _ = prove_stage(fx, params)
    calls = route(monkeypatch, {"ntt.coset_lde": kntt.coset_lde})
    *_, (gkr_k, batch_k, r_k), _ = prove_stage(fx, params)
    assert calls and gkr_k == gkr and batch_k == batch and r_k == r


# ---------------------------------------------------------------- on the GPU (CUDA or Metal)
@needs_native
@pytest.mark.parametrize("shape, count", CASES + [((300, 257, 16), 2), ((1000, 33, 4), 5), ((9, 64), 2)])
def test_device_coset_lde(reference, shape, count):
    n = shape[-1]
    shifts = _shifts(n, count)
    values = bb.random(shape, n + count)
    assert arrays_equal(coset_lde(values, shifts), reference(lambda: coset_lde(values, shifts))), (shape, count)
    # a strided block, as round 0 slices its (Wn, X, N) columns
    if len(shape) == 3:
        part = values[:, 1:]
        assert arrays_equal(coset_lde(part, shifts), reference(lambda: coset_lde(part, shifts)))
