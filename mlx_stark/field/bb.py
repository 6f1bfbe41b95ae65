"""BabyBear base field F on MLX arrays.

Elements are ``mx.uint32`` arrays holding canonical values in ``[0, p)``; every function is
elementwise over any shape (NumPy broadcasting rules). Hot functions are ``mx.compile``d: on
CPU that fuses them into one C++ loop, on GPU into one kernel. Results are bit-identical on
every device because only exact integer operations are used.

Constants (pcs.md §1): ``p = 2^31 - 2^27 + 1``, two-adicity 27, generator 31.
"""
from __future__ import annotations

from functools import lru_cache

import mlx.core as mx
import numpy as np

from ..device import fused, unfused_native
from ..tracing import read

P = 2013265921
TWO_ADICITY = 27
GENERATOR = 31
HALF = (P + 1) // 2  # 2^{-1} mod p
MONTY_MU = 0x88000001  # p^{-1} mod 2^32, for Montgomery reduction with R = 2^32

U32 = mx.uint32
U64 = mx.uint64

# Plonky3 v0.4.3 BabyBearParameters::TWO_ADIC_GENERATORS (pcs.md §1.2); entry b has order 2^b.
TWO_ADIC_GENERATORS = (
    0x00000001, 0x78000000, 0x67055C21, 0x5EE99486, 0x0BB4C4E4, 0x2D4CC4DA, 0x669D6090,
    0x17B56C64, 0x67456167, 0x688442F9, 0x145E952D, 0x4FE61226, 0x4C734715, 0x11C33E2A,
    0x62C3D2B1, 0x77CAD399, 0x54C131F4, 0x4CABD6A6, 0x5CF5713F, 0x3E9430E8, 0x0BA067A3,
    0x18ADC27D, 0x21FD55BC, 0x4B859B3D, 0x3BD57996, 0x4483D85A, 0x3A26EEF8, 0x1A427A41,
)


def two_adic_generator(bits: int) -> int:
    """The fixed generator of the subgroup of order ``2^bits`` (canonical int)."""
    if not 0 <= bits <= TWO_ADICITY:
        raise ValueError(f"two-adic generator of order 2^{bits} does not exist (max 2^{TWO_ADICITY})")
    return TWO_ADIC_GENERATORS[bits]


# ---------------------------------------------------------------- elementwise arithmetic
# The `minimum` trick: for a, b < p the raw sum fits in 32 bits and `s - p` wraps to a huge
# value exactly when s < p, so min() selects the reduced result without a branch.

@fused(native="bb.add")
def add(a: mx.array, b: mx.array) -> mx.array:
    s = a + b
    return mx.minimum(s, s - P)


@fused(native="bb.sub")
def sub(a: mx.array, b: mx.array) -> mx.array:
    d = a - b
    return mx.minimum(d, d + P)


@fused(native="bb.neg")
def neg(a: mx.array) -> mx.array:
    d = 0 - a
    return mx.minimum(d, d + P)


@fused(native="bb.mul")
def mul(a: mx.array, b: mx.array) -> mx.array:
    # widen-multiply-reduce; exact since a*b < p^2 < 2^64 (the compiler turns % const into
    # a multiply-shift).
    return ((a.astype(U64) * b.astype(U64)) % P).astype(U32)


@fused(native="bb.mont_mul")
def mont_mul(a: mx.array, b_mont: mx.array) -> mx.array:
    """``a * b`` for canonical ``a`` and ``b_mont = b * 2^32 mod p`` (precomputed constants)."""
    x = a.astype(U64) * b_mont.astype(U64)
    t = x.astype(U32) * MONTY_MU
    u = t.astype(U64) * P
    r = (x >> 32).astype(U32) - (u >> 32).astype(U32)
    return mx.minimum(r, r + P)


def square(a: mx.array) -> mx.array:
    return mul(a, a)


