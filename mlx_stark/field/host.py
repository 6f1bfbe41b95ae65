"""Host-side (Python int) scalar arithmetic for F and EF.

The transcript, challenges and the verifier's small computations live on the host. Base
elements are plain ints in ``[0, p)``; extension elements are :class:`EF` values.
"""
from __future__ import annotations

import numpy as np

from .bb import P

W = 11  # EF = F[X]/(X^4 - W)


def inv(x: int) -> int:
    """Inverse of a nonzero base element."""
    x %= P
    if x == 0:
        raise ZeroDivisionError("inverse of zero in F")
    return pow(x, P - 2, P)


class EF:
    """An element ``c0 + c1 X + c2 X^2 + c3 X^3`` of ``F[X]/(X^4 - 11)`` (immutable)."""

    __slots__ = ("c",)

    def __init__(self, c0: int = 0, c1: int = 0, c2: int = 0, c3: int = 0):
        self.c = (c0 % P, c1 % P, c2 % P, c3 % P)

    @staticmethod
    def lift(x) -> "EF":
        return x if isinstance(x, EF) else EF(int(x))

    @classmethod
    def zero(cls) -> "EF":
        return cls(0)

    @classmethod
    def one(cls) -> "EF":
        return cls(1)

    def __iter__(self):
        return iter(self.c)

    def __repr__(self) -> str:
        return f"EF{self.c}"

    def __eq__(self, other) -> bool:
        if isinstance(other, int):
            return self.c == (other % P, 0, 0, 0)
        return isinstance(other, EF) and self.c == other.c

    def __hash__(self) -> int:
        return hash(self.c)

    def is_zero(self) -> bool:
        return self.c == (0, 0, 0, 0)

    def __add__(self, o) -> "EF":
        if isinstance(o, int):
            return EF(self.c[0] + o, *self.c[1:])
        a, b = self.c, o.c
        return EF(a[0] + b[0], a[1] + b[1], a[2] + b[2], a[3] + b[3])

    __radd__ = __add__

    def __neg__(self) -> "EF":
        return EF(-self.c[0], -self.c[1], -self.c[2], -self.c[3])

    def __sub__(self, o) -> "EF":
        return self + (-EF.lift(o))

    def __rsub__(self, o) -> "EF":
        return EF.lift(o) + (-self)

    def __mul__(self, o) -> "EF":
        if isinstance(o, int):
            return EF(self.c[0] * o, self.c[1] * o, self.c[2] * o, self.c[3] * o)
        a0, a1, a2, a3 = self.c
        b0, b1, b2, b3 = o.c
        return EF(
            a0 * b0 + W * (a1 * b3 + a2 * b2 + a3 * b1),
            a0 * b1 + a1 * b0 + W * (a2 * b3 + a3 * b2),
            a0 * b2 + a1 * b1 + a2 * b0 + W * (a3 * b3),
            a0 * b3 + a1 * b2 + a2 * b1 + a3 * b0,
        )

    __rmul__ = __mul__

    def square(self) -> "EF":
        return self * self

    def __pow__(self, e: int) -> "EF":
        if e < 0:
            return self.inv() ** (-e)
        result, base = EF.one(), self
        while e:
            if e & 1:
                result = result * base
            base = base * base
            e >>= 1
        return result

    def inv(self) -> "EF":
        """Inverse via the norm to F (see field/ext.py for the derivation)."""
        a0, a1, a2, a3 = self.c
        b0 = (a0 * a0 + W * a2 * a2 - 2 * W * a1 * a3) % P
        b1 = (2 * a0 * a2 - a1 * a1 - W * a3 * a3) % P
        norm = (b0 * b0 - W * b1 * b1) % P
        if norm == 0:
            raise ZeroDivisionError("inverse of zero in EF")
        ni = pow(norm, P - 2, P)
        return EF(
            (a0 * b0 - W * a2 * b1) * ni,
            (W * a3 * b1 - a1 * b0) * ni,
            (a2 * b0 - a0 * b1) * ni,
            (a1 * b1 - a3 * b0) * ni,
        )

    def __truediv__(self, o) -> "EF":
        if isinstance(o, int):
            return self * inv(o)
        return self * o.inv()

    def __rtruediv__(self, o) -> "EF":
        return EF.lift(o) * self.inv()


