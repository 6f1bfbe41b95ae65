"""Which device MLX runs on, which kernel path is active, and process-wide set-up.

Environment overrides:
- ``MLX_STARK_DEVICE=cpu|gpu`` — force the default MLX device (else MLX's default).
- ``MLX_STARK_KERNELS=auto|native|ops`` — custom kernels (``native``) or the pure MLX-ops
  reference (``ops``); ``auto`` uses native kernels where the running device has them.
"""
from __future__ import annotations

import ctypes
import os
import sys

import mlx.core as mx

_VALID_DEVICES = ("cpu", "gpu")
_VALID_KERNELS = ("auto", "native", "ops")
_setup_done = False


def setup() -> None:
    """One-time process set-up; idempotent. Called on ``import mlx_stark``."""
    global _setup_done
    if _setup_done:
        return
    _setup_done = True
    want = os.environ.get("MLX_STARK_DEVICE", "").strip().lower()
    if want:
        if want not in _VALID_DEVICES:
            raise ValueError(f"MLX_STARK_DEVICE must be one of {_VALID_DEVICES}, got {want!r}")
        set_device(want)
    if sys.platform.startswith("linux") and backend() == "cpu":
        # Large MLX temporaries (>= 32 MiB) are fresh glibc mmaps by default, and every page
        # faults on first touch: raising the mmap/trim thresholds lets malloc recycle them,
        # which halves the cost of 2^24-element elementwise ops on CPU.
        try:
            libc = ctypes.CDLL("libc.so.6")
            libc.mallopt(-3, ctypes.c_int(1 << 30))  # M_MMAP_THRESHOLD
            # M_TRIM_THRESHOLD = -1 (never trim): a prover's working set peaks at several GiB,
            # and giving the heap top back after each stage made the next one fault it all in
            # again (6x the page faults in a 2^22 x 42 RS encoding).
            libc.mallopt(-1, ctypes.c_int(-1))
        except OSError:
            pass


def set_device(name: str) -> None:
    """Make ``cpu`` or ``gpu`` the default MLX device."""
    if name == "gpu":
        if not mx.is_available(mx.gpu):
            raise RuntimeError("no GPU backend available to MLX on this machine")
        mx.set_default_device(mx.gpu)
    elif name == "cpu":
        mx.set_default_device(mx.cpu)
    else:
        raise ValueError(f"device must be one of {_VALID_DEVICES}, got {name!r}")


def backend() -> str:
    """``metal``, ``cuda`` or ``cpu``: what the current default device runs on."""
    if mx.default_device().type == mx.DeviceType.cpu:
        return "cpu"
    if mx.metal.is_available():
        return "metal"
    if mx.cuda.is_available():
        return "cuda"
    return "cpu"


def available_devices() -> list[str]:
    """Devices present here: always ``cpu``; ``gpu`` when MLX has a GPU backend."""
    return ["cpu", "gpu"] if mx.is_available(mx.gpu) else ["cpu"]


def kernel_mode() -> str:
    mode = os.environ.get("MLX_STARK_KERNELS", "auto").strip().lower() or "auto"
    if mode not in _VALID_KERNELS:
        raise ValueError(f"MLX_STARK_KERNELS must be one of {_VALID_KERNELS}, got {mode!r}")
    return mode


def native_kernels_active() -> bool:
    """True when custom (Metal/CUDA) kernels run instead of the MLX-ops reference."""
    mode = kernel_mode()
    if mode == "ops":
        return False
    has_native = backend() in ("metal", "cuda")
    if mode == "native" and not has_native:
        raise RuntimeError("MLX_STARK_KERNELS=native but the device has no custom-kernel backend")
    return has_native


def info() -> dict:
    import numpy

    return {
        "mlx": mx.__version__,
        "numpy": numpy.__version__,
        "python": sys.version.split()[0],
        "device": str(mx.default_device()),
        "backend": backend(),
        "available_devices": available_devices(),
        "kernel_mode": kernel_mode(),
        "native_kernels": native_kernels_active(),
    }
