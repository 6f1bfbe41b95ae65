"""Host formulas of the protocol's kernels (pcs.md §5.2, §7.3, §8.3; constraints.md §0.2):
the eq / ind / κ / Lagrange functions, evaluated at single points, and the eq3b weights.

Pure Python on :class:`mlx_stark.field.host.EF` scalars (ints are accepted wherever an EF is and
are lifted): the verifier's arithmetic, never a device array (importing it still loads MLX, as
the field constants come from :mod:`mlx_stark.field.bb`). Every function returns an ``EF``,
except the ``*_points`` forms: one formula at many base-field points, as NumPy arrays.
Vectors are little-endian: coordinate ``j`` pairs with bit ``j`` of a hypercube index.
"""
from __future__ import annotations

from functools import lru_cache
from typing import List

import numpy as np

from ..field.bb import HALF, P, two_adic_generator
from ..field.host import EF


def _lift(x) -> EF:
    return EF.lift(x)


def _inv_pow2(b: int) -> int:
    """``2^{-b} mod p``."""
    return pow(HALF, b, P)


def eq(x, y) -> EF:
    """``Π_j (1 − x_j − y_j + 2·x_j·y_j)`` for equal-length vectors (1 for empty vectors)."""
    if len(x) != len(y):
        raise ValueError(f"eq of vectors of lengths {len(x)} and {len(y)}")
    acc = EF.one()
    for a, b in zip(x, y):
        a, b = _lift(a), _lift(b)
        acc = acc * (1 - a - b + a * b * 2)
    return acc


def mobeq(u, a) -> EF:
    """``MobEq(u, a) = Π_j ((1 − 2u_j)(1 − a_j) + u_j·a_j)`` (pcs.md §5.3, §8.3)."""
    if len(u) != len(a):
        raise ValueError(f"mobeq of vectors of lengths {len(u)} and {len(a)}")
    acc = EF.one()
    for uj, aj in zip(u, a):
        uj, aj = _lift(uj), _lift(aj)
        acc = acc * ((1 - uj * 2) * (1 - aj) + uj * aj)
    return acc


def eq_d(b: int, x, y) -> EF:
    """``eqD_b(X, Y) = 2^{-b}·(1 + Σ_{j=1}^{N−1} X^j·Y^{N−j})`` over ``⟨ω_b⟩`` (``N = 2^b``),
    evaluated by the product recurrence of pcs.md §5.2; ``eqD_0 = 1``."""
    x, y = _lift(x), _lift(y)
    res = EF.one()
    for _ in range(b):
        res = (x + y) * res + (x - 1) * (y - 1)
        x, y = x * x, y * y
    return res * _inv_pow2(b)


def eq_d_points(b: int, zs: np.ndarray, y) -> np.ndarray:
    """``eqD_b(z, y)`` at many base-field points ``zs`` ``(n,)`` (canonical ints) and one
    point ``y``: ``(n, 4)`` uint64 canonical coefficients, equal to :func:`eq_d` per point.
    The sum form ``2^{-b}·(1 + Σ_{0<j<N} z^j·y^{N−j})`` is a base-by-extension matrix product
    with the ``N = 2^b`` powers of ``y``: a few NumPy operations for all points."""
    big_n = 1 << b
    z = np.asarray(zs, dtype=np.uint64) % P
    zpow = np.ones((z.shape[0], big_n), dtype=np.uint64)
    for j in range(1, big_n):
        zpow[:, j] = zpow[:, j - 1] * z % P
    y = _lift(y)
    ypow = [EF.one()]
    for _ in range(big_n - 1):
        ypow.append(ypow[-1] * y)
    ys = np.array([ypow[big_n - j].c for j in range(1, big_n)], dtype=np.uint64).reshape(-1, 4)
    acc = (zpow[:, 1:, None] * ys[None] % P).sum(axis=1) % P  # < 2^35: no overflow
    acc[:, 0] = (acc[:, 0] + 1) % P
    return acc * _inv_pow2(b) % P


