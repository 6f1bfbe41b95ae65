"""Batched number-theoretic transforms over BabyBear subgroups (pcs.md §0).

``DFT(c)[i] = Σ_j c[j]·ω_b^{i·j}`` for a length ``N = 2^b`` axis, natural order in and out
(no bit reversal anywhere). Every other axis is a batch axis, so base ``(N, C)`` and extension
``(N, C, 4)`` data use the same code: the twiddles are base-field elements, and an extension
vector is transformed coefficientwise.

Algorithm: radix-2 Stockham decimation in frequency. Each of the ``b`` passes reads the two
halves of the current array and writes the butterflies interleaved, so the output comes out in
natural order without a bit-reversal gather (gathers are slow in MLX). One pass is one
``mx.compile``d function (add, sub, Montgomery multiply, interleaving stack).

:func:`coset_lde` extends short blocks given on ``D`` to cosets ``s·D`` (round 0 of the batch
constraint sumcheck); its native kernel applies one precomputed ``N×N`` matrix per coset.
:func:`interpolate_cosets` goes the other way: the coefficients of the polynomial of degree
``< E·N`` given by its values on ``E`` cosets.
"""
from __future__ import annotations

import math
import threading
from functools import lru_cache
from typing import Sequence

import mlx.core as mx
import numpy as np

from .. import custom_kernels
from ..device import fused
from ..errors import InvalidInputError
from ..field import bb, ext
from ..field.bb import MONTY_MU, U32, U64, P
from ..tracing import wait

_TWIDDLES: dict = {}
_STREAMS = threading.local()


def worker_streams() -> list:
    """Two streams on the default device, created once per thread (MLX streams belong to the
    thread that made them). On CPU each stream has its own worker thread, so independent
    graphs put on different streams run on different cores.

    Measured on CPU (mlx 0.32): the streams overlap when each stream's subgraph starts from
    evaluated arrays (slicing them inside the stream's context is fine) and the results are
    joined afterwards; a lazy input computed on another stream serialises them."""
    device = mx.default_device()
    cache = getattr(_STREAMS, "by_device", None)
    if cache is None:
        cache = _STREAMS.by_device = {}
    key = str(device)
    if key not in cache:
        cache[key] = [mx.new_stream(device), mx.new_stream(device)]
    return cache[key]


