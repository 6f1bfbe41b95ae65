"""Source shared by every custom kernel: per-dialect macros, then BabyBear arithmetic written
once for both CUDA and Metal.

Kernel code uses only these dialect-neutral names:

- ``KFN`` before helper functions (``__device__ __forceinline__`` / ``inline``);
- ``LOCAL`` before pointers to thread-private arrays (Metal requires an address space);
- ``SHARED`` before block/threadgroup arrays, ``BARRIER()`` to synchronise them;
- ``SHFL(v, lane)`` / ``SHFL_XOR(v, mask)``: ``v`` of thread ``lane`` / ``tid ^ mask`` among
  the first 16 threads of a block (a block of 16 threads: every one of them takes part);
- ``BITREV32(x)``: the 32-bit bit reversal;
- in kernel bodies, after :func:`thread_indices`: ``gid`` (flat thread index along x), ``tid``
  (thread in its block), ``bid`` / ``bid_y`` (block index along x / y).

Field elements are ``uint32_t`` in ``[0, p)``. ``bb_mont(a, b) = a·b·2^-32 mod p``: with one
operand in Montgomery form (``x·2^32 mod p``) it is the plain product, with both it is the
Montgomery product; ``bb_to_mont`` / ``bb_from_mont`` convert. Sums of products are
accumulated in 64 bits: ``mul_wide`` products (below ``p·2^32`` when one factor is below
``p``) added to a running sum kept below ``p·2^32`` by ``bb_fold``, and one ``bb_redc``
(``t·2^-32 mod p``) at the end.

:data:`EXTENSION` is the extension-field header (``ef`` values, ``acc4`` accumulators) shared
by the kernels that compute in EF; a kernel source adds it to its own header.
"""
from __future__ import annotations

import mlx.core as mx

from ..field.bb import P
from ..field.host import EF, W

DIALECTS = ("cuda", "metal")

R2 = (1 << 64) % P  # bb_mont(x, R2) = x·2^32 mod p

_MACROS = {
    "cuda": """\
#define KFN __device__ __forceinline__
#define LOCAL
#define SHARED __shared__
#define BARRIER() __syncthreads()
#define SHFL(v, lane) __shfl_sync(0xffffu, (v), (lane), 16)
#define SHFL_XOR(v, mask) __shfl_xor_sync(0xffffu, (v), (mask), 16)
#define BITREV32(x) __brev(x)
""",
    "metal": """\
#define KFN inline
#define LOCAL thread
#define SHARED threadgroup
#define BARRIER() threadgroup_barrier(mem_flags::mem_threadgroup)
#define SHFL(v, lane) simd_shuffle((v), (ushort)(lane))
#define SHFL_XOR(v, mask) simd_shuffle_xor((v), (ushort)(mask))
#define BITREV32(x) reverse_bits(x)
""",
}

# MLX declares Metal's thread-position arguments only when their names occur in the kernel
# body, so the indices are read in the body, not through header macros.
_INDICES = {
    "cuda": """\
const uint32_t gid = blockIdx.x * blockDim.x + threadIdx.x;
const uint32_t tid = threadIdx.x;
const uint32_t bid = blockIdx.x;
const uint32_t bid_y = blockIdx.y;
""",
    "metal": """\
const uint32_t gid = thread_position_in_grid.x;
const uint32_t tid = thread_position_in_threadgroup.x;
const uint32_t bid = threadgroup_position_in_grid.x;
const uint32_t bid_y = threadgroup_position_in_grid.y;
""",
}

_FIELD = f"""\
#define BB_P {P}u
#define BB_R2 {R2}u
#define BB_P32 (((uint64_t)BB_P) << 32)

KFN uint32_t bb_add(uint32_t a, uint32_t b) {{
  uint32_t s = a + b;
  return s >= BB_P ? s - BB_P : s;
}}
KFN uint32_t bb_sub(uint32_t a, uint32_t b) {{
  return a >= b ? a - b : a + BB_P - b;
}}
KFN uint32_t bb_dbl(uint32_t a) {{
  return bb_add(a, a);
}}
KFN uint32_t bb_half(uint32_t a) {{
  return (a & 1u) ? (a + BB_P) >> 1 : a >> 1;
}}
KFN uint64_t mul_wide(uint32_t a, uint32_t b) {{
  return (uint64_t)a * (uint64_t)b;
}}
// t·2^-32 mod p for t < p·2^32: t + m·p < 2^64 and the result is below 2p before the select.
KFN uint32_t bb_redc(uint64_t t) {{
  uint32_t m = (uint32_t)t * {(-pow(P, -1, 1 << 32)) % (1 << 32):#x}u;
  uint32_t r = (uint32_t)((t + (uint64_t)m * (uint64_t)BB_P) >> 32);
  return r >= BB_P ? r - BB_P : r;
}}
// t mod p·2^32 for t < 2·p·2^32: keeps a running sum of products reducible by bb_redc.
KFN uint64_t bb_fold(uint64_t t) {{
  return t >= BB_P32 ? t - BB_P32 : t;
}}
// a·b·2^-32 mod p for a, b < p.
KFN uint32_t bb_mont(uint32_t a, uint32_t b) {{
  return bb_redc(mul_wide(a, b));
}}
KFN uint32_t bb_to_mont(uint32_t a) {{
  return bb_mont(a, BB_R2);
}}
KFN uint32_t bb_from_mont(uint32_t a) {{
  return bb_mont(a, 1u);
}}
"""


