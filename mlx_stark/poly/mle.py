"""Multilinear and prismalinear tables on device (pcs.md §0, §5, §8.2).

Tables are indexed little-endian along axis 0: bit ``j`` of the row index is variable ``j``.
A *base* table is ``(N, ...)`` uint32; an *extension* table is ``(N, ..., 4)`` uint32. Because a
trailing axis of 4 is also a legal base batch shape, functions that accept both take an explicit
``base`` flag. Challenges and points are host values (:class:`~mlx_stark.field.host.EF` or int).
"""
from __future__ import annotations

import functools
import math

import mlx.core as mx

from .. import custom_kernels
from ..device import fused
from ..field import bb, ext
from ..field.bb import U32, U64, P
from ..field.host import EF
from ..tracing import wait
from . import host

# Table elements (uint32) that fold_skip's ops path folds at once (base tables).
_FOLD_CHUNK_ELEMS = 1 << 22


def _ef4(x) -> mx.array:
    """A host EF / int (or a ``(4,)`` device array) as a ``(4,)`` uint32 array."""
    return ext.constant(x)


def _split_axis(x: mx.array, axis: int):
    axis = axis % x.ndim
    return math.prod(x.shape[:axis]), x.shape[axis], math.prod(x.shape[axis + 1:])


def _log2_exact(n: int, what: str) -> int:
    if n < 1 or n & (n - 1):
        raise ValueError(f"{what} must be a power of two, got {n}")
    return n.bit_length() - 1


# ------------------------------------------------------------------ subset-sum transforms
@fused
def _zeta_pair(a0: mx.array, a1: mx.array) -> mx.array:
    s = a0 + a1
    return mx.stack([a0, mx.minimum(s, s - P)], axis=2)


@fused
def _mobius_pair(a0: mx.array, a1: mx.array) -> mx.array:
    d = a1 - a0
    return mx.stack([a0, mx.minimum(d, d + P)], axis=2)


