"""Poseidon2 on the host in native code: the kernels' permutation compiled as C++ for the CPU.

Host hashing is sequential where it matters (the transcript's duplex sponge, the verifying-key
prehash: 35k chained permutations for KeccakfAir), and a pure-Python permutation is about a
hundred times slower than native code (docs/tracking/kernel-notes.md). This module compiles the
custom kernels' generated permutation
(:func:`~mlx_stark.custom_kernels.poseidon2.permutation_header`, CUDA dialect with its keywords
defined away, as the kernel emulation in the tests does) together with two host loops, a batch
permutation and a padding-free sponge over rows, and loads it with ctypes.

The library is built once per constant set with the C++ compiler MLX uses on the CPU (``c++``,
``g++`` or ``clang++`` on ``PATH``) into a cache folder (``MLX_STARK_CACHE``, else
``~/.cache/mlx-stark``), named by a digest of its source. Without a compiler, or with
``MLX_STARK_HOST_NATIVE=0``, :func:`library` returns ``None`` and callers use the Python
permutation (the reference these functions are tested against).
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
import threading
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..cache import root as cache_root

_SHIM = """\
#include <stdint.h>
#include <stddef.h>
#define __device__
#define __forceinline__ inline
"""

_LOOPS = """
extern "C" void host_permute(uint32_t* states, uint64_t n) {
  for (uint64_t i = 0; i < n; ++i) {
    uint32_t s[16];
    uint32_t* st = states + 16 * i;
    for (int j = 0; j < 16; ++j) s[j] = bb_to_mont(st[j]);
    p2_permute(s);
    for (int j = 0; j < 16; ++j) st[j] = bb_from_mont(s[j]);
  }
}

// Padding-free sponge (rate 8) over each of n rows of w elements, from the given states
// (n x 16, canonical, updated in place): a short last block leaves the other lanes as they are.
extern "C" void host_absorb_rows(const uint32_t* rows, uint64_t n, uint64_t w, uint32_t* states) {
  for (uint64_t i = 0; i < n; ++i) {
    uint32_t s[16];
    uint32_t* st = states + 16 * i;
    const uint32_t* row = rows + w * i;
    for (int j = 0; j < 16; ++j) s[j] = bb_to_mont(st[j]);
    for (uint64_t start = 0; start < w; start += 8) {
      uint64_t b = w - start < 8 ? w - start : 8;
      for (uint64_t j = 0; j < b; ++j) s[j] = bb_to_mont(row[start + j]);
      p2_permute(s);
    }
    for (int j = 0; j < 16; ++j) st[j] = bb_from_mont(s[j]);
  }
}
"""

_U32P = ctypes.POINTER(ctypes.c_uint32)


class HostPoseidon2:
    """The loaded library: every function takes and returns canonical ``uint32`` values."""

    def __init__(self, path: Path):
        lib = ctypes.CDLL(str(path))
        lib.host_permute.argtypes = (_U32P, ctypes.c_uint64)
        lib.host_absorb_rows.argtypes = (_U32P, ctypes.c_uint64, ctypes.c_uint64, _U32P)
        self._lib = lib
        self._buffers = threading.local()  # one reusable state buffer per thread

    def permute(self, states: np.ndarray) -> np.ndarray:
        """``(n, 16)`` canonical states -> their permutations (a new array)."""
        out = np.array(states, dtype=np.uint32, order="C", copy=True).reshape(-1, 16)
        self._lib.host_permute(out.ctypes.data_as(_U32P), out.shape[0])
        return out

    def permute_one(self, state) -> list:
        """One state of 16 canonical ints -> its permutation (a list)."""
        buf = getattr(self._buffers, "state", None)
        if buf is None:
            buf = self._buffers.state = (ctypes.c_uint32 * 16)()
        buf[:] = state
        self._lib.host_permute(buf, 1)
        return buf[:]

    def absorb_rows(self, rows: np.ndarray, states: np.ndarray) -> np.ndarray:
        """Sponge every row of ``rows`` ``(n, w)`` into ``states`` ``(n, 16)``; new states."""
        rows = np.ascontiguousarray(rows, dtype=np.uint32)
        out = np.array(states, dtype=np.uint32, order="C", copy=True)
        n, w = rows.shape
        self._lib.host_absorb_rows(rows.ctypes.data_as(_U32P), n, w, out.ctypes.data_as(_U32P))
        return out


def _source(constants) -> str:
    # imported here: the kernel modules import hash.poseidon2, which imports this module
    from ..custom_kernels.poseidon2 import permutation_header
    from ..custom_kernels.prelude import prelude

    return _SHIM + prelude("cuda") + permutation_header(constants) + _LOOPS


def _compiler():
    for name in ("c++", "g++", "clang++"):
        path = shutil.which(name)
        if path:
            return path
    return None


def _build(source: str) -> Path:
    cache = cache_root()
    lib = cache / f"host_poseidon2_{hashlib.sha256(source.encode()).hexdigest()[:16]}.so"
    if lib.exists():
        return lib
    compiler = _compiler()
    if compiler is None:
        raise OSError("no C++ compiler on PATH")
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        cpp, out = Path(tmp, "p2.cpp"), Path(tmp, "p2.so")
        cpp.write_text(source)
        subprocess.run([compiler, "-O2", "-shared", "-fPIC", "-w", str(cpp), "-o", str(out)],
                       check=True, capture_output=True, timeout=300)
        os.replace(out, lib)  # atomic: concurrent builders agree on the same bytes
    return lib


@lru_cache(maxsize=4)
def library(constants):
    """The native permutation for ``constants`` (a hashable constant set), or ``None`` where it
    cannot be built; failures are not retried within a process."""
    if os.environ.get("MLX_STARK_HOST_NATIVE", "1") == "0":
        return None
    try:
        return HostPoseidon2(_build(_source(constants)))
    except (OSError, subprocess.SubprocessError):
        return None