def _check(dialect: str) -> None:
    if dialect not in DIALECTS:
        raise ValueError(f"kernel dialect must be one of {DIALECTS}, got {dialect!r}")


def prelude(dialect: str) -> str:
    """Macros of ``dialect`` followed by the shared field arithmetic (a kernel header prefix)."""
    _check(dialect)
    return _MACROS[dialect] + _FIELD


def thread_indices(dialect: str) -> str:
    """Statements defining ``gid``, ``tid``, ``bid``, ``bid_y`` at the top of a kernel body."""
    _check(dialect)
    return _INDICES[dialect]


def mont(x: int) -> int:
    """Montgomery form ``x·2^32 mod p`` of a host element (for literal constants)."""
    return (x << 32) % P


def literal(x: int) -> str:
    """A uint32 literal, identical in both dialects."""
    return f"{x}u"


def kernel_args(counts, values=()) -> mx.array:
    """A launch's ``args`` array (uint32): the ``counts``, then the coefficients of the
    ``values`` (host EF, or ``(4,)`` canonical device arrays such as a device transcript's
    challenges, converted on the device) in Montgomery form."""
    from . import params  # kept per values
    if not any(isinstance(v, mx.array) for v in values):
        return params(*counts, *(mont(c) for v in values for c in EF.lift(v).c))
    from ..field import ext
    from .indexing import concat_flat
    # one launch: the counts, then each value ((4,) canonical on the device) in Montgomery form
    return concat_flat([params(*counts)] + [ext.constant(v) for v in values], mont_tail=True)


def block_sum(sums: int, threads: int, out: str, finish: str = "{}") -> str:
    """Kernel code adding the ``sums`` columns of the shared array ``red`` (``sums`` x
    ``threads`` words, thread ``tid``'s values at ``red[c·threads + tid]``) over the block with
    field additions; thread 0 then writes ``out[bid·sums + c] = finish(sum c)`` (``finish`` a
    format string of one argument). Every thread reaches every barrier."""
    total = finish.format(f"red[c * {threads}u]")
    return f"""\
for (uint32_t gap = {threads // 2}u; gap > 0u; gap >>= 1) {{
  BARRIER();
  if (tid < gap) {{
    for (uint32_t c = 0; c < {sums}u; ++c) {{
      red[c * {threads}u + tid] = bb_add(red[c * {threads}u + tid], red[c * {threads}u + tid + gap]);
    }}
  }}
}}
if (tid == 0u) {{
  for (uint32_t c = 0; c < {sums}u; ++c) {out}[bid * {sums}u + c] = {total};
}}
"""