def eq1_points(b: int, zs: np.ndarray) -> np.ndarray:
    """:func:`eq1` at many base-field points ``zs`` ``(n,)``: ``(n,)`` uint64 canonical."""
    z = np.asarray(zs, dtype=np.uint64) % P
    res = np.ones_like(z)
    for _ in range(b):
        res = res * ((z + 1) % P) % P
        z = z * z % P
    return res * _inv_pow2(b) % P


def eq1(b: int, x) -> EF:
    """``eq1_b(X) = eqD_b(X, 1) = 2^{-b}·Π_{i<b} (X^{2^i} + 1)``."""
    x = _lift(x)
    res = EF.one()
    for _ in range(b):
        res = res * (x + 1)
        x = x * x
    return res * _inv_pow2(b)


def ind(l: int, n: int, z) -> EF:
    """Indicator ``ind_{l,n}(Z)``: 1 if ``n >= 0``, else ``eq1_{−n}(Z^{2^{l+n}})``."""
    if n >= 0:
        return EF.one()
    z = _lift(z)
    for _ in range(l + n):
        z = z * z
    return eq1(-n, z)


def rotcube(x, y) -> tuple:
    """``(eq(x, y), rot)`` with ``rot`` the multilinear extension of
    ``[int(x) ≡ int(y) + 1 (mod 2^d)]`` (little-endian integers); ``(1, 1)`` for ``d = 0``."""
    if len(x) != len(y):
        raise ValueError(f"rotcube of vectors of lengths {len(x)} and {len(y)}")
    rot, e = EF.one(), EF.one()
    for i in range(len(x) - 1, -1, -1):
        xi, yi = _lift(x[i]), _lift(y[i])
        rot = xi * (1 - yi) * e + (1 - xi) * yi * rot
        e = e * (xi * yi + (1 - xi) * (1 - yi))
    return e, rot


def kappa(b: int, x, y) -> EF:
    """Prism rotation kernel ``κ_b((x_0; x'), (y_0; y'))``: on prism points, 1 iff ``x`` is the
    cyclic next row after ``y``. ``x``, ``y``: sequences ``[x_0, x'_1, …]`` of equal length."""
    if len(x) != len(y) or not x:
        raise ValueError("kappa needs two non-empty points of equal length")
    w = two_adic_generator(b)
    y0w = _lift(y[0]) * w
    e, rot = rotcube(x[1:], y[1:])
    return eq_d(b, x[0], y0w) * e + eq1(b, x[0]) * eq1(b, y0w) * (rot - e)


def eq_prism(b: int, x, y) -> EF:
    """``eqP_b((x_0; x'), (y_0; y')) = eqD_b(x_0, y_0)·eq(x', y')``."""
    if len(x) != len(y) or not x:
        raise ValueError("eq_prism needs two non-empty points of equal length")
    return eq_d(b, x[0], y[0]) * eq(x[1:], y[1:])


def eq_sharp_coeffs(l: int, xi) -> list:
    """Coefficients (``Z^0`` first, ``2^l`` of them) of ``eq#_ξ(Z)``, the degree ``< 2^l``
    interpolant on ``D = ⟨ω_l⟩`` of ``ω_l^k ↦ eq(ξ[0..l), bits_l(k))`` (constraints.md §0.2):
    ``coeff_k = 2^{-l}·Π_{i<l} (1 − ξ_i + ξ_i·ω_l^{−(k·2^i mod 2^l)})``."""
    if len(xi) < l:
        raise ValueError(f"eq_sharp needs at least l = {l} coordinates, got {len(xi)}")
    return list(_eq_sharp_coeffs(l, tuple(_lift(x) for x in xi[:l])))


@lru_cache(maxsize=16)
def _eq_sharp_coeffs(l: int, xi: tuple) -> tuple:
    # factor i depends on k mod 2^(l−i) only: the products over i >= l−s for k < 2^s,
    # doubled s = 1..l (2^(l+1) products, not l·2^l)
    n = 1 << l
    w_inv = pow(two_adic_generator(l), P - 2, P)
    inv_pows = [pow(w_inv, e, P) for e in range(n)]
    table = [EF(_inv_pow2(l))]
    for i in range(l - 1, -1, -1):
        x = xi[i]
        a = 1 - x
        size = len(table)
        table = [table[k % size] * (a + x * inv_pows[(k << i) % n]) for k in range(2 * size)]
    return tuple(table)


