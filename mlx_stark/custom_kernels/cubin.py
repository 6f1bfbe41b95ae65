"""Our CUDA kernels compiled once per machine: NVRTC to a cubin kept on disk, launched with
``mx.fast.precompiled_cuda_kernel``.

Why: MLX 0.32 compiles an ``mx.fast.cuda_kernel`` with NVRTC in every new process and never
writes it to its PTX cache (its ``CustomKernel`` asks for no disk cache, as a name may come back
with another source), so each process spent tens of seconds recompiling our kernels before its
first proof (docs/tracking/cold-start.md). Our sources are plain CUDA (the prelude's macros and
``blockIdx``/``threadIdx``, no MLX headers), so they compile here without MLX's include tree, in
a fraction of the time, and the cubin is stored under ``<cache root>/cubin/`` by a digest of the
source, the architecture and the NVRTC version.

Where NVRTC or the driver query is missing, or a compile fails, :func:`kernel` returns ``None``
and the caller launches through ``mx.fast.cuda_kernel`` as before (same source, same results).
``MLX_STARK_CUBIN=0`` turns this path off.
"""
from __future__ import annotations

import ctypes
import glob
import hashlib
import os
import sys
import threading
from concurrent.futures import Future
from pathlib import Path
from typing import Optional

from .. import cache

# Fixed-width names the kernels use; NVRTC has no standard headers without an include path.
_TYPES = """\
typedef unsigned char uint8_t;
typedef unsigned short uint16_t;
typedef unsigned int uint32_t;
typedef unsigned long long uint64_t;
typedef int int32_t;
typedef long long int64_t;
"""

_LOCK = threading.Lock()
_STATE: dict = {}  # "nvrtc" / "arch" -> loaded library / "sm_XY", or None once found missing
_PENDING: dict = {}  # cubin path -> Future of the compile of it running in this process


def enabled() -> bool:
    return os.environ.get("MLX_STARK_CUBIN", "1") != "0"


def full_source(name: str, input_names, output_names, header: str, body: str) -> str:
    """One CUDA translation unit: ``extern "C" __global__ void name(inputs..., outputs...)``,
    every argument a ``uint32_t`` pointer, inputs first: the order MLX passes a precompiled
    kernel's arrays in."""
    params = ([f"const uint32_t* __restrict__ {n}" for n in input_names]
              + [f"uint32_t* __restrict__ {n}" for n in output_names])
    return (_TYPES + header + f'\nextern "C" __global__ void {name}({", ".join(params)}) {{\n'
            + body + "}\n")


