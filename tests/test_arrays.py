"""mlx_stark.arrays.transpose: values and typed errors."""
import mlx.core as mx
import numpy as np
import pytest

from mlx_stark import arrays
from mlx_stark.errors import InvalidInputError

SHAPES = [(1, 1), (1, 37), (33, 1), (32, 32), (31, 65), (3, 70, 33), (2, 2, 100, 7)]


def test_transpose_swaps_the_last_two_axes():
    for i, shape in enumerate(SHAPES):
        x = mx.array(np.random.default_rng(i).integers(0, 2**32, size=shape, dtype=np.uint32))
        got = arrays.transpose(x)
        assert got.shape == shape[:-2] + (shape[-1], shape[-2])
        assert np.array_equal(np.array(got), np.swapaxes(np.array(x), -1, -2)), shape


def test_bad_inputs():
    with pytest.raises(InvalidInputError):
        arrays.transpose(mx.zeros((4,), dtype=mx.uint32))
    with pytest.raises(InvalidInputError):
        arrays.transpose(mx.zeros((2, 2), dtype=mx.int32))

