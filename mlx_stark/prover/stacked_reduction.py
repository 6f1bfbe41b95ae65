"""Prover of the stacked opening reduction (pcs.md §7): reduce the column opening claims at
the batch-constraint point ``r`` to one opening per stacked column at a new point ``u_prism``.

Slices (pcs.md §7.1) are numbered over the commitments in commitment-list order, each in its
layout order. Per slice ``i`` the weight of pcs.md §7.2 factors as

    λ^{2i}·E_i + [rot_i]·λ^{2i+1}·Rot_i  =  A_i(Z)·T_ñ[x − x0_i] + B_i(Z)·T_ñ[x − 1 − x0_i]

on the slice's window ``x ∈ [x0_i, x0_i + 2^ñ)`` of stacked rows (zero elsewhere), with
``T_ñ = eq_table(r_1..r_ñ)`` (the rotated table is ``rotcube``, pcs.md §7.4) and
``A_i = λ^{2i}·e_h + [rot_i]·λ^{2i+1}·a_h``, ``B_i = [rot_i]·λ^{2i+1}·b_h`` where, with
``b``, ``ρ_0`` as in §7.2 and ``c = eq1_b(ρ_0·ω_b)``:

    e_h(Z) = ind(Z)·eqD_b(Z, ρ_0),   a_h(Z) = ind(Z)·(eqD_b(Z, ρ_0·ω_b) − eq1_b(Z)·c),
    b_h(Z) = ind(Z)·eq1_b(Z)·c.

Round 0 contracts every slice's window with ``(T_ñ, T_ñ rotated)`` (``2^l`` values of ``Z`` on
``D``), extends the results to ``D' = ⟨ω_{l+1}⟩``, multiplies by ``A_i``, ``B_i`` there and
interpolates ``s_0`` exactly (degree ``≤ 2^{l+1} − 2``). Rounds ``1..n`` are a degree-2 product
sumcheck between the stacked columns folded at ``u_0`` and the weight tables.
"""
from __future__ import annotations

from functools import lru_cache

import mlx.core as mx
import numpy as np

from .. import arrays, custom_kernels
from ..device import native_kernels_active
from ..errors import InvalidInputError
from ..field import bb, ext
from ..field.bb import P, U32, U64, two_adic_generator
from ..field.host import EF
from ..params import SystemParams
from ..poly import coset_lde, eq_table, ext_powers, fold_lowest, fold_skip, host, idft
from ..proof.pcs import StackingProof
from ..tracing import span, wait
from ..transcript import Transcript, device_segment
from .stacked_pcs import stacked_matrix
from .sumcheck import fold_product_round_step, product_round_step

# Largest uint64 temporary (elements) of one chunk of :func:`weighted_sum`; elements (uint32)
# of the windows round 0 copies at once and of one chunk of :func:`weight_table`.
_CHUNK_ELEMS = 1 << 22


