"""Poseidon2 on the host in native code: the kernels' permutation compiled as C++ for the CPU.

Host hashing is sequential where it matters (the transcript's duplex sponge, the verifying-key
prehash: 35k chained permutations for KeccakfAir), and a pure-Python permutation is about a
hundred times slower than native code (docs/tracking/kernel-notes.md). This module compiles the
custom kernels' generated permutation
(:func:`~mlx_stark.custom_kernels.poseidon2.permutation_header`, CUDA dialect with its keywords
defined away, as the kernel emulation in the tests does) together with two host loops, a batch
permutation and a padding-free sponge over rows, and loads it with ctypes. On x86-64 CPUs with
AVX2 the same loops run a vectorised permutation instead (:func:`_avx2_source`: the 16 lanes
in two registers for the full rounds and the linear layers, lane 0 as a scalar through the
partial rounds, whose S-box is the chain): ~3x faster per permutation, so a long transcript
run (keccakf's 42,000 column openings) takes a third of the time. Both give the same bits.

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
from typing import Optional

import numpy as np

from ..cache import root as cache_root
from ..field.bb import P

_SHIM = """\
#include <stdint.h>
#include <stddef.h>
#define __device__
#define __forceinline__ inline
"""

_LOOPS = """
extern "C" void host_permute_scalar(uint32_t* states, uint64_t n) {
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
extern "C" void host_absorb_rows_scalar(const uint32_t* rows, uint64_t n, uint64_t w, uint32_t* states) {
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


def _avx2_source(constants) -> str:
    """``host_permute_avx2`` and ``host_absorb_rows_avx2`` (the scalar loops' contracts) and
    ``host_simd()`` (whether this CPU runs them), for x86-64 only: 16 Montgomery-form lanes in
    two 8-lane registers. A Montgomery product of 8 lanes takes even and odd lanes' 64-bit
    products apart (t − q·p with q = t·p^-1 mod 2^32 leaves t_hi − (q·p)_hi in (−p, p)); the
    external layer is M4 = circ(2, 3, 1, 1) on each group of four lanes (a_i + a_(i+2), then
    the sum of all four, plus a_i + 2·a_(i+1)) plus the sum of the four groups' results (M4
    is linear); the partial rounds keep lane 0 as a scalar (its S-box) beside lanes 1-15
    (lane 0's slot zero), the internal layer's sum their horizontal sum plus lane 0."""
    from ..custom_kernels.prelude import mont
    from .poseidon2 import INTERNAL_DIAG

    def table(values) -> str:
        return "{" + ", ".join(f"{v}u" for v in values) + "}"

    full = [[mont(c) for c in rcs] for rcs in (*constants.ext_init, *constants.ext_term)]
    n_init, partial = len(constants.ext_init), [mont(c) for c in constants.internal]
    assert INTERNAL_DIAG[0] == P - 2  # lane 0: sum − 2·x
    mu = pow(P, -1, 1 << 32)
    return f"""
#if defined(__x86_64__)
#include <immintrin.h>
#define AVX2 __attribute__((target("avx2"))) static inline
static const uint32_t v_full_rc[{len(full)}][16] __attribute__((aligned(32))) = {{{", ".join(map(table, full))}}};
static const uint32_t v_partial_rc[{len(partial)}] = {table(partial)};
static const uint32_t v_diag[16] __attribute__((aligned(32))) = {table([0] + [mont(d) for d in INTERNAL_DIAG[1:]])};
AVX2 __m256i v_add(__m256i a, __m256i b) {{
  __m256i s = _mm256_add_epi32(a, b);
  return _mm256_min_epu32(s, _mm256_sub_epi32(s, _mm256_set1_epi32({P})));
}}
AVX2 __m256i v_mont(__m256i a, __m256i b) {{
  const __m256i p = _mm256_set1_epi32({P}), mu = _mm256_set1_epi32({mu});
  __m256i te = _mm256_mul_epu32(a, b);
  __m256i to = _mm256_mul_epu32(_mm256_srli_epi64(a, 32), _mm256_srli_epi64(b, 32));
  __m256i qe = _mm256_mul_epu32(_mm256_mul_epu32(te, mu), p);
  __m256i qo = _mm256_mul_epu32(_mm256_mul_epu32(to, mu), p);
  __m256i r = _mm256_sub_epi32(_mm256_blend_epi32(_mm256_srli_epi64(te, 32), to, 0xAA),
                               _mm256_blend_epi32(_mm256_srli_epi64(qe, 32), qo, 0xAA));
  return _mm256_min_epu32(r, _mm256_add_epi32(r, p));
}}
AVX2 __m256i v_sbox(__m256i x) {{
  __m256i x2 = v_mont(x, x), x3 = v_mont(x2, x);
  return v_mont(v_mont(x2, x2), x3);
}}
AVX2 __m256i v_m4(__m256i a) {{
  __m256i t = v_add(a, _mm256_shuffle_epi32(a, 0x4E));
  __m256i sum = v_add(t, _mm256_shuffle_epi32(t, 0x39));
  __m256i next = _mm256_shuffle_epi32(a, 0x39);
  return v_add(v_add(sum, a), v_add(next, next));
}}
AVX2 void v_external(__m256i& lo, __m256i& hi) {{
  __m256i a = v_m4(lo), b = v_m4(hi);
  __m256i u = v_add(a, b);
  u = v_add(u, _mm256_permute2x128_si256(u, u, 1));
  lo = v_add(a, u);
  hi = v_add(b, u);
}}
AVX2 void v_full_round(__m256i& lo, __m256i& hi, const uint32_t* rc) {{
  lo = v_sbox(v_add(lo, _mm256_load_si256((const __m256i*)rc)));
  hi = v_sbox(v_add(hi, _mm256_load_si256((const __m256i*)(rc + 8))));
  v_external(lo, hi);
}}
AVX2 uint32_t v_hsum(__m256i v) {{
  v = v_add(v, _mm256_permute2x128_si256(v, v, 1));
  v = v_add(v, _mm256_shuffle_epi32(v, 0x4E));
  return (uint32_t)_mm256_cvtsi256_si32(v_add(v, _mm256_shuffle_epi32(v, 0xB1)));
}}
AVX2 void v_permute(__m256i& lo, __m256i& hi) {{
  v_external(lo, hi);
  for (int r = 0; r < {n_init}; ++r) v_full_round(lo, hi, v_full_rc[r]);
  const __m256i dlo = _mm256_load_si256((const __m256i*)v_diag);
  const __m256i dhi = _mm256_load_si256((const __m256i*)(v_diag + 8));
  uint32_t s0 = (uint32_t)_mm256_cvtsi256_si32(lo);
  lo = _mm256_blend_epi32(lo, _mm256_setzero_si256(), 1);
  for (int r = 0; r < {len(partial)}; ++r) {{
    uint32_t x = p2_sbox(bb_add(s0, v_partial_rc[r]));
    uint32_t sum = bb_add(x, v_hsum(v_add(lo, hi)));
    s0 = bb_sub(sum, bb_dbl(x));
    const __m256i t = _mm256_set1_epi32((int)sum);
    lo = _mm256_blend_epi32(v_add(t, v_mont(lo, dlo)), _mm256_setzero_si256(), 1);
    hi = v_add(t, v_mont(hi, dhi));
  }}
  lo = _mm256_blend_epi32(lo, _mm256_set1_epi32((int)s0), 1);
  for (int r = {n_init}; r < {len(full)}; ++r) v_full_round(lo, hi, v_full_rc[r]);
}}
AVX2 __m256i v_load(const uint32_t* x) {{  // canonical -> Montgomery form
  return v_mont(_mm256_loadu_si256((const __m256i*)x), _mm256_set1_epi32((int)BB_R2));
}}
AVX2 void v_store(uint32_t* x, __m256i v) {{
  _mm256_storeu_si256((__m256i*)x, v_mont(v, _mm256_set1_epi32(1)));
}}
extern "C" int host_simd(void) {{ return __builtin_cpu_supports("avx2"); }}
extern "C" __attribute__((target("avx2"))) void host_permute_avx2(uint32_t* states, uint64_t n) {{
  for (uint64_t i = 0; i < n; ++i) {{
    uint32_t* st = states + 16 * i;
    __m256i lo = v_load(st), hi = v_load(st + 8);
    v_permute(lo, hi);
    v_store(st, lo);
    v_store(st + 8, hi);
  }}
}}
extern "C" __attribute__((target("avx2"))) void host_absorb_rows_avx2(const uint32_t* rows, uint64_t n, uint64_t w, uint32_t* states) {{
  for (uint64_t i = 0; i < n; ++i) {{
    uint32_t* st = states + 16 * i;
    const uint32_t* row = rows + w * i;
    __m256i lo = v_load(st), hi = v_load(st + 8);
    uint64_t start = 0;
    for (; start + 8 <= w; start += 8) {{
      lo = v_load(row + start);
      v_permute(lo, hi);
    }}
    if (start < w) {{  // a short last block overwrites its lanes only
      uint32_t block[8];
      v_store(block, lo);
      for (uint64_t j = 0; start + j < w; ++j) block[j] = row[start + j];
      lo = v_load(block);
      v_permute(lo, hi);
    }}
    v_store(st, lo);
    v_store(st + 8, hi);
  }}
}}
#else
extern "C" int host_simd(void) {{ return 0; }}
#endif
"""


_U32P = ctypes.POINTER(ctypes.c_uint32)


class HostPoseidon2:
    """The loaded library at ``path``: every function takes and returns canonical ``uint32``
    values. ``simd``: the AVX2 loops (default: where the CPU runs them), else the scalar ones."""

    def __init__(self, path: Path, simd: Optional[bool] = None):
        lib = ctypes.CDLL(str(path))
        self.path = path
        self.simd = bool(lib.host_simd()) if simd is None else simd
        kind = "avx2" if self.simd else "scalar"
        self._permute = getattr(lib, f"host_permute_{kind}")
        self._permute.argtypes = (_U32P, ctypes.c_uint64)
        self._absorb_rows = getattr(lib, f"host_absorb_rows_{kind}")
        self._absorb_rows.argtypes = (_U32P, ctypes.c_uint64, ctypes.c_uint64, _U32P)
        self._buffers = threading.local()  # one reusable state buffer per thread

    def permute(self, states: np.ndarray) -> np.ndarray:
        """``(n, 16)`` canonical states -> their permutations (a new array)."""
        out = np.array(states, dtype=np.uint32, order="C", copy=True).reshape(-1, 16)
        self._permute(out.ctypes.data_as(_U32P), out.shape[0])
        return out

    def permute_one(self, state) -> list:
        """One state of 16 canonical ints -> its permutation (a list)."""
        buf = getattr(self._buffers, "state", None)
        if buf is None:
            buf = self._buffers.state = (ctypes.c_uint32 * 16)()
        buf[:] = state
        self._permute(buf, 1)
        return buf[:]

    def absorb_rows(self, rows: np.ndarray, states: np.ndarray) -> np.ndarray:
        """Sponge every row of ``rows`` ``(n, w)`` into ``states`` ``(n, 16)``; new states."""
        rows = np.ascontiguousarray(rows, dtype=np.uint32)
        out = np.array(states, dtype=np.uint32, order="C", copy=True)
        n, w = rows.shape
        self._absorb_rows(rows.ctypes.data_as(_U32P), n, w, out.ctypes.data_as(_U32P))
        return out


def _source(constants) -> str:
    # imported here: the kernel modules import hash.poseidon2, which imports this module
    from ..custom_kernels.poseidon2 import permutation_header
    from ..custom_kernels.prelude import prelude

    return _SHIM + prelude("cuda") + permutation_header(constants) + _LOOPS + _avx2_source(constants)


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
