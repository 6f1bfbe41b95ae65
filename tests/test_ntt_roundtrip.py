"""DFT / iDFT over two-adic subgroups: naive-DFT agreement and round trips."""
import mlx.core as mx
import numpy as np
import pytest

from mlx_stark.errors import InvalidInputError
from mlx_stark.field import P, bb, ext, two_adic_generator
from mlx_stark.poly import dft, idft
from mlx_stark.poly.ntt import lde


def _naive_dft(x: np.ndarray, inverse: bool = False) -> np.ndarray:
    """Python-int DFT along axis 0 of an (n, k) array."""
    n = x.shape[0]
    w = two_adic_generator(n.bit_length() - 1)
    if inverse:
        w = pow(w, P - 2, P)
    xs = x.astype(object)
    mat = np.array([[pow(w, i * j, P) for j in range(n)] for i in range(n)], dtype=object)
    out = mat.dot(xs) % P
    if inverse:
        out = out * pow(n, P - 2, P) % P
    return out.astype(np.uint64).astype(np.uint32)


@pytest.mark.parametrize("log_n", range(0, 7))
def test_dft_matches_naive_base(on_device, log_n):
    x = bb.random((1 << log_n, 3), seed=log_n)
    xn = np.array(x)
    assert np.array_equal(np.array(dft(x)), _naive_dft(xn))
    assert np.array_equal(np.array(idft(x)), _naive_dft(xn, inverse=True))


@pytest.mark.parametrize("log_n", [0, 1, 3, 5])
def test_dft_matches_naive_extension(on_device, log_n):
    x = ext.random((1 << log_n, 2), seed=100 + log_n)  # (n, 2, 4)
    ref = _naive_dft(np.array(x).reshape(1 << log_n, 8)).reshape(x.shape)
    assert np.array_equal(np.array(dft(x)), ref)


def test_dft_of_single_column_and_unit_vectors(on_device):
    n = 16
    w = two_adic_generator(4)
    e1 = mx.array(np.eye(n, dtype=np.uint32)[1])  # coefficients of X
    assert np.array(dft(e1)).tolist() == [pow(w, i, P) for i in range(n)]
    ones = mx.ones((n,), dtype=mx.uint32)
    assert np.array(idft(ones)).tolist() == [1] + [0] * (n - 1)


@pytest.mark.parametrize("log_n", [1, 2, 4, 7, 9, 10, 12])
@pytest.mark.parametrize("width", [1, 3, 8])
def test_roundtrip_many_sizes(on_device, log_n, width):
    x = bb.random((1 << log_n, width), seed=log_n * 31 + width)
    y = dft(x)
    assert np.array_equal(np.array(idft(y)), np.array(x))
    assert np.array_equal(np.array(dft(idft(x))), np.array(x))


def test_roundtrip_extension_and_other_axis(on_device):
    x = ext.random((2 << 10, 5), seed=7)  # (2^11, 5, 4)
    assert np.array_equal(np.array(idft(dft(x))), np.array(x))
    y = bb.random((3, 64, 2), seed=8)  # transform along axis 1
    assert np.array_equal(np.array(idft(dft(y, axis=1), axis=1)), np.array(y))
    per_batch = np.stack([np.array(dft(y[b])) for b in range(3)])
    assert np.array_equal(np.array(dft(y, axis=1)), per_batch)


@pytest.mark.parametrize("log_blowup", [0, 1, 2, 3])
def test_lde_equals_dft_of_zero_padded(on_device, log_blowup):
    coeffs = ext.random((32, 3), seed=40 + log_blowup)  # (32, 3, 4) extension coefficients
    padded = mx.concatenate([coeffs, mx.zeros((32 * ((1 << log_blowup) - 1), 3, 4), dtype=mx.uint32)])
    assert np.array_equal(np.array(lde(coeffs, log_blowup)), np.array(dft(padded)))
    base = bb.random((8,), seed=50)
    padded = mx.concatenate([base, mx.zeros((8 * ((1 << log_blowup) - 1),), dtype=mx.uint32)])
    assert np.array_equal(np.array(lde(base, log_blowup)), np.array(dft(padded)))


@pytest.mark.parametrize("extra", [0, 1, 3])
def test_dft_of_a_given_size_pads_with_zeros(on_device, extra):
    """``dft(x, size=...)`` is the DFT of ``x`` zero-padded to ``size`` rows (WHIR's codewords)."""
    x = ext.random((16, 1), seed=60 + extra)  # (16, 1, 4)
    padded = mx.concatenate([x, mx.zeros((16 * ((1 << extra) - 1), 1, 4), dtype=mx.uint32)])
    got = dft(x, size=16 << extra)
    assert got.shape == padded.shape and np.array_equal(np.array(got), np.array(dft(padded)))
    with pytest.raises(InvalidInputError):
        dft(x, size=8)


def test_rejects_non_power_of_two():
    with pytest.raises(ValueError):
        dft(mx.zeros((12, 2), dtype=mx.uint32))