@fused(native="bb.halve")
def halve(a: mx.array) -> mx.array:
    # a even: a/2; a odd: (a + p)/2 (a + p < 2^32).
    return mx.where((a & 1) == 1, (a + P) >> 1, a >> 1)


def pow_by_squaring(a: mx.array, e: int, mul_fn, one: mx.array) -> mx.array:
    """``a^e`` for a non-negative Python int ``e`` with the given multiplication (shared by F
    and EF); ``one`` is returned for ``e = 0``."""
    if e < 0:
        raise ValueError("negative exponent; use inv")
    result, base = None, a
    while e:
        if e & 1:
            result = base if result is None else mul_fn(result, base)
        e >>= 1
        if e:
            base = mul_fn(base, base)
    return one if result is None else result


def pow(a: mx.array, e: int) -> mx.array:  # noqa: A001 - field power, shadows builtin on purpose
    """``a^e`` elementwise for a non-negative Python int exponent."""
    return pow_by_squaring(a, e, mul, mx.ones_like(a))


def inv(a: mx.array) -> mx.array:
    """Elementwise inverse ``a^(p-2)`` (batched over any shape; maps 0 to 0)."""
    return pow(a, P - 2)


batch_inv = inv  # elementwise already: every element of the batch is inverted independently


def sum(a: mx.array, axis=None) -> mx.array:  # noqa: A001
    """Field sum along ``axis`` (uint64 accumulation; exact for < 2^33 terms). One launch of
    the native field-sum kernel where fusion is off (:func:`mlx_stark.device.unfused_native`)."""
    out = unfused_native("bb.sum", a, axis)
    return (mx.sum(a.astype(U64), axis=axis) % P).astype(U32) if out is None else out


def to_mont(a: mx.array) -> mx.array:
    """``a * 2^32 mod p``: the Montgomery form used by :func:`mont_mul` constants."""
    return ((a.astype(U64) << 32) % P).astype(U32)


# ---------------------------------------------------------------- conversion
def asarray(values, check: bool = True) -> mx.array:
    """Canonical uint32 MLX array from Python ints / NumPy / MLX input.

    Python ints are reduced mod p; NumPy or MLX integer arrays must already be canonical
    (``check=True`` raises ``ValueError`` otherwise).
    """
    if isinstance(values, mx.array):
        arr = values.astype(U32) if values.dtype != U32 else values
        if check and arr.size and read(mx.max(arr))[0] >= P:
            raise ValueError("field elements must be canonical (< p)")
        return arr
    if isinstance(values, np.ndarray):
        if values.dtype.kind not in "ui":
            raise TypeError(f"field elements need an integer dtype, got {values.dtype}")
        if check and values.size and (values.min() < 0 or values.max() >= P):
            raise ValueError("field elements must be canonical (in [0, p))")
        return mx.array(values.astype(np.uint32, copy=False))
    arr = np.array(values, dtype=object)
    if arr.size == 0:
        return mx.array(np.zeros(arr.shape, dtype=np.uint32))
    return mx.array((arr % P).astype(np.uint64).astype(np.uint32))


def random(shape, seed: int) -> mx.array:
    """Uniform canonical elements from a seeded NumPy generator (identical on every device)."""
    rng = np.random.default_rng(seed)
    return mx.array(rng.integers(0, P, size=shape, dtype=np.uint32))


@lru_cache(maxsize=64)
def powers(x: int, n: int) -> mx.array:
    """``[1, x, x^2, ..., x^{n-1}]`` (uint32, shape ``(n,)``) for a base-field int ``x``.

    Built by doubling: log2(n) whole-array multiplications, no per-element loop; kept per
    ``(x, n)`` (a domain's powers, asked again by every proof).
    """
    out = mx.array([1], dtype=U32)
    step = x % P
    while out.shape[0] < n:
        out = mx.concatenate([out, mul(out, mx.array(step, dtype=U32))])
        step = step * step % P
    return out[:n]