def twiddles_mont(log_n: int, inverse: bool = False) -> mx.array:
    """``ω_n^{±p}·2^32 mod p`` for ``p < n/2`` (``n = 2^log_n``), shape ``(n/2, 1, 1)`` uint32.

    Cached per size; built by whole-array doubling (:func:`mlx_stark.field.bb.powers`)."""
    key = (log_n, inverse)
    tw = _TWIDDLES.get(key)
    if tw is None:
        w = bb.two_adic_generator(log_n)
        if inverse:
            w = pow(w, P - 2, P)
        tw = bb.to_mont(bb.powers(w, max(1, (1 << log_n) // 2))).reshape(-1, 1, 1)
        wait(tw)
        _TWIDDLES[key] = tw
    return tw


@fused
def _dif_stage(a: mx.array, b: mx.array, tw: mx.array) -> mx.array:
    """Stockham butterfly: ``a, b`` (pre, m, s, post) -> (pre, m, 2, s, post) holding
    ``a + b`` and ``(a − b)·tw`` interleaved (``tw`` (m, 1, 1) in Montgomery form)."""
    s = a + b
    s = mx.minimum(s, s - P)
    d = a - b
    d = mx.minimum(d, d + P)
    x = d.astype(U64) * tw.astype(U64)
    t = x.astype(U32) * MONTY_MU
    r = (x >> 32).astype(U32) - ((t.astype(U64) * P) >> 32).astype(U32)
    return mx.stack([s, mx.minimum(r, r + P)], axis=2)


def _log2_exact(n: int) -> int:
    if n < 1 or n & (n - 1):
        raise ValueError(f"transform length must be a power of two, got {n}")
    return n.bit_length() - 1


def _transform(x: mx.array, axis: int, inverse: bool, size: int | None = None) -> mx.array:
    """Unscaled DFT (``inverse``: with ``ω^{-1}``) along ``axis``, of length ``size`` (``x``
    zero-padded along ``axis``; default its length); ``x``'s shape with ``size`` on ``axis``."""
    axis = axis % x.ndim
    n_in = x.shape[axis]
    n = n_in if size is None else size
    log_n = _log2_exact(n)
    if n_in > n:
        raise InvalidInputError(f"{n_in} rows do not fit a transform of length {n}")
    shape = x.shape[:axis] + (n,) + x.shape[axis + 1:]
    pre, post = math.prod(shape[:axis]), math.prod(shape[axis + 1:])
    y = x.astype(U32)
    kernel = custom_kernels.native("ntt.transform")
    if kernel is not None:  # (the kernel reads the padding rows as zeros)
        return kernel(y.reshape(pre, n_in, post), log_n, inverse).reshape(shape)
    if n_in < n:
        y = mx.concatenate([y, mx.zeros(x.shape[:axis] + (n - n_in,) + x.shape[axis + 1:], dtype=U32)],
                           axis=axis)
    s = 1  # Stockham stride: the first pass has s = 1, m = n/2 and twiddles of order n
    for stage in range(log_n):
        m = n // (2 * s)
        v = y.reshape(pre, 2, m, s, post)
        y = _dif_stage(v[:, 0], v[:, 1], twiddles_mont(log_n - stage, inverse))
        s *= 2
    return y.reshape(shape)


def dft(x: mx.array, axis: int = 0, size: int | None = None) -> mx.array:
    """DFT along ``axis`` of length ``2^b``: ``out[i] = Σ_j x[j]·ω_b^{ij}``.

    ``x``: uint32 canonical, any shape (e.g. ``(N, C)`` base or ``(N, C, 4)`` extension with
    ``axis=0``). Returns the same shape, natural order; with ``size`` (a power of two, at least
    ``x``'s length along ``axis``) the DFT of ``x`` zero-padded to ``size`` there."""
    return _transform(x, axis, inverse=False, size=size)


def idft(x: mx.array, axis: int = 0) -> mx.array:
    """Inverse of :func:`dft` along ``axis`` (values at ``ω_b^i`` -> coefficients)."""
    return bb.mont_mul(_transform(x, axis, inverse=True), _inverse_size(x.shape[axis]))


@lru_cache(maxsize=64)
def _inverse_size(n: int) -> mx.array:
    """``1/n`` in Montgomery form (a ``bb.mont_mul`` factor), kept per size."""
    return mx.array((pow(n, P - 2, P) << 32) % P, dtype=U32)


def lde(coeffs: mx.array, log_blowup: int) -> mx.array:
    """DFT of ``coeffs`` zero-padded along axis 0 from ``2^d`` to ``2^{d+β}`` (``β = log_blowup``):
    ``out[i] = Σ_j coeffs[j]·ω_{d+β}^{i·j}`` — the Reed–Solomon codeword of rate ``2^{−β}``.

    With ``i = c + 2^β·t``: ``out[i] = DFT_d(coeffs ⊙ ω_{d+β}^{c·j})[t]``, so the ``2^β``
    shifted copies are transformed independently (spread over :func:`worker_streams`) and
    interleaved by one final stack, which leaves the codeword in natural order.

    ``coeffs``: ``(2^d, ...)`` uint32 (base, or extension with a trailing 4) ->
    ``(2^{d+β}, ...)`` uint32. Evaluates ``coeffs`` first (see :func:`worker_streams`)."""
    n = coeffs.shape[0]
    log_n = _log2_exact(n) + log_blowup
    if log_blowup == 0 or custom_kernels.native("ntt.transform") is not None:
        return dft(coeffs, size=n << log_blowup)  # natively: the kernel reads the padding
    wait(coeffs)
    streams = worker_streams()
    w = bb.two_adic_generator(log_n)
    outs = []
    for c in range(1 << log_blowup):
        with mx.stream(streams[c % len(streams)]):
            x = coeffs
            if c:
                tw = bb.to_mont(bb.powers(pow(w, c, P), n))
                x = bb.mont_mul(coeffs, tw.reshape((n,) + (1,) * (coeffs.ndim - 1)))
            outs.append(dft(x))
    return mx.stack(outs, axis=1).reshape((n << log_blowup,) + coeffs.shape[1:])


@lru_cache(maxsize=32)
def _shift_powers(n: int, shifts: tuple) -> mx.array:
    """``s^j`` for ``s`` in ``shifts``, ``j < n``: ``(E, n)`` uint32."""
    return mx.array([[pow(s, j, P) for j in range(n)] for s in shifts], dtype=U32)


# Output elements of one chunk of :func:`coset_lde_ops`: its transforms' temporaries are ~10x
# their output, so larger inputs are extended a chunk of rows at a time.
_LDE_OPS_CHUNK_ELEMS = 1 << 22


def coset_lde_ops(values: mx.array, shifts: Sequence[int]) -> mx.array:
    """:func:`coset_lde` with MLX ops (the reference): coefficients by :func:`idft`, scaled by
    ``s^j`` per coset, evaluated by :func:`dft`. Arguments as checked by :func:`coset_lde`.
    The leading rows go in chunks of at most ``_LDE_OPS_CHUNK_ELEMS`` output elements, each
    evaluated into a preallocated output before the next is built."""
    n, e = values.shape[-1], len(shifts)
    powers = _shift_powers(n, tuple(shifts))

    def extend(rows: mx.array) -> mx.array:
        return dft(bb.mul(idft(rows.astype(U32), axis=-1)[..., None, :], powers), axis=-1)

    lead = values.shape[:-1]
    rows = math.prod(lead)
    step = max(1, _LDE_OPS_CHUNK_ELEMS // (e * n))
    if rows <= step:
        return extend(values)
    flat = values.reshape(rows, n)
    out = mx.zeros((rows, e, n), dtype=U32)
    for a in range(0, rows, step):
        out[a:a + step] = extend(flat[a:a + step])
        wait(out)  # frees the chunk's temporaries (written in place: nothing else holds out)
    return out.reshape(lead + (e, n))


def coset_lde(values: mx.array, shifts: Sequence[int]) -> mx.array:
    """Values on the cosets ``shifts[e]·D`` of the polynomials given by their values on
    ``D = ⟨ω_N⟩``: ``out[..., e, i] = f(shifts[e]·ω_N^i)`` where ``f`` (degree ``< N``) has
    ``f(ω_N^j) = values[..., j]``.

    ``values``: ``(..., N)`` uint32 canonical, ``N`` a power of two, natural order;
    ``shifts``: ``E >= 1`` field elements. Returns ``(..., E, N)`` uint32, natural order.
    Raises :class:`InvalidInputError` for another ``N``, no shifts or a shift outside
    ``[0, p)``."""
    if values.ndim == 0:
        raise InvalidInputError("coset_lde needs values with a trailing axis of length N")
    n = values.shape[-1]
    if n < 1 or n & (n - 1):
        raise InvalidInputError(f"coset_lde needs a power-of-two N, got {n}")
    shifts = tuple(int(s) for s in shifts)
    if not shifts:
        raise InvalidInputError("coset_lde needs at least one shift")
    if any(not 0 <= s < P for s in shifts):
        raise InvalidInputError("coset_lde shifts must be field elements in [0, p)")
    kernel = custom_kernels.native("ntt.coset_lde")
    if kernel is not None:
        return kernel(values, shifts)
    return coset_lde_ops(values, shifts)


def _vandermonde_inverse(nodes: Sequence[int]) -> list:
    """Inverse of ``V[i][m] = nodes[i]^m`` over F (small, host ints; ``nodes`` distinct)."""
    e = len(nodes)
    a = [[pow(y, m, P) for m in range(e)] + [int(i == r) for i in range(e)]
         for r, y in enumerate(nodes)]
    for col in range(e):
        piv = next(r for r in range(col, e) if a[r][col])
        a[col], a[piv] = a[piv], a[col]
        inv = pow(a[col][col], P - 2, P)
        a[col] = [x * inv % P for x in a[col]]
        for r in range(e):
            if r != col and a[r][col]:
                f = a[r][col]
                a[r] = [(x - f * y) % P for x, y in zip(a[r], a[col])]
    return [row[e:] for row in a]


def _coset_weights_host(shifts: tuple, n: int) -> np.ndarray:
    """``W[m][i][r] = Vinv[m][i]·shifts[i]^{−r}`` of :func:`interpolate_cosets`: ``(E, E, N)``
    uint64 canonical."""
    vinv = _vandermonde_inverse([pow(s, n, P) for s in shifts])
    weights = []
    for m in range(len(shifts)):
        row = []
        for i, s in enumerate(shifts):
            si = pow(s, P - 2, P)
            row.append([vinv[m][i] * pow(si, r, P) % P for r in range(n)])
        weights.append(row)
    return np.array(weights, dtype=np.uint64)


@lru_cache(maxsize=16)
def _coset_weights(shifts: tuple, n: int) -> mx.array:
    """:func:`_coset_weights_host` as extension elements ``(E, E, N, 4)``, kept per cosets."""
    return ext.from_base(mx.array(_coset_weights_host(shifts, n).astype(np.uint32)))


# Points of the cosets up to which interpolate_cosets applies one (E·N)^2 matrix (round 0's:
# N = 2^l_skip, E ≤ the constraint degree) instead of an iDFT and the E x E solves.
_MATRIX_POINTS = 128


def interpolate_cosets(values: mx.array, shifts: Sequence[int]) -> mx.array:
    """Coefficients of the polynomial of degree ``< E·N`` with the given values on the cosets
    ``shifts[i]·D`` (``|D| = N``, shifts with distinct ``shift^N``).

    ``values``: ``(E, N, ..., 4)`` uint32, ``values[i, k]`` at ``shifts[i]·ω^k``. Returns
    ``(E·N, ..., 4)``. With ``c_{r+mN}`` the coefficients, the iDFT of coset ``i`` is
    ``shifts[i]^r·Σ_m c_{r+mN}·(shifts[i]^N)^m``: one ``E × E`` Vandermonde solve per ``r``,
    applied as one extension dot product over ``i`` (:func:`mlx_stark.field.ext.mul_sum`);
    for at most :data:`_MATRIX_POINTS` points the iDFT and the solves are one matrix, one
    dot product."""
    e, n = values.shape[0], values.shape[1]
    batch = (1,) * (values.ndim - 3)
    if e * n <= _MATRIX_POINTS:  # iDFT and solve as one matrix: one dot product
        m = _coset_matrix(tuple(shifts), n).reshape((e * n, e * n) + batch + (4,))
        return ext.mul_sum(m, values.reshape((1, e * n) + values.shape[2:]), 1)
    u = idft(values, axis=1)
    w = _coset_weights(tuple(shifts), n).reshape((e, e, n) + batch + (4,))
    coeffs = ext.mul_sum(w, u[None], 1)
    return coeffs.reshape((e * n,) + values.shape[2:])



@lru_cache(maxsize=16)
def _coset_matrix(shifts: tuple, n: int) -> mx.array:
    """``M[(m, r), (i, k)] = W[m][i][r]·ω_n^{−rk}/n`` (:func:`_coset_weights` after the iDFT of
    coset ``i``) as extension elements ``(E·N, E·N, 4)`` uint32 (base-field values), kept per
    cosets."""
    e = len(shifts)
    w = _coset_weights_host(shifts, n)  # [m, i, r]
    inv_w, inv_n = pow(bb.two_adic_generator(n.bit_length() - 1), P - 2, P), pow(n, P - 2, P)
    idft_rk = np.array([[pow(inv_w, r * k % n, P) * inv_n % P for k in range(n)]
                        for r in range(n)], dtype=np.uint64)  # [r, k]
    m = w.transpose(0, 2, 1)[:, :, :, None] * idft_rk[None, :, None, :] % P  # [m, r, i, k]
    return ext.from_base(mx.array(m.reshape(e * n, e * n).astype(np.uint32)))