# Extension-field helpers (EF = F[X]/(X^4 − W)), a header for the kernels that need them.
# ``ef`` values are four coefficients; ``ef_mul(a, b) = a·b·2^-32`` coefficientwise, like
# ``bb_mont`` (Montgomery form in, Montgomery form out; one canonical operand gives the plain
# product). ``acc4`` is four 64-bit accumulators of products, reduced once by ``bb_redc``.
EXTENSION = f"""\
#define EF_W {literal(mont(W))}
// ``ef`` at words o .. o + 3 of a uint32 array (canonical coefficients)
#define EF_LOAD(a, o) ef_make(a[(o)], a[(o) + 1u], a[(o) + 2u], a[(o) + 3u])
#define EF_STORE(a, o, v) a[(o)] = (v).c0; a[(o) + 1u] = (v).c1; a[(o) + 2u] = (v).c2; a[(o) + 3u] = (v).c3
KFN uint32_t bb_neg(uint32_t a) {{
  return a ? BB_P - a : 0u;
}}
struct ef {{
  uint32_t c0, c1, c2, c3;
}};
KFN ef ef_make(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3) {{
  ef r;
  r.c0 = c0; r.c1 = c1; r.c2 = c2; r.c3 = c3;
  return r;
}}
KFN ef ef_in(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3) {{
  return ef_make(bb_to_mont(c0), bb_to_mont(c1), bb_to_mont(c2), bb_to_mont(c3));
}}
KFN ef ef_add(ef a, ef b) {{
  return ef_make(bb_add(a.c0, b.c0), bb_add(a.c1, b.c1), bb_add(a.c2, b.c2), bb_add(a.c3, b.c3));
}}
KFN ef ef_sub(ef a, ef b) {{
  return ef_make(bb_sub(a.c0, b.c0), bb_sub(a.c1, b.c1), bb_sub(a.c2, b.c2), bb_sub(a.c3, b.c3));
}}
KFN ef ef_neg(ef a) {{
  return ef_make(bb_neg(a.c0), bb_neg(a.c1), bb_neg(a.c2), bb_neg(a.c3));
}}
KFN ef ef_add_b(ef a, uint32_t b) {{
  return ef_make(bb_add(a.c0, b), a.c1, a.c2, a.c3);
}}
KFN ef ef_sub_eb(ef a, uint32_t b) {{
  return ef_make(bb_sub(a.c0, b), a.c1, a.c2, a.c3);
}}
KFN ef ef_sub_be(uint32_t a, ef b) {{
  return ef_make(bb_sub(a, b.c0), bb_neg(b.c1), bb_neg(b.c2), bb_neg(b.c3));
}}
KFN ef ef_mul_b(ef a, uint32_t b) {{
  return ef_make(bb_mont(a.c0, b), bb_mont(a.c1, b), bb_mont(a.c2, b), bb_mont(a.c3, b));
}}
// X^4 = W: each coefficient is one reduction of a sum of at most four products (the W-terms
// reduced first and multiplied by W in Montgomery form).
KFN ef ef_mul(ef a, ef b) {{
  uint32_t u0 = bb_redc(bb_fold(mul_wide(a.c1, b.c3) + mul_wide(a.c2, b.c2) + mul_wide(a.c3, b.c1)));
  uint32_t u1 = bb_redc(mul_wide(a.c2, b.c3) + mul_wide(a.c3, b.c2));
  uint32_t u2 = bb_mont(a.c3, b.c3);
  ef r;
  r.c0 = bb_redc(mul_wide(a.c0, b.c0) + mul_wide(u0, EF_W));
  r.c1 = bb_redc(bb_fold(mul_wide(a.c0, b.c1) + mul_wide(a.c1, b.c0) + mul_wide(u1, EF_W)));
  r.c2 = bb_redc(bb_fold(mul_wide(a.c0, b.c2) + mul_wide(a.c1, b.c1) + mul_wide(a.c2, b.c0)
                         + mul_wide(u2, EF_W)));
  r.c3 = bb_redc(bb_fold(mul_wide(a.c0, b.c3) + mul_wide(a.c1, b.c2) + mul_wide(a.c2, b.c1)
                         + mul_wide(a.c3, b.c0)));
  return r;
}}
struct acc4 {{
  uint64_t c0, c1, c2, c3;
}};
KFN acc4 acc_zero() {{
  acc4 a;
  a.c0 = 0u; a.c1 = 0u; a.c2 = 0u; a.c3 = 0u;
  return a;
}}
// a += v·w for a base value v (Montgomery form) and an extension weight w (canonical).
KFN acc4 acc_b(acc4 a, uint32_t v, uint32_t w0, uint32_t w1, uint32_t w2, uint32_t w3) {{
  a.c0 = bb_fold(a.c0 + mul_wide(v, w0));
  a.c1 = bb_fold(a.c1 + mul_wide(v, w1));
  a.c2 = bb_fold(a.c2 + mul_wide(v, w2));
  a.c3 = bb_fold(a.c3 + mul_wide(v, w3));
  return a;
}}
// a += v·w for an extension value v (Montgomery form); x1..x3 = W·w1..W·w3. Two products
// per fold keep every sum below 2^64.
KFN acc4 acc_e(acc4 a, ef v, uint32_t w0, uint32_t w1, uint32_t w2, uint32_t w3,
               uint32_t x1, uint32_t x2, uint32_t x3) {{
  a.c0 = bb_fold(bb_fold(a.c0 + mul_wide(v.c0, w0) + mul_wide(v.c1, x3)) + mul_wide(v.c2, x2) + mul_wide(v.c3, x1));
  a.c1 = bb_fold(bb_fold(a.c1 + mul_wide(v.c0, w1) + mul_wide(v.c1, w0)) + mul_wide(v.c2, x3) + mul_wide(v.c3, x2));
  a.c2 = bb_fold(bb_fold(a.c2 + mul_wide(v.c0, w2) + mul_wide(v.c1, w1)) + mul_wide(v.c2, w0) + mul_wide(v.c3, x3));
  a.c3 = bb_fold(bb_fold(a.c3 + mul_wide(v.c0, w3) + mul_wide(v.c1, w2)) + mul_wide(v.c2, w1) + mul_wide(v.c3, w0));
  return a;
}}
"""