def _subset_transform(x: mx.array, bits, axis: int, pair) -> mx.array:
    pre, n, post = _split_axis(x, axis)
    d = _log2_exact(n, "transform length")
    y = x
    for b in (range(d) if bits is None else bits):
        if not 0 <= b < d:
            raise ValueError(f"bit {b} out of range for length 2^{d}")
        lo = 1 << b
        v = y.reshape(pre, n // (2 * lo), 2, lo, post)
        y = pair(v[:, :, 0], v[:, :, 1])
    return y.reshape(x.shape)


def zeta(x: mx.array, bits=None, axis: int = 0) -> mx.array:
    """Subset-sum transform over index ``bits`` (default all) of ``axis``:
    ``out[i] = Σ_{i' ⊆ i (on those bits)} x[i']`` (coefficients -> hypercube values).
    Any shape/dtype layout of base or extension data (coefficientwise); same shape out. With
    native kernels (uint32, all bits): a few passes of several bits each (``mle.zeta``)."""
    kernel = custom_kernels.native("mle.zeta") if bits is None and x.dtype == U32 else None
    if kernel is not None:
        return kernel(x, axis)
    return _subset_transform(x, bits, axis, _zeta_pair)


def mobius(x: mx.array, bits=None, axis: int = 0) -> mx.array:
    """Inverse of :func:`zeta` over the same ``bits`` (hypercube values -> coefficients); native
    kernels as :func:`zeta` (``mle.mobius``)."""
    kernel = custom_kernels.native("mle.mobius") if bits is None and x.dtype == U32 else None
    if kernel is not None:
        return kernel(x, axis)
    return _subset_transform(x, bits, axis, _mobius_pair)


# ------------------------------------------------------------------ product tables
def product_table(factors) -> mx.array:
    """``T[i] = Π_j (bit_j(i) ? a1_j : a0_j)`` for ``factors = [(a0_j, a1_j)]`` (host values or
    ``(4,)`` device arrays).

    Built by doubling: the table for ``j + 1`` factors is ``[T·a0_j, T·a1_j]`` concatenated,
    so the new factor owns bit ``j``. Returns ``(2^d, 4)`` uint32 (``(1, 4)`` = [1] for d = 0).
    With native kernels: one launch (``mle.product_table``)."""
    kernel = custom_kernels.native("mle.product_table") if factors else None
    if kernel is not None:
        return kernel(_stack_values([v for pair in factors for v in pair]).reshape(-1, 2, 4))
    table = ext.constant(1).reshape(1, 4)  # kept per process (no factors: every tiny trace)
    for a0, a1 in factors:
        table = mx.concatenate([ext.mul(table, _ef4(a0)), ext.mul(table, _ef4(a1))], axis=0)
    return table


def eq_table(point) -> mx.array:
    """``T[i] = eq(bits(i), point)`` for ``point`` of length ``d`` (host values or ``(4,)``
    device arrays): ``(2^d, 4)`` uint32. With native kernels: one launch (``mle.eq_table``)."""
    kernel = custom_kernels.native("mle.eq_table") if len(point) else None
    if kernel is not None:
        return kernel(_stack_values(point))
    return product_table([(ext.one_minus(p), p) for p in point])


def eq_suffix_tables(point) -> list:
    """The eq tables of every suffix of ``point`` (length ``d``; host values or ``(4,)``
    device arrays): ``[eq_table(point[k:]) for k = 0..d]``, ``(2^(d−k), 4)`` uint32 each, the
    last ``[1]``. Each is the previous one's pairs summed (``eq(p, 0) + eq(p, 1) = 1``: the
    weights of a sumcheck over the suffix after its first variable is bound). With native
    kernels: one launch (``mle.eq_suffix_tables``), the tables views of its output."""
    kernel = custom_kernels.native("mle.eq_suffix_tables") if len(point) else None
    if kernel is not None:
        return kernel(_stack_values(point))
    tables = [eq_table(point)]
    for _ in range(len(point)):
        pairs = tables[-1].reshape(-1, 2, 4)
        tables.append(ext.add(pairs[:, 0], pairs[:, 1]))
    return tables


def _stack_values(values) -> mx.array:
    """Host values and ``(4,)`` device arrays as one ``(n, 4)`` array (one host array when
    none is on the device)."""
    if not any(isinstance(v, mx.array) for v in values):
        return ext.from_host(values)
    return mx.stack([_ef4(v) for v in values])


def mobeq_table(u) -> mx.array:
    """``T[b] = MobEq(u, b) = Π_j (b_j ? u_j : 1 − 2u_j)`` (WHIR's initial weights, pcs.md §8.2):
    ``(2^d, 4)`` uint32."""
    return product_table([(1 - EF.lift(x) * 2, EF.lift(x)) for x in u])


# ------------------------------------------------------------------ folding and evaluation
@fused
def _fold_ext(t0: mx.array, t1: mx.array, r: mx.array) -> mx.array:
    return ext.add(t0, ext.mul(ext.sub(t1, t0), r))


@fused
def _fold_base(t0: mx.array, t1: mx.array, r: mx.array) -> mx.array:
    d = t1 - t0
    d = mx.minimum(d, d + P)
    prod = ((d[..., None].astype(U64) * r.astype(U64)) % P).astype(U32)
    c0 = prod[..., :1] + t0[..., None]
    return mx.concatenate([mx.minimum(c0, c0 - P), prod[..., 1:]], axis=-1)


def fold_lowest(table: mx.array, r, base: bool = False) -> mx.array:
    """Bind variable 0 to ``r``: ``T'[y] = T[2y] + r·(T[2y+1] − T[2y])``.

    ``table``: base ``(N, ...)`` (``base=True``) or extension ``(N, ..., 4)``, ``N >= 2`` even
    (a power of two for a multilinear table; any even ``N`` folds its adjacent rows in pairs).
    Returns the extension table ``(N/2, ..., 4)``. Runs the native kernel
    (:func:`mlx_stark.custom_kernels.sumcheck.fold_ext` / ``fold_base``) where the device has one."""
    n = table.shape[0]
    if n < 2 or n % 2:
        raise ValueError(f"a fold needs an even table length >= 2, got {n}")
    kernel = custom_kernels.native("mle.fold_lowest:base" if base else "mle.fold_lowest:ext")
    if kernel is not None:
        return kernel(table, r)
    v = table.reshape(n // 2, 2, *table.shape[1:])
    fold = _fold_base if base else _fold_ext
    return fold(v[:, 0], v[:, 1], _ef4(r))


def mle_eval(table: mx.array, point, base: bool = False) -> mx.array:
    """Multilinear extension of ``table`` (``2^d`` rows, layout as :func:`fold_lowest`) at
    ``point`` (``d`` host values), batched over the other axes: returns ``(..., 4)``."""
    if table.shape[0] != 1 << len(point):
        raise ValueError(f"table of {table.shape[0]} rows cannot be evaluated at {len(point)} variables")
    t = table
    for j, r in enumerate(point):
        t = fold_lowest(t, r, base=base and j == 0)
    if not point:
        t = ext.from_base(t) if base else t
    return t[0]


def eq_table_squares(z: mx.array, d: int) -> mx.array:
    """:func:`eq_table` at ``z, z^2, z^4, …, z^(2^(d−1))`` for a ``(4,)`` device array ``z``
    (WHIR's out-of-domain weights, the ops reference of its weight update): ``(2^d, 4)``
    uint32."""
    points, x = [], z
    for _ in range(d):
        points.append(x)
        x = ext.mul(x, x)
    return eq_table(points)


def ext_powers(x, n: int) -> mx.array:
    """``[1, x, …, x^{n−1}]`` for a host EF ``x`` or a ``(4,)`` device array: ``(n, 4)``
    uint32, built by doubling (with native kernels: one launch, ``mle.ext_powers``)."""
    kernel = custom_kernels.native("mle.ext_powers")
    if kernel is not None:
        return kernel(_ef4(x), n)
    out = ext.ones((1,))
    step = x if isinstance(x, mx.array) else EF.lift(x)
    while out.shape[0] < n:
        out = mx.concatenate([out, ext.mul(out, _ef4(step))], axis=0)
        step = ext.mul(step, step) if isinstance(step, mx.array) else step * step
    return out[:n]


def interpolate_at_integers(values: mx.array, x) -> mx.array:
    """Value at ``x`` of the polynomial of degree ``< n`` through ``(i, values[i])``,
    ``i = 0..n−1``: ``values`` ``(n, 4)`` uint32 on the device, ``x`` a host value (its Lagrange
    weights come from :func:`mlx_stark.poly.host.interpolate_at_integers`) or a ``(4,)``
    device array (prefix and suffix products of ``x − j`` on the device). Returns ``(4,)``."""
    n = values.shape[0]
    if not isinstance(x, mx.array):
        basis = _integer_basis(n, x) if isinstance(x, int) else _basis(n, x)
        return ext.mul_sum(values, basis, 0)
    kernel = custom_kernels.native("mle.interpolate_at_integers")
    out = kernel(values, x) if kernel is not None else None
    if out is not None:
        return out
    diffs = [ext.sub(x, ext.constant(j)) for j in range(n)]  # x − j
    prefix, suffix = [ext.ones(())], [ext.ones(())]
    for j in range(n - 1):
        prefix.append(ext.mul(prefix[-1], diffs[j]))
        suffix.append(ext.mul(suffix[-1], diffs[n - 1 - j]))
    suffix.reverse()  # suffix[i] = Π_{j>i} (x − j)
    weights = ext.mul(ext.mul(mx.stack(prefix), mx.stack(suffix)), ext.from_host(node_inverses(n)))
    return ext.mul_sum(values, weights, 0)


def _basis(n: int, x) -> mx.array:
    """The Lagrange weights of the nodes ``0..n−1`` at a host ``x``: ``(n, 4)``."""
    return ext.from_host([host.interpolate_at_integers([int(i == k) for i in range(n)], x)
                          for k in range(n)])


@functools.lru_cache(maxsize=64)
def _integer_basis(n: int, x: int) -> mx.array:
    """:func:`_basis` at an integer (each sumcheck round extrapolates to ``d + 1``), kept."""
    return _basis(n, x)


@functools.lru_cache(maxsize=None)
def node_inverses(n: int) -> list:
    """``1 / Π_{j≠i} (i − j) = 1 / (i!·(n−1−i)!·(−1)^{n−1−i})`` for ``i < n`` (ints mod p): the
    Lagrange denominators of the integer nodes ``0..n−1``."""
    fact = [1] * n
    for i in range(1, n):
        fact[i] = fact[i - 1] * i % P
    return [pow(fact[i] * fact[n - 1 - i] * (-1) ** ((n - 1 - i) % 2) % P, P - 2, P) for i in range(n)]


def eval_univariate(coeffs: mx.array, x, base: bool = False) -> mx.array:
    """``Σ_j coeffs[j]·x^j`` for every polynomial of a batch at one point ``x`` (host EF or
    ``(4,)`` device array).

    ``coeffs``: ``(n, ...)`` base (``base=True``) or ``(n, ..., 4)`` extension, constant term
    first along axis 0. Returns ``(..., 4)``."""
    n = coeffs.shape[0]
    batch_ndim = coeffs.ndim - (1 if base else 2)
    pw = ext_powers(x, n).reshape((n,) + (1,) * batch_ndim + (4,))
    if base:
        return bb.sum(ext.mul_base(pw, coeffs), axis=0)
    return ext.mul_sum(coeffs, pw, 0)  # one launch with native kernels


@fused
def _dot_base(w: mx.array, *ts: mx.array) -> mx.array:
    """``Σ_i ts[i]·w[i]`` for up to 4 base ``ts`` (…) and EF weights ``w`` (k, 4): the products
    stay below ``p^2 < 2^62``, so four of them add up in uint64 before a single reduction."""
    acc = ts[0][..., None].astype(U64) * w[0, ...].astype(U64)
    for i in range(1, len(ts)):
        acc = acc + ts[i][..., None].astype(U64) * w[i, ...].astype(U64)
    return (acc % P).astype(U32)


@fused
def _acc_ext(acc: mx.array, t: mx.array, w: mx.array) -> mx.array:
    return acc + ext.mul(t, w).astype(U64)


def _skip_base(v: mx.array, w: mx.array, l: int) -> mx.array:
    """``Σ_{i0} v[:, i0]·w[i0]``: ``v`` ``(B, 2^l, ...)`` base, ``w`` ``(2^l, 4)``; ``(B, ..., 4)``."""
    parts = [_dot_base(w[g:g + 4], *(v[:, i] for i in range(g, min(g + 4, 1 << l))))
             for g in range(0, 1 << l, 4)]
    if len(parts) == 1:
        return parts[0]
    acc = parts[0].astype(U64)
    for part in parts[1:]:
        acc = acc + part
    return (acc % P).astype(U32)


def fold_skip(table: mx.array, l: int, z, base: bool = True) -> mx.array:
    """Evaluate the ``Z``-interpolants of a prism table at ``z`` (pcs.md §5.1, §7.4).

    ``table``: ``(2^l·B, ...)`` base (``base=True``) or ``(2^l·B, ..., 4)`` extension, row
    ``i0 + 2^l·x`` holding the value at ``(ω_l^{i0}, x)``. Returns ``(B, ..., 4)`` with
    ``out[x] = q̂(z, x) = Σ_{i0} table[i0 + 2^l·x]·L_{i0}(z)`` (Lagrange basis of ``⟨ω_l⟩`` at
    ``z``, host weights). A base table on a device with native kernels is one weighted sum
    (:func:`mlx_stark.custom_kernels.linear.weighted_sum` with ``X = 2^l``)."""
    n = table.shape[0]
    blocks = n >> l
    if blocks << l != n:
        raise ValueError(f"table height {n} is not a multiple of 2^{l}")
    v = table.reshape(blocks, 1 << l, *table.shape[1:])
    weights = host.lagrange_basis(l, z)
    if base:
        w = ext.from_host(weights)
        inner = math.prod(table.shape[1:])
        kernel = custom_kernels.native("mle.fold_skip:base")
        if kernel is not None:  # one launch, no uint64 temporaries of the table's size
            return kernel(v.reshape(blocks, 1 << l, inner), w).reshape(blocks, *table.shape[1:], 4)
        step = max(1, _FOLD_CHUNK_ELEMS // (inner << l))
        if step >= blocks:
            return _skip_base(v, w, l)
        # the ops path's temporaries are several times the table: fold a few row blocks at a
        # time into a preallocated output (written in place: nothing else holds it)
        out = mx.zeros((blocks, *table.shape[1:], 4), dtype=U32)
        for a in range(0, blocks, step):
            out[a:a + step] = _skip_base(v[a:a + step], w, l)
            wait(out)  # frees the chunk's temporaries (a lazy chunk update would copy `out`)
        return out
    else:
        acc = mx.zeros(v.shape[:1] + v.shape[2:], dtype=U64)
        for i0, w in enumerate(weights):
            acc = _acc_ext(acc, v[:, i0], _ef4(w))
    return (acc % P).astype(U32)
