"""The quartic extension EF = F[X]/(X^4 - 11) on MLX arrays.

An element is stored along a trailing axis of length 4: shape ``(..., 4)`` uint32, coefficients
``(c0, c1, c2, c3)`` of ``1, X, X^2, X^3``, each canonical. Functions broadcast over the
leading shape. Base-field operands are ``(...)`` uint32 arrays (see field/bb.py).
"""
from __future__ import annotations

from functools import lru_cache
from typing import Optional

import mlx.core as mx
import numpy as np

from ..device import fused, unfused_native
from ..tracing import read
from . import bb
from .bb import U32, U64, P
from .host import EF, W

add = bb.add  # coefficientwise
sub = bb.sub
neg = bb.neg


@fused(native="ext.mul")
def mul(a: mx.array, b: mx.array) -> mx.array:
    """Product in EF. Each coefficient is a sum of at most 4 products < p^2, and 4p^2 < 2^64,
    so one uint64 accumulation per coefficient is exact."""
    a0, a1, a2, a3 = (a[..., i].astype(U64) for i in range(4))
    b0, b1, b2, b3 = (b[..., i].astype(U64) for i in range(4))
    t0 = (a1 * b3 + a2 * b2 + a3 * b1) % P
    c0 = (a0 * b0 + t0 * W) % P
    t1 = (a2 * b3 + a3 * b2) % P
    c1 = (a0 * b1 + a1 * b0 + t1 * W) % P
    t2 = (a3 * b3) % P
    c2 = (a0 * b2 + a1 * b1 + a2 * b0 + t2 * W) % P
    c3 = (a0 * b3 + a1 * b2 + a2 * b1 + a3 * b0) % P
    return mx.stack([c0, c1, c2, c3], axis=-1).astype(U32)


def square(a: mx.array) -> mx.array:
    return mul(a, a)


@fused(native="ext.mul_base")
def mul_base(a: mx.array, b: mx.array) -> mx.array:
    """``a (…,4) EF`` times ``b (…) F``."""
    return ((a.astype(U64) * b[..., None].astype(U64)) % P).astype(U32)


def from_base(a: mx.array) -> mx.array:
    """Embed ``(…)`` base elements as ``(…, 4)`` extension elements."""
    z = mx.zeros(a.shape + (3,), dtype=U32)
    return mx.concatenate([a.astype(U32)[..., None], z], axis=-1)


def inv(a: mx.array) -> mx.array:
    """Elementwise inverse (0 maps to 0).

    With ``a(X) = e(X^2) + X o(X^2)``: ``a(X) a(-X) = b(X^2)`` lies in the quadratic subfield
    ``F[Y]/(Y^2 - W)``, and ``b (b0 - b1 Y) = b0^2 - W b1^2 =: norm`` lies in F, so
    ``a^{-1} = a(-X) (b0 - b1 X^2) / norm``.
    """
    a0, a1, a2, a3 = (a[..., i] for i in range(4))
    m = bb.mul
    b0 = bb.sub(bb.add(m(a0, a0), m(m(a2, a2), _c(W))), m(m(a1, a3), _c(2 * W)))
    b1 = bb.sub(m(m(a0, a2), _c(2)), bb.add(m(a1, a1), m(m(a3, a3), _c(W))))
    norm = bb.sub(m(b0, b0), m(m(b1, b1), _c(W)))
    ni = bb.inv(norm)
    c0 = bb.sub(m(a0, b0), m(m(a2, b1), _c(W)))
    c1 = bb.sub(m(m(a3, b1), _c(W)), m(a1, b0))
    c2 = bb.sub(m(a2, b0), m(a0, b1))
    c3 = bb.sub(m(a1, b1), m(a3, b0))
    return mx.stack([m(c0, ni), m(c1, ni), m(c2, ni), m(c3, ni)], axis=-1)


batch_inv = inv  # elementwise over the leading shape


