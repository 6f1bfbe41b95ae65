"""mlx_stark.arrays.transpose: ops reference, the tiled kernel (C++ emulation of both
dialects, and the device where present), typed errors."""
import mlx.core as mx
import numpy as np
import pytest

from mlx_stark import arrays, custom_kernels, device
from mlx_stark.custom_kernels import DIALECTS, render
from mlx_stark.custom_kernels import transpose as ktr
from mlx_stark.errors import InvalidInputError

from .test_custom_kernels import _emulated_launch

SHAPES = [(1, 1), (1, 37), (33, 1), (32, 32), (31, 65), (3, 70, 33), (2, 2, 100, 7)]


def _random(shape, seed):
    return mx.array(np.random.default_rng(seed).integers(0, 2**32, size=shape, dtype=np.uint32))


def test_reference_swaps_the_last_two_axes():
    for i, shape in enumerate(SHAPES):
        x = _random(shape, i)
        got = np.array(arrays.transpose(x))
        assert np.array_equal(got, np.swapaxes(np.array(x), -1, -2)), shape


def test_bad_inputs():
    with pytest.raises(InvalidInputError):
        arrays.transpose(mx.zeros((4,), dtype=mx.uint32))
    with pytest.raises(InvalidInputError):
        arrays.transpose(mx.zeros((2, 2), dtype=mx.int32))


def test_source_renders_in_both_dialects():
    src = ktr.transpose_source()
    for d in DIALECTS:
        header, body = render(src, d)
        assert "SHARED uint32_t tile[" in body and body.count("BARRIER()") == 1, d


@pytest.fixture(params=DIALECTS)
def emulated(request, tmp_path, monkeypatch):
    import shutil
    if shutil.which("g++") is None:
        pytest.skip("g++ is needed to emulate kernels on the CPU")
    monkeypatch.setattr(ktr, "launch", _emulated_launch(request.param, tmp_path))
    return request.param


@pytest.mark.parametrize("shape", [(1, 1, 1), (1, 31, 65), (2, 64, 32), (3, 5, 97), (1, 100, 3)])
def test_emulated_kernel_equals_reference(emulated, shape):
    x = _random(shape, sum(shape))
    assert np.array_equal(np.array(ktr.transpose(x)), np.swapaxes(np.array(x), 1, 2))


def test_emulated_kernel_splits_many_matrices(emulated, monkeypatch):
    monkeypatch.setattr(ktr, "MAX_BLOCKS_Y", 2)
    x = _random((5, 33, 9), 7)
    assert np.array_equal(np.array(ktr.transpose(x)), np.swapaxes(np.array(x), 1, 2))


@pytest.mark.skipif(device.backend() not in DIALECTS, reason="needs a CUDA or Metal device")
def test_device_kernel_equals_reference(monkeypatch):
    for shape in [(1 << 15, 2633), (2, 65, 1000), (1 << 21, 42)]:
        x = _random(shape, 1)
        got = arrays.transpose(x)
        monkeypatch.setenv("MLX_STARK_KERNELS", "ops")
        ref = arrays.transpose(x)
        monkeypatch.delenv("MLX_STARK_KERNELS")
        assert custom_kernels.native("layout.transpose") is not None
        assert mx.array_equal(got, ref).item(), shape