def _load_nvrtc():
    """The NVRTC library: the one MLX loaded, else the CUDA toolkit's, else a pip wheel's."""
    names = ["libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so"]
    dirs = [os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda"]
    candidates = list(names)
    for d in filter(None, dirs):
        candidates += [str(Path(d) / "lib64" / n) for n in names]
    for site in sys.path:
        candidates += sorted(glob.glob(str(Path(site) / "nvidia" / "*" / "lib" / "libnvrtc.so.*")))
        candidates += sorted(glob.glob(str(Path(site) / "nvidia" / "cuda_nvrtc" / "lib" / "libnvrtc.so.*")))
    for c in candidates:
        if "builtins" in c:
            continue
        try:
            lib = ctypes.CDLL(c)
        except OSError:
            continue
        if hasattr(lib, "nvrtcCompileProgram"):
            return lib
    return None


def nvrtc():
    """The NVRTC library, or ``None`` when none can be loaded."""
    with _LOCK:
        if "nvrtc" not in _STATE:
            _STATE["nvrtc"] = _load_nvrtc()
        return _STATE["nvrtc"]


def nvrtc_version(lib) -> str:
    major, minor = ctypes.c_int(), ctypes.c_int()
    lib.nvrtcVersion(ctypes.byref(major), ctypes.byref(minor))
    return f"{major.value}.{minor.value}"


def device_arch(index: int = 0) -> Optional[str]:
    """``sm_XY`` of CUDA device ``index`` from the driver, or ``None`` without a driver/device."""
    with _LOCK:
        if "arch" not in _STATE:
            arch = None
            try:
                cu = ctypes.CDLL("libcuda.so.1")
                dev, major, minor = ctypes.c_int(), ctypes.c_int(), ctypes.c_int()
                # 75 / 76: CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR / _MINOR
                if (cu.cuInit(0) == 0 and cu.cuDeviceGet(ctypes.byref(dev), index) == 0
                        and cu.cuDeviceGetAttribute(ctypes.byref(major), 75, dev) == 0
                        and cu.cuDeviceGetAttribute(ctypes.byref(minor), 76, dev) == 0):
                    arch = f"sm_{major.value}{minor.value}"
            except OSError:
                pass
            _STATE["arch"] = arch
        return _STATE["arch"]


class CompileError(RuntimeError):
    pass


def compile_cubin(source: str, name: str, arch: str, lib=None) -> bytes:
    """NVRTC ``source`` for ``arch`` (``sm_XY``) to a cubin; raises :class:`CompileError` with
    NVRTC's log."""
    lib = lib or nvrtc()
    if lib is None:
        raise CompileError("NVRTC is not available")
    prog = ctypes.c_void_p()
    src = source.encode()
    if lib.nvrtcCreateProgram(ctypes.byref(prog), src, f"{name}.cu".encode(), 0, None, None) != 0:
        raise CompileError(f"nvrtcCreateProgram failed for {name}")
    try:
        opts = [f"--gpu-architecture={arch}".encode(), b"--std=c++17"]
        arr = (ctypes.c_char_p * len(opts))(*opts)
        rc = lib.nvrtcCompileProgram(prog, len(opts), arr)
        if rc != 0:
            size = ctypes.c_size_t()
            lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
            log = ctypes.create_string_buffer(size.value + 1)
            lib.nvrtcGetProgramLog(prog, log)
            raise CompileError(f"NVRTC failed on {name} ({arch}):\n{log.value.decode(errors='replace')}")
        size = ctypes.c_size_t()
        if lib.nvrtcGetCUBINSize(prog, ctypes.byref(size)) != 0 or size.value == 0:
            raise CompileError(f"NVRTC gave no cubin for {name} ({arch})")
        buf = ctypes.create_string_buffer(size.value)
        lib.nvrtcGetCUBIN(prog, buf)
        return buf.raw
    finally:
        lib.nvrtcDestroyProgram(ctypes.byref(prog))


def cached_cubin(source: str, name: str, arch: str) -> bytes:
    """The cubin of ``source`` for ``arch``: read from the cache folder, else compiled and
    written there."""
    lib = nvrtc()
    if lib is None:
        raise CompileError("NVRTC is not available")
    key = hashlib.sha256(f"{arch}\0{nvrtc_version(lib)}\0{source}".encode()).hexdigest()[:24]
    path = cache.root() / "cubin" / f"{name}_{key}.cubin"
    # one compile per kernel in this process: a launch that needs a kernel the background
    # compiles (custom_kernels.precompile) waits for that compile rather than repeating it
    with _LOCK:
        pending = _PENDING.get(path)
        mine = pending is None and not path.is_file()
        if mine:
            pending = _PENDING[path] = Future()
    if pending is None:
        return path.read_bytes()
    if not mine:
        return pending.result()
    try:
        data = compile_cubin(source, name, arch, lib)
        _store(path, data)
        pending.set_result(data)
        return data
    except BaseException as e:
        pending.set_exception(e)
        raise
    finally:
        with _LOCK:
            del _PENDING[path]


def _store(path: Path, data: bytes) -> None:
    """Write a cubin atomically (concurrent processes may compile the same kernel)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only cache still gives a working (uncached) kernel


def usable_arch() -> str | None:
    """The running GPU's ``sm_XY`` where kernels can be kept as cubins (this path on, an arch
    known, NVRTC loadable), else ``None``."""
    if not enabled():
        return None
    arch = device_arch()
    return arch if arch is not None and nvrtc() is not None else None


def build(name: str, input_names, output_names, header: str, body: str, arch: str) -> bytes:
    """The cubin of a kernel for ``arch``, from the cache or compiled into it; raises
    :class:`CompileError`."""
    return cached_cubin(full_source(name, input_names, output_names, header, body), name, arch)


def kernel(name: str, input_names, output_names, header: str, body: str):
    """A launcher ``f(inputs, grid, threadgroup, output_shapes, output_dtypes, init_value)`` of the
    precompiled kernel, or ``None`` where this path is off or unavailable (see the module
    docstring); a failed compile warns once per kernel and returns ``None``."""
    import mlx.core as mx
    arch = usable_arch()
    if arch is None or not hasattr(mx.fast, "precompiled_cuda_kernel"):
        return None
    try:
        data = build(name, input_names, output_names, header, body, arch)
    except CompileError as e:
        import warnings
        warnings.warn(f"mlx-stark: {e}; using MLX's own kernel compilation for {name}")
        return None

    def launch(inputs, grid, threadgroup, output_shapes, output_dtypes, init_value=None):
        return mx.fast.precompiled_cuda_kernel(
            name=name, compiled_source=data, inputs=inputs, output_shapes=output_shapes,
            output_dtypes=output_dtypes, scalars=[], grid=grid, threadgroup=threadgroup,
            init_value=init_value, ensure_row_contiguous=True)
    return launch