def is_canonical_f(v) -> bool:
    """Whether ``v`` is a canonical base element: an ``int`` in ``[0, p)`` (not a bool, not a
    NumPy integer)."""
    return type(v) is int and 0 <= v < P


def is_canonical_ef(v) -> bool:
    """Whether ``v`` is an :class:`EF` with four canonical coefficients
    (:func:`is_canonical_f`; an EF built in memory can have its ``c`` replaced after
    construction)."""
    if type(v) is not EF:
        return False
    c = v.c
    return type(c) is tuple and len(c) == 4 and all(is_canonical_f(x) for x in c)


def batch_inv(values: list) -> list:
    """Montgomery's trick: inverses of many nonzero EF (or int) values with one inversion."""
    vals = [EF.lift(v) for v in values]
    prefix, acc = [], EF.one()
    for v in vals:
        prefix.append(acc)
        acc = acc * v
    inv_acc = acc.inv()
    out = [None] * len(vals)
    for i in range(len(vals) - 1, -1, -1):
        out[i] = prefix[i] * inv_acc
        inv_acc = inv_acc * vals[i]
    return out


def powers(x, n: int) -> list:
    """``[1, x, x^2, …, x^{n−1}]`` as :class:`EF` (``x``: EF or int)."""
    out, acc = [], EF.one()
    for _ in range(n):
        out.append(acc)
        acc = acc * x
    return out


def horner(coeffs, x) -> EF:
    """``sum_j coeffs[j] x^j`` (coefficients constant term first)."""
    acc = EF.zero()
    for c in reversed(coeffs):
        acc = acc * x + c
    return acc


# ---------------------------------------------------------------- EF arrays (NumPy, host)
# Many EF values at once as ``(..., 4)`` uint64 arrays of canonical coefficients (the verifier's
# per-query and per-column work). Every product is reduced before it is added, so sums of up to
# 2^33 reduced terms stay exact in 64 bits.
def ef_array(values) -> np.ndarray:
    """Host EF values (or ints) -> ``(n, 4)`` uint64."""
    return np.array([EF.lift(v).c for v in values], dtype=np.uint64).reshape(-1, 4)


def ef_values(arr: np.ndarray) -> list:
    """``(..., 4)`` canonical coefficients -> a flat list of :class:`EF`."""
    return [EF(*row) for row in arr.reshape(-1, 4).tolist()]


def ef_mul_np(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Elementwise EF product of broadcastable ``(..., 4)`` arrays."""
    a = a.astype(np.uint64, copy=False)
    b = b.astype(np.uint64, copy=False)

    def m(i, j):
        return a[..., i] * b[..., j] % P

    out = np.empty(np.broadcast_shapes(a.shape, b.shape), dtype=np.uint64)
    out[..., 0] = (m(0, 0) + W * ((m(1, 3) + m(2, 2) + m(3, 1)) % P)) % P
    out[..., 1] = (m(0, 1) + m(1, 0) + W * ((m(2, 3) + m(3, 2)) % P)) % P
    out[..., 2] = (m(0, 2) + m(1, 1) + m(2, 0) + W * m(3, 3)) % P
    out[..., 3] = (m(0, 3) + m(1, 2) + m(2, 1) + m(3, 0)) % P
    return out


def ef_scale_np(a: np.ndarray, s: np.ndarray) -> np.ndarray:
    """``a (..., 4)`` times base elements ``s (...)``."""
    return a * s.astype(np.uint64)[..., None] % P


def ef_powers_np(x: EF, n: int) -> np.ndarray:
    """``(1, x, x^2, …, x^{n−1})`` as ``(n, 4)``: doubling blocks, log2(n) array products."""
    out = np.zeros((max(n, 1), 4), dtype=np.uint64)
    out[0, 0] = 1
    filled, step = 1, EF.lift(x)
    while filled < n:
        take = min(filled, n - filled)
        out[filled:filled + take] = ef_mul_np(out[:take], np.array(step.c, dtype=np.uint64))
        filled += take
        step = step * step
    return out[:n]


def ef_sum_np(a: np.ndarray) -> EF:
    """``Σ`` over the leading axes of ``(..., 4)`` reduced coefficients."""
    return EF(*(int(v) for v in a.reshape(-1, 4).sum(axis=0) % P))
