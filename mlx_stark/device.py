"""Which device MLX runs on, which kernel path is active, and process-wide set-up.

Environment overrides:
- ``MLX_STARK_DEVICE=cpu|gpu`` — force the default MLX device (else MLX's default).
- ``MLX_STARK_KERNELS=auto|native|ops`` — custom kernels (``native``) or the pure MLX-ops
  reference (``ops``); ``auto`` uses native kernels where the running device has them.
- ``MLX_STARK_FUSE=0|1`` — on CUDA with native kernels, whether :func:`fused` functions run as
  ``mx.compile`` graphs (``1``) or as our kernels and plain ops (``0``, :data:`FUSE_DEFAULT`).
- ``MLX_STARK_COMPILE_SEGMENTS=0|1`` — on the native path, whether keyed device transcript
  segments replay as compiled graphs (:func:`mlx_stark.transcript.device_segment`; unset:
  on CUDA, off on Metal, :data:`COMPILE_SEGMENTS_DEFAULT`).

A bad value does not fail ``import mlx_stark`` (``mlx-stark info`` must still show it): it
raises :class:`~mlx_stark.errors.ConfigError` at the first kernel selection, i.e. in the first
proof, or up front from :func:`check_env`.
"""
from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import shutil
import sys
import threading

import mlx.core as mx

from .errors import ConfigError

_VALID_DEVICES = ("cpu", "gpu")
_VALID_KERNELS = ("auto", "native", "ops")
_setup_done = False
_env_error: ConfigError | None = None


def setup() -> None:
    """One-time process set-up; idempotent. Called on ``import mlx_stark``."""
    global _setup_done, _env_error
    if _setup_done:
        return
    _setup_done = True
    want = os.environ.get("MLX_STARK_DEVICE", "").strip().lower()
    if want:
        try:
            set_device(want)
        except ConfigError as e:
            _env_error = ConfigError(f"MLX_STARK_DEVICE={want}: {e}")
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
    if name not in _VALID_DEVICES:
        raise ConfigError(f"device must be one of {', '.join(_VALID_DEVICES)}, got {name!r}")
    if name == "gpu" and not mx.is_available(mx.gpu):
        raise ConfigError("no GPU backend available to MLX on this machine (use cpu)")
    mx.set_default_device(mx.gpu if name == "gpu" else mx.cpu)


@functools.lru_cache(maxsize=None)
def _gpu_backend() -> str:
    """What MLX's GPU device runs on (fixed for the process)."""
    if mx.metal.is_available():
        return "metal"
    if mx.cuda.is_available():
        return "cuda"
    return "cpu"


def backend() -> str:
    """``metal``, ``cuda`` or ``cpu``: what the current default device runs on."""
    if mx.default_device().type == mx.DeviceType.cpu:
        return "cpu"
    return _gpu_backend()


def available_devices() -> list[str]:
    """Devices present here: always ``cpu``; ``gpu`` when MLX has a GPU backend."""
    return ["cpu", "gpu"] if mx.is_available(mx.gpu) else ["cpu"]


def _kernels_env() -> str:
    return os.environ.get("MLX_STARK_KERNELS", "auto").strip().lower() or "auto"


def kernel_mode() -> str:
    mode = _kernels_env()
    if mode not in _VALID_KERNELS:
        raise ConfigError(f"MLX_STARK_KERNELS must be one of {', '.join(_VALID_KERNELS)}, "
                          f"got {mode!r}")
    return mode


_SETTLED = threading.local()  # .value: (native_kernels_active, fusing) inside settled()


@contextlib.contextmanager
def settled():
    """Within the block (a proof), the device and the kernel and fusion settings are read once:
    a proof asks :func:`native_kernels_active` and :func:`fusing` thousands of times, and each
    environment read costs host time. Settings changed inside the block take effect after it."""
    prev = getattr(_SETTLED, "value", None)
    _SETTLED.value = None
    value = (native_kernels_active(), fusing())
    _SETTLED.value = value
    try:
        yield
    finally:
        _SETTLED.value = prev


def native_kernels_active() -> bool:
    """True when custom (Metal/CUDA) kernels run instead of the MLX-ops reference. Every
    kernel selection asks this, so a bad environment setting raises :class:`ConfigError` here."""
    value = getattr(_SETTLED, "value", None)
    if value is not None:
        return value[0]
    if _env_error is not None:
        raise _env_error
    mode = kernel_mode()
    if mode == "ops":
        return False
    has_native = backend() in ("metal", "cuda")
    if mode == "native" and not has_native:
        raise ConfigError("MLX_STARK_KERNELS=native but the device has no custom-kernel backend")
    return has_native


# What fused() does on CUDA with native kernels when MLX_STARK_FUSE is unset: our field
# kernels and plain ops. Measured on one H100 (docs/tracking/cold-start.md): warm fib 2^20 0.217 s
# against 0.33-0.37 s fused, LogUp x65536 0.329 against 0.41 s, and no fused-graph compiles
# (each 5-35 s of a machine's first proof).
FUSE_DEFAULT = "0"


def fusing() -> bool:
    """Whether :func:`fused` functions run as ``mx.compile`` graphs: always on CPU and Metal;
    on CUDA with native kernels per ``MLX_STARK_FUSE`` (``1``: fused; ``0``: the field
    arithmetic as our own kernels, one launch per call, and plain ops: no fused-graph compile,
    each of which costs 5-35 s of a machine's first proof)."""
    value = getattr(_SETTLED, "value", None)
    if value is not None:
        return value[1]
    if backend() != "cuda" or not native_kernels_active():
        return True
    return _fuse_env() == "1"


