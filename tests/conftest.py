"""Shared fixtures: run device-sensitive tests on every device MLX offers here; the kernel
tests' build folder of emulated kernels and GPU-vs-reference fixture (tests/kernel_helpers.py)."""
import mlx.core as mx
import pytest

from mlx_stark import device as _device

from .kernel_helpers import emulator_dir, reference  # noqa: F401 (fixtures)

DEVICES = _device.available_devices()


@pytest.fixture(params=DEVICES)
def on_device(request):
    """Run the test with ``request.param`` (``cpu`` / ``gpu``) as MLX's default device."""
    prev = mx.default_device()
    _device.set_device(request.param)
    try:
        yield request.param
    finally:
        mx.set_default_device(prev)