def lagrange_first(l: int, z) -> EF:
    """``Lfirst(Z) = eqD_l(Z, 1) = 2^{-l}·Σ_{j<2^l} Z^j`` (selector of row 0 on ``D``)."""
    return eq1(l, z)


def lagrange_last(l: int, z) -> EF:
    """``Llast(Z) = eqD_l(Z, ω_l^{−1}) = 2^{-l}·Σ_{j<2^l} (ω_l·Z)^j`` (selector of the last row)."""
    return eq1(l, _lift(z) * two_adic_generator(l))


def lagrange_basis(l: int, z) -> list:
    """``[L_i(z)]_{i<2^l}``, the Lagrange basis of ``D = ⟨ω_l⟩`` at ``z``
    (``L_i(z) = eqD_l(ω_l^i, z)``; exact also for ``z ∈ D``)."""
    return list(_lagrange_basis(l, _lift(z)))


@lru_cache(maxsize=16)
def _lagrange_basis(l: int, z: EF) -> tuple:
    # kept per point: a proof asks for the basis at r_0 once per trace
    w = two_adic_generator(l)
    points = np.array([pow(w, i, P) for i in range(1 << l)], dtype=np.uint64)
    return tuple(EF(*row) for row in eq_d_points(l, points, z).tolist())


def quad(e0, e1, e2, x) -> EF:
    """Value at ``x`` of the degree-≤2 interpolant through ``(0,e0), (1,e1), (2,e2)``."""
    e0, e1, e2, x = _lift(e0), _lift(e1), _lift(e2), _lift(x)
    p = ((e2 - e1) - (e1 - e0)) * HALF
    q = (e1 - e0) - p
    return (p * x + q) * x + e0


def u_cube(l: int, u_prism) -> list:
    """WHIR's point ``(u_0, u_0^2, …, u_0^{2^{l−1}}, u_1, …, u_n)`` (length ``l + n``) from the
    stacked reduction's ``u_prism = (u_0, u_1, …, u_n)`` (pcs.md §7.3 output)."""
    powers, x = [], _lift(u_prism[0])
    for _ in range(l):
        powers.append(x)
        x = x * x
    return powers + [_lift(u) for u in u_prism[1:]]


def interpolate_at_integers(values, x) -> EF:
    """Value at ``x`` of the polynomial of degree ``< n`` through ``(i, values[i])``,
    ``i = 0..n−1`` (Lagrange on the integer nodes; sumcheck round messages)."""
    n = len(values)
    if n == 0:
        raise ValueError("interpolation needs at least one value")
    x = _lift(x)
    prefix = [EF.one()]  # Π_{j<i} (x − j)
    for j in range(n - 1):
        prefix.append(prefix[-1] * (x - j))
    suffix = [EF.one()] * n  # Π_{j>i} (x − j)
    for i in range(n - 2, -1, -1):
        suffix[i] = suffix[i + 1] * (x - (i + 1))
    fact = [1] * n
    for i in range(1, n):
        fact[i] = fact[i - 1] * i % P
    acc = EF.zero()
    for i, v in enumerate(values):
        # Π_{j≠i} (i − j) = i!·(n−1−i)!·(−1)^{n−1−i}
        denom = fact[i] * fact[n - 1 - i] % P
        if (n - 1 - i) % 2:
            denom = P - denom
        acc = acc + _lift(v) * prefix[i] * suffix[i] * pow(denom, P - 2, P)
    return acc


def eq3b_weights(l_skip: int, xi: List[EF], n_logup: int, nt: int, offsets: List[int]) -> List[EF]:
    """``eq3b_{t,σ} = eq(ξ[l+ñ .. l+n_logup), bits(off(t,σ) >> (l+ñ)))`` for the segment offsets
    ``offsets`` of one trace with lifted dimension ``nt`` (constraints.md §6.1; prover and verifier)."""
    out = []
    for off in offsets:
        b = off >> (l_skip + nt)
        bits = [(b >> k) & 1 for k in range(n_logup - nt)]
        out.append(eq(xi[l_skip + nt:l_skip + n_logup], bits))
    return out