def _fuse_env() -> str:
    fuse = os.environ.get("MLX_STARK_FUSE", FUSE_DEFAULT).strip() or FUSE_DEFAULT
    if fuse not in ("0", "1"):
        raise ConfigError(f"MLX_STARK_FUSE must be 0 or 1, got {fuse!r}")
    return fuse


def fused(fn=None, *, native: str | None = None):
    """``fn`` under ``mx.compile`` where :func:`fusing`; elsewhere the kernel registered as
    ``native`` in :mod:`mlx_stark.custom_kernels` (when it serves the arguments), else ``fn`` as
    plain MLX ops. Use as ``@fused`` or ``@fused(native="bb.mul")``."""
    if fn is None:
        return functools.partial(fused, native=native)
    compiled = mx.compile(fn)

    @functools.wraps(fn)
    def call(*args):
        if fusing():
            return compiled(*args)
        out = unfused_native(native, *args) if native is not None else None
        return fn(*args) if out is None else out

    return call


def unfused_native(operation: str, *args):
    """Where fusion is off (CUDA with native kernels), the kernel registered as ``operation``
    in :mod:`mlx_stark.custom_kernels` applied to ``args``: its result, or ``None`` where it
    declines them; ``None`` elsewhere. For the field functions between kernels (:func:`fused`,
    and those that cannot be fused graphs, like sums), whose callers run the MLX ops on ``None``."""
    if fusing():
        return None
    from . import custom_kernels
    return custom_kernels.resolve(operation)(*args)


# Whether keyed device segments replay as compiled graphs when MLX_STARK_COMPILE_SEGMENTS is
# unset, per GPU backend: on CUDA (an H100: fib 56.9 -> 45.0 ms, LogUp 84.8 -> 70.4 ms, keccakf
# unchanged, no kernel of MLX's own compiled; milestone-10.md, the fourteenth session); off on
# Metal, where they have never run.
COMPILE_SEGMENTS_DEFAULT = {"cuda": "1", "metal": "0", "cpu": "0"}


def compile_segments() -> bool:
    """Whether keyed device segments may run as compiled graphs (``MLX_STARK_COMPILE_SEGMENTS``,
    else the running backend's :data:`COMPILE_SEGMENTS_DEFAULT`)."""
    default = COMPILE_SEGMENTS_DEFAULT[backend()]
    value = os.environ.get("MLX_STARK_COMPILE_SEGMENTS", default).strip() or default
    if value not in ("0", "1"):
        raise ConfigError(f"MLX_STARK_COMPILE_SEGMENTS must be 0 or 1, got {value!r}")
    return value == "1"


def check_env() -> None:
    """Raise now the :class:`ConfigError` that a bad setting would raise in the first proof
    (``MLX_STARK_FUSE`` and ``MLX_STARK_COMPILE_SEGMENTS`` are checked on every device, though
    only the native path reads them)."""
    native_kernels_active()
    _fuse_env()
    compile_segments()


def compiler_warning() -> str | None:
    """Why proofs will be slow here, or None. On CPU, ``mx.compile`` fuses a graph into C++
    built by running ``g++`` (that exact name, from MLX's JIT); without it MLX silently runs
    the graph unfused, several times slower (7x measured on a keccakf proof)."""
    if backend() == "cpu" and shutil.which("g++") is None:
        return ("g++ not found on PATH: mx.compile cannot fuse kernels on CPU, "
                "so proofs run about 7x slower")
    return None


def _meminfo_bytes(path: str, key: str) -> int | None:
    """A ``key: N kB`` line of a /proc file, in bytes."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def available_memory() -> int | None:
    """Bytes of host memory this process can still take: the least of the kernel's
    ``MemAvailable`` (else free or total physical memory), the cgroup-v2 (container) limit
    left and the address-space rlimit left; None where none can be read."""
    found = [_meminfo_bytes("/proc/meminfo", "MemAvailable:")]
    if found[0] is None:
        for pages in ("SC_AVPHYS_PAGES", "SC_PHYS_PAGES"):  # macOS has only the latter
            try:
                found[0] = os.sysconf(pages) * os.sysconf("SC_PAGE_SIZE")
                break
            except (ValueError, OSError):
                pass
    try:
        with open("/sys/fs/cgroup/memory.max") as lim, open("/sys/fs/cgroup/memory.current") as cur:
            found.append(int(lim.read()) - int(cur.read()))  # "max" (no limit): ValueError
    except (OSError, ValueError):
        pass
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        if soft != resource.RLIM_INFINITY:
            found.append(soft - (_meminfo_bytes("/proc/self/status", "VmSize:") or 0))
    except ImportError:  # Windows
        pass
    found = [b for b in found if b is not None]
    return min(found) if found else None


def info() -> dict:
    """Versions, device and kernel path; a bad setting shows as ``config_error``, not a raise."""
    import numpy

    try:
        check_env()
        problem = None
    except ConfigError as e:
        problem = str(e)
    return {
        "mlx": mx.__version__,
        "numpy": numpy.__version__,
        "python": sys.version.split()[0],
        "device": str(mx.default_device()),
        "backend": backend(),
        "available_devices": available_devices(),
        "kernel_mode": _kernels_env(),
        "native_kernels": None if problem else native_kernels_active(),
        "cxx_compiler": shutil.which("g++"),
        "config_error": problem,
    }
