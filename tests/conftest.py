"""Shared fixtures: run device-sensitive tests on every device MLX offers here."""
import mlx.core as mx
import pytest

from mlx_stark import device as _device

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