def pow(a: mx.array, e: int) -> mx.array:  # noqa: A001
    """``a^e`` elementwise over the leading shape."""
    return bb.pow_by_squaring(a, e, mul, ones(a.shape[:-1]))


def halve(a: mx.array) -> mx.array:
    return bb.halve(a)


def sum(a: mx.array, axis: int = 0) -> mx.array:  # noqa: A001
    """Field sum of extension elements along a leading ``axis`` (not the coefficient axis)."""
    return bb.sum(a, axis=axis - 1 if axis < 0 else axis)


def zeros(shape) -> mx.array:
    return mx.zeros(tuple(shape) + (4,), dtype=U32)


def ones(shape) -> mx.array:
    return from_base(mx.ones(tuple(shape), dtype=U32))


def random(shape, seed: int) -> mx.array:
    return bb.random(tuple(shape) + (4,), seed)


def constant(x) -> mx.array:
    """A ``(4,)`` array holding ``x``: a host element (EF or int), or a ``(4,)`` uint32 device
    array already (a device transcript's challenge), returned as it is."""
    if isinstance(x, mx.array):
        return x
    return _constant(EF.lift(x).c)


@lru_cache(maxsize=1024)
def _constant(c: tuple) -> mx.array:
    # kept per value (arrays are immutable): a proof asks for the same constants every round
    return mx.array(np.array(c, dtype=np.uint32))


def one_minus(x):
    """``1 − x`` for a host element (EF) or a ``(4,)`` device array, of the same kind."""
    if isinstance(x, mx.array):
        return sub(ones(()), x)
    return 1 - EF.lift(x)


def from_host(values) -> mx.array:
    """``(n, 4)`` array from a list of host EF / int values (short lists kept per values: a
    proof asks for the same challenge tables and weights several times, and on CUDA each new
    device array costs tens of µs)."""
    rows = tuple(EF.lift(v).c for v in values)
    if len(rows) <= _KEPT_ROWS:
        return _rows(rows)
    return mx.array(np.array(rows, dtype=np.uint32).reshape(len(rows), 4))


_KEPT_ROWS = 256


@lru_cache(maxsize=512)
def _rows(rows: tuple) -> mx.array:
    return mx.array(np.array(rows, dtype=np.uint32).reshape(len(rows), 4))


def accumulate(acc, value: mx.array) -> mx.array:
    """``acc + value``, or ``value`` itself when ``acc`` is ``None`` (a sum's first term: no
    zero table and no addition)."""
    return value if acc is None else add(acc, value)


def mul_sum(a: mx.array, b: mx.array, axis: int, also: Optional[int] = None) -> mx.array:
    """``Σ`` along the leading axis ``axis`` (and the leading axis ``also``) of the products
    ``a·b`` (``(..., 4)`` arrays whose leading shapes broadcast): ``bb.sum(mul(a, b), axis)``.
    One launch and no product array where fusion is off
    (:func:`mlx_stark.device.unfused_native`)."""
    out = unfused_native("ext.mul_sum", a, b, axis, also)
    if out is not None:
        return out
    n = max(a.ndim, b.ndim) - 1
    axes = tuple(sorted({axis % n} | ({also % n} if also is not None else set())))
    out = mul(a, b)
    for ax in reversed(axes):
        out = bb.sum(out, axis=ax)
    return out


def to_host(a: mx.array) -> list:
    """List of host :class:`EF` from a ``(n, 4)`` (or ``(4,)``) array (one read-back)."""
    return host_values(read(a)[0])


def host_values(arr: np.ndarray) -> list:
    """List of host :class:`EF` from a read-back ``(..., 4)`` uint32 NumPy array."""
    return [EF(int(r[0]), int(r[1]), int(r[2]), int(r[3])) for r in arr.reshape(-1, 4)]


def _c(v: int) -> mx.array:
    return mx.array(v % P, dtype=U32)