def weighted_sum(values: mx.array, weights: mx.array) -> mx.array:
    """``out[a, b, c] = Σ_x values[a, x, b]·weights[x, c]`` over F.

    ``values``: ``(A, X, B)`` uint32; ``weights``: ``(X, C)`` uint32 (e.g. ``C = 4`` for the
    coefficients of extension weights). Returns ``(A, B, C)`` uint32; weights that are not
    ``(X, C)`` raise :class:`InvalidInputError`. Products are Montgomery multiplications by
    the weights in Montgomery form (canonical results), accumulated in uint64 (exact for
    ``X < 2^33``). The ``x`` axis is processed in chunks so that no
    temporary exceeds ``_CHUNK_ELEMS`` elements; each chunk is evaluated before the next is
    built, otherwise the lazy graph keeps all of them alive. The native kernel
    (:func:`mlx_stark.custom_kernels.linear.weighted_sum`) runs instead where the device has one."""
    a, x, b = values.shape
    if weights.ndim != 2 or weights.shape[0] != x:
        raise InvalidInputError(f"weights {tuple(weights.shape)} do not match values {tuple(values.shape)}")
    kernel = custom_kernels.native("stacked_reduction.weighted_sum")
    if kernel is not None:
        return kernel(values, weights)
    c = weights.shape[1]
    weights_mont = bb.to_mont(weights)
    step = max(1, _CHUNK_ELEMS // max(1, a * b * c))
    acc = None
    for lo in range(0, x, step):
        prod = bb.mont_mul(values[:, lo:lo + step, :, None], weights_mont[None, lo:lo + step, None, :])
        part = mx.sum(prod.astype(U64), axis=1)
        acc = part if acc is None else acc + part
        if x > step:
            wait(acc)
    if acc is None:
        return mx.zeros((a, b, c), dtype=U32)
    return (acc % P).astype(U32)


def weight_table(n: int, width: int, pieces: list) -> mx.array:
    """The weight table of one commitment, ``(2^n, W, 4)`` uint32: the sum over ``pieces``
    ``(ñ, A, B, T, T_rot)`` (``A``, ``B`` ``(2^{n−ñ}, W, 4)``: the slices' coefficients on
    their window's grid cell, zero elsewhere; ``T``, ``T_rot`` ``(2^ñ, 4)``) of
    ``w[a·2^ñ + k, col] = A[a, col]·T[k] + B[a, col]·T_rot[k]``. Built a few rows at a time
    (the extension products' uint64 temporaries are several times the table), each chunk
    evaluated, then concatenated: an update of a preallocated output under ``async_eval``
    copies the output per chunk (docs/tracking/peak-memory.md)."""
    rows = 1 << min(n, max(0, (_CHUNK_ELEMS // (4 * width)).bit_length() - 1))
    if rows == 1 << n:
        return _weight_rows(0, rows, width, pieces)
    parts = []
    for lo in range(0, 1 << n, rows):
        parts.append(_weight_rows(lo, rows, width, pieces))
        mx.async_eval(parts[-1])  # frees the chunk's temporaries; no host wait
    return mx.concatenate(parts)


def _weight_rows(lo: int, rows: int, width: int, pieces: list) -> mx.array:
    """Rows ``lo..lo+rows`` of :func:`weight_table` (``lo`` a multiple of ``rows``, a power of two):
    ``(rows, W, 4)`` uint32."""
    out = None
    for nt, grid_a, grid_b, t_eq, t_rot in pieces:
        # whole windows a0..a1, or the part k0..k1 of window a0
        a0, k0 = lo >> nt, lo & ((1 << nt) - 1)
        a1, k1 = max(a0 + 1, (lo + rows) >> nt), k0 + min(rows, 1 << nt)
        piece = ext.add(ext.mul(grid_a[a0:a1, None], t_eq[None, k0:k1, None]),
                        ext.mul(grid_b[a0:a1, None], t_rot[None, k0:k1, None]))
        out = ext.accumulate(out, piece.reshape(rows, width, 4))
    return ext.zeros((rows, width)) if out is None else out


def _height_params(l: int, h: int, r0: EF) -> tuple:
    """``(n_h, b, ρ_0, ρ_0·ω_b, c)`` of a height (pcs.md §7.2; module docstring)."""
    n_h = h - l
    b = l if n_h >= 0 else h
    rho0 = r0 if n_h >= 0 else r0 ** (1 << -n_h)
    rho0_rot = rho0 * two_adic_generator(b)
    return n_h, b, rho0, rho0_rot, host.eq1(b, rho0_rot)


def _height_weights_at(l: int, h: int, r0: EF, z: EF) -> np.ndarray:
    """``(e_h(z), a_h(z), b_h(z))`` at one extension point: ``(3, 4)`` uint64 canonical."""
    n_h, b, rho0, rho0_rot, c_rot = _height_params(l, h, r0)
    ind = host.ind(l, n_h, z)
    eq1z = host.eq1(b, z) * c_rot
    vals = (ind * host.eq_d(b, z, rho0), ind * (host.eq_d(b, z, rho0_rot) - eq1z), ind * eq1z)
    return np.array([v.c for v in vals], dtype=np.uint64)


def _height_weights(l: int, h: int, r0: EF, zs: np.ndarray) -> np.ndarray:
    """``(e_h, a_h, b_h)`` at many base-field points ``zs`` ``(npts,)`` uint64 canonical:
    ``(npts, 3, 4)`` uint64 canonical, equal to :func:`_height_weights_at` of each point.

    Vectorised over the points (round 0 takes the ``2^{l+1}`` points of ``D'``): ``ind`` and
    ``eq1_b`` are base-field products, ``eqD_b`` a product with the powers of ``ρ_0``
    (:func:`~mlx_stark.poly.host.eq_d_points`)."""
    n_h, b, rho0, rho0_rot, c_rot = _height_params(l, h, r0)
    z = zs.astype(np.uint64) % P
    ind = np.ones_like(z)
    if n_h < 0:  # ind = eq1_{−n_h}(z^(2^(l+n_h)))
        t = z
        for _ in range(l + n_h):
            t = t * t % P
        ind = host.eq1_points(-n_h, t)
    eq1c = host.eq1_points(b, z)[:, None] * np.array(c_rot.c, dtype=np.uint64)[None] % P
    e = ind[:, None] * host.eq_d_points(b, z, rho0) % P
    a = ind[:, None] * ((host.eq_d_points(b, z, rho0_rot) + P - eq1c) % P) % P
    bt = ind[:, None] * eq1c % P
    return np.stack([e, a, bt], axis=1)


def _slice_coefficients(lam: EF, heights: list, rots: list, table: dict):
    """Per-slice ``A_i``, ``B_i`` at the points of ``table``: ``(S, npts, 4)`` uint32 each.

    ``table[h]``: ``(npts, 3, 4)`` uint64, ``(e_h, a_h, b_h)`` per point; ``heights``/``rots``
    per slice."""
    # (S, npts, 3, 4): each slice's height's rows, picked on the host (one copy up)
    vals = mx.array(np.stack([table[h] for h in heights]).astype(np.uint32))
    e_s, a_s, b_s = vals[:, :, 0], vals[:, :, 1], vals[:, :, 2]
    s = len(heights)
    lam_even = ext_powers(lam * lam, s)  # λ^{2i}
    lam_odd = ext.mul(lam_even, ext.constant(lam))
    lam_odd = mx.where(mx.array(rots)[:, None], lam_odd, mx.zeros_like(lam_odd))[:, None]
    coef_a = ext.add(ext.mul(lam_even[:, None], e_s), ext.mul(lam_odd, a_s))
    coef_b = ext.mul(lam_odd, b_s)
    return coef_a, coef_b


# Largest 2^l whose values on D' come from one (2^(l+1), 2^l) matrix on the GPU (_on_d_prime).
_MATRIX_DOMAIN = 64


def _on_d_prime(on_d: mx.array, l: int) -> mx.array:
    """Values on ``D' = ⟨ω_{l+1}⟩`` (natural order: ``ω_l^k`` at row ``2k``, ``ω_{l+1}·ω_l^k``
    at ``2k + 1``) of the polynomials of degree ``< 2^l`` given by their values on ``D``:
    ``on_d`` ``(S, 2^l, 8)`` uint32 (two extension values per point) -> ``(S, 2^(l+1), 8)``.
    For small ``D`` one matrix product (:func:`_d_prime_matrix`), else (and on the CPU, where
    the product is no single kernel) the coset ``ω_{l+1}·D`` by :func:`coset_lde`."""
    s, n = on_d.shape[0], 1 << l
    if n <= _MATRIX_DOMAIN and native_kernels_active():
        out = ext.mul_sum(_d_prime_matrix(l).reshape(1, 2 * n, n, 1, 4), on_d.reshape(s, 1, n, 2, 4), 2)
        return out.reshape(s, 2 * n, 8)
    on_coset = coset_lde(on_d.transpose(0, 2, 1), (two_adic_generator(l + 1),))[:, :, 0]
    return mx.stack([on_d, on_coset.transpose(0, 2, 1)], axis=2).reshape(s, 2 * n, 8)


@lru_cache(maxsize=8)
def _d_prime_matrix(l: int) -> mx.array:
    """``T`` ``(2^(l+1), 2^l, 4)`` (base-field values as extension elements): row ``2k`` picks
    the value at ``ω_l^k``, row ``2k + 1`` evaluates the interpolant at ``ω_{l+1}·ω_l^k``:
    ``T[2k+1, m] = (1/n)·Σ_i ω_l^{i(k−m)}·ω_{l+1}^i``."""
    n = 1 << l
    w, g, inv_n = two_adic_generator(l), two_adic_generator(l + 1), pow(n, P - 2, P)
    # sums[d] = Σ_i ω_l^{i·d}·ω_{l+1}^i, so that T[2k+1, m] = sums[(k − m) mod n] / n
    sums = [sum(pow(w, i * d, P) * pow(g, i, P) for i in range(n)) * inv_n % P for d in range(n)]
    k = np.arange(n)
    t = np.zeros((2 * n, n), dtype=np.uint32)
    t[2 * k, k] = 1
    t[1::2] = np.array(sums, dtype=np.uint32)[(k[:, None] - k[None, :]) % n]
    return ext.from_base(mx.array(t))


def _rot_tables(r: list, nt: int):
    """``(T, T rotated by one)`` with ``T = eq_table(r_1..r_ñ)``: two ``(2^ñ, 4)`` arrays."""
    t = eq_table(r[1:1 + nt])
    return t, arrays.concat_flat([t[-1:], t[:-1]]).reshape(t.shape)


def prove_stacked_reduction(params: SystemParams, transcript: Transcript, pcs_datas: list,
                            need_rot: list, r: list) -> tuple:
    """pcs.md §7.3 on the prover side, starting with ``λ ← sample_ext``.

    - ``pcs_datas``: the commitment list's
      :class:`~mlx_stark.prover.stacked_pcs.StackedPcsData` (layout and stacked matrix ``Q``
      ``(2^m, W_c)`` uint32 are read);
    - ``need_rot[c][a]``: ``need_rot`` of the trace owning matrix ``a`` of commit ``c``;
    - ``r``: ``(r_0, …, r_{n_max})`` host EF from the batch-constraint sumcheck, at least
      ``1 + max ñ`` long.

    The column claims themselves are not needed (they were observed before ``r``).
    Returns ``(StackingProof, u_prism)`` with ``u_prism = [u_0, …, u_n]`` (host EF);
    WHIR opens at :func:`mlx_stark.poly.host.u_cube` of it."""
    l, n = params.l_skip, params.n_stack
    m = l + n
    if not pcs_datas or len(need_rot) != len(pcs_datas):
        raise InvalidInputError("need one need_rot list per commitment (and at least one commitment)")
    slices = []  # (commit, col, row, log_height, rot)
    for c, pcs in enumerate(pcs_datas):
        lay = pcs.layout
        if lay.l_skip != l or lay.log_stacked_height != m or len(need_rot[c]) != len(lay.matrix_dims):
            raise InvalidInputError(f"commit {c}: layout does not match the parameters or need_rot")
        slices += [(c, s.col, s.row, s.log_height, bool(need_rot[c][s.matrix])) for s in lay.slices]
    if not slices:
        raise InvalidInputError("nothing to open: the commitments have no columns")
    max_nt = max(max(h - l, 0) for _, _, _, h, _ in slices)
    if len(r) < 1 + max_nt:
        raise InvalidInputError(f"the point r needs at least {1 + max_nt} coordinates, got {len(r)}")
    r = [EF.lift(x) for x in r]

    with span("prover.openings.stacked_reduction"):
        lam = transcript.sample_ext()
        heights = sorted({h for _, _, _, h, _ in slices})
        w_lp1 = two_adic_generator(l + 1)
        dprime = np.array([pow(w_lp1, j, P) for j in range(1 << (l + 1))], dtype=np.uint64)
        table_d = {h: _height_weights(l, h, r[0], dprime) for h in heights}

        # ---- round 0: s_0 on D' = <ω_{l+1}>, then its coefficients
        with span("prover.openings.stacked_reduction.round0"):
            coef_a, coef_b = _slice_coefficients(lam, [s[3] for s in slices], [s[4] for s in slices],
                                                 table_d)
            coefs = mx.stack([coef_a, coef_b], axis=2)  # (S, 2^(l+1), 2, 4): A_i, B_i per point
            s0_vals = None
            groups = {}
            for i, s in enumerate(slices):
                groups.setdefault((s[0], max(s[3] - l, 0)), []).append(i)
            transposed = {}
            for (c, nt), idx in groups.items():
                if c not in transposed:
                    pcs = pcs_datas[c]
                    transposed[c] = stacked_matrix(pcs.layout, pcs.matrices, transposed=True)
                width = transposed[c].shape[0]
                # window a of stacked column col = row block a of Q^T viewed as (W·2^{n−ñ}, 2^{ñ+l})
                blocks = transposed[c].reshape(width << (n - nt), 1 << (nt + l))
                rows = arrays.indices([slices[i][1] * (1 << (n - nt)) + (slices[i][2] >> (l + nt))
                                       for i in idx])
                weights = mx.concatenate(_rot_tables(r, nt), axis=1)
                # a few windows at a time: a copy of all of them is the matrix's size
                step = max(1, _CHUNK_ELEMS >> (nt + l))
                on_d = mx.concatenate([  # (S_g, 2^l, 8)
                    weighted_sum(arrays.take(blocks, rows[a:a + step]).reshape(-1, 1 << nt, 1 << l),
                                 weights) for a in range(0, len(idx), step)])
                vals = _on_d_prime(on_d, l).reshape(len(idx), 1 << (l + 1), 2, 4)
                # Σ over the group's slices of A_i·(value with T) + B_i·(value with T rotated)
                s0_vals = ext.accumulate(s0_vals, ext.mul_sum(arrays.take(coefs, idx), vals, 0, also=2))
            s0 = ext.to_host(idft(s0_vals, axis=0))[:(1 << (l + 1)) - 1]
            del transposed, blocks  # a matrix-sized copy, not needed after round 0
            transcript.observe_exts(s0)
            u_prism = [transcript.sample_ext()]

        # ---- fold Z at u_0: stacked columns and weight tables, (2^n, W, 4) each
        with span("prover.openings.stacked_reduction.fold_skip") as sp_part:
            table_u = {h: _height_weights_at(l, h, r[0], u_prism[0])[None] for h in heights}
            alpha, beta = _slice_coefficients(lam, [s[3] for s in slices], [s[4] for s in slices],
                                              table_u)
            f_parts, w_parts = [], []
            for c, pcs in enumerate(pcs_datas):
                width = pcs.width
                f_parts.append(fold_skip(pcs.matrix, l, u_prism[0], base=True))
                pieces = []
                for (cc, nt), idx in groups.items():
                    if cc != c:
                        continue
                    cells = arrays.indices([(slices[i][2] >> (l + nt)) * width + slices[i][1] for i in idx])
                    sel = arrays.indices(idx)
                    grid_a = arrays.scatter_rows((1 << (n - nt)) * width, cells, arrays.take(alpha, sel)[:, 0])
                    grid_b = arrays.scatter_rows((1 << (n - nt)) * width, cells, arrays.take(beta, sel)[:, 0])
                    pieces.append((nt, grid_a.reshape(1 << (n - nt), width, 4),
                                   grid_b.reshape(1 << (n - nt), width, 4), *_rot_tables(r, nt)))
                w_parts.append(weight_table(n, width, pieces))
            f = mx.concatenate(f_parts, axis=1)
            w = mx.concatenate(w_parts, axis=1)
            sp_part.produced(f, w)

        # ---- rounds 1..n: degree-2 product sumcheck over the stacked-row bits, on a device
        # transcript; the messages, the challenges and the openings come back in one read
        def rounds_1_to_n(dt, g, v):
            (sums,) = product_round_step(dt, g, v) if n else (None,)  # s(1) then s(2), c0..c3 each
            messages, us = [], []
            for j in range(n):
                u = dt.sample_ext()
                messages.append(sums)
                us.append(u)
                if j + 1 < n:
                    g, v, sums = fold_product_round_step(dt, g, v, u)  # the next sums observed
                else:
                    g = fold_lowest(g, u)  # the weights are not needed after the last round
            # the stacking openings q̂_k(u_0, u_1..u_n), commit-major
            return None, [g.reshape(-1, 4), *messages, *us]

        with span("prover.openings.stacked_reduction.rounds"):
            _, (flat, *read_back) = device_segment(transcript, rounds_1_to_n, [f, w],
                                                   key=("stacked_reduction", n))
        rounds = [tuple(ext.host_values(m)) for m in read_back[:n]]
        u_prism += [ext.host_values(u)[0] for u in read_back[n:]]
        transcript.observe_many(flat.reshape(-1))  # commit-major, c0..c3 each
        flat = ext.host_values(flat)
        openings, offset = [], 0
        for pcs in pcs_datas:
            width = pcs.width
            openings.append(flat[offset:offset + width])
            offset += width
    return StackingProof(s0, rounds, openings), u_prism
