"""The degree-2 product sumcheck shared by the stacked opening reduction (pcs.md §7.3 step 4)
and WHIR (pcs.md §8.2 step 2a): round messages and folds of extension tables on the device.
The native kernels (:mod:`mlx_stark.custom_kernels.sumcheck`) run instead where the device has
them; the MLX-ops code here is their reference.
"""
from __future__ import annotations

import math
from typing import Optional

import mlx.core as mx

from .. import custom_kernels
from ..device import fused
from ..field import bb, ext
from ..poly import fold_lowest

# values a round observes: s(1), s(2), four coefficients each
SUMS = 8
# Table elements (uint32) that the ops path of one product round handles at once.
_CHUNK_ELEMS = 1 << 21


@fused
def _pair_products(f0: mx.array, f1: mx.array, w0: mx.array, w1: mx.array):
    """Terms of ``s(1)`` and ``s(2)`` of a degree-2 product round (extension tables)."""
    f2 = bb.sub(bb.add(f1, f1), f0)
    w2 = bb.sub(bb.add(w1, w1), w0)
    return ext.mul(f1, w1), ext.mul(f2, w2)


def product_round_values(f: mx.array, w: mx.array) -> mx.array:
    """``[s(1), s(2)]`` (``(2, 4)`` uint32, on the device) of ``s(X) = Σ_y (f[2y] + X·Δf)(w[2y] + X·Δw)`` where the
    sum also runs over all trailing batch axes. ``f``, ``w``: ``(2^d, ..., 4)`` uint32, ``d ≥ 1``;
    the variable is bit 0 of the row index (pcs.md §7.3 step 4, §8.2 step 2a). The native
    kernel (:func:`mlx_stark.custom_kernels.sumcheck.product_round`) runs instead where the device has one."""
    kernel = custom_kernels.native("sumcheck.product_round_values")
    if kernel is not None:
        return kernel(f, w)
    half = f.shape[0] // 2
    fv = f.reshape(half, 2, -1, 4)
    wv = w.reshape(half, 2, -1, 4)
    # the temporaries are ~10x the tables: row pairs in chunks, their sums added (exact in F)
    step = _chunk_rows(f) // 2
    acc = None
    for a in range(0, half, step):
        t1, t2 = _pair_products(fv[a:a + step, 0], fv[a:a + step, 1], wv[a:a + step, 0],
                                wv[a:a + step, 1])
        part = bb.sum(mx.stack([t1.reshape(-1, 4), t2.reshape(-1, 4)]), axis=1)
        acc = ext.accumulate(acc, part)
        if step < half:
            mx.async_eval(acc)  # frees the chunk's temporaries; no host wait
    return acc


def _chunk_rows(f: mx.array) -> int:
    """Rows of a ``(2^d, ..., 4)`` table that the ops path handles at once: a power of two
    (as fold_lowest needs), at least 4 (a folded chunk still has whole row pairs)."""
    return 1 << max(2, (_CHUNK_ELEMS // max(1, math.prod(f.shape[1:]))).bit_length() - 1)


def fold_product_round(f: mx.array, w: mx.array, r) -> tuple:
    """Fold ``f`` and ``w`` at ``r`` (:func:`~mlx_stark.poly.fold_lowest`) and compute the next
    round's :func:`product_round_values` over them: ``(f', w', [s(1), s(2)])``. ``f``, ``w``:
    ``(2^d, ..., 4)`` uint32, ``d ≥ 2``; ``r`` host EF or ``(4,)`` device array. The native kernel
    (:func:`mlx_stark.custom_kernels.sumcheck.fold_product_round`, one pass over the tables) runs where the device has one."""
    kernel = custom_kernels.native("sumcheck.fold_product_round")
    if kernel is not None:
        return kernel(f, w, r)
    step = _chunk_rows(f)
    if step >= f.shape[0]:
        f, w = fold_lowest(f, r), fold_lowest(w, r)
        return f, w, product_round_values(f, w)
    # large tables: fold and sum in row chunks (as product_round_values), keeping the folds
    fs, ws, acc = [], [], None
    for a in range(0, f.shape[0], step):
        fc, wc = fold_lowest(f[a:a + step], r), fold_lowest(w[a:a + step], r)
        part = product_round_values(fc, wc)
        fs.append(fc)
        ws.append(wc)
        acc = ext.accumulate(acc, part)
        mx.async_eval(fc, wc, acc)  # frees the chunk's temporaries; no host wait
    return mx.concatenate(fs), mx.concatenate(ws), acc


def product_round_step(dt, f: mx.array, w: mx.array, grind_bits: Optional[int] = None) -> tuple:
    """:func:`product_round_values` observed on the device transcript ``dt``, followed by a
    sample, or, with ``grind_bits`` (WHIR's folding proof of work, which may be 0 bits), by
    ``dt.grind(grind_bits)`` (see :meth:`~mlx_stark.transcript.DeviceTranscript.absorb_with`):
    ``(sums (2, 4)[, witness (1,)])``. With native kernels the sums' launch
    absorbs them itself (and runs the search where it fits its block): one launch for tables
    of one block."""
    kernel = custom_kernels.native("sumcheck.product_round_step")
    return dt.observe_made(SUMS, kernel and (lambda *absorb: kernel(f, w, *absorb)),
                           lambda: (product_round_values(f, w),), grind_bits)


def fold_product_round_step(dt, f: mx.array, w: mx.array, r, grind_bits: Optional[int] = None) -> tuple:
    """:func:`fold_product_round` with the next round's sums observed (and ``grind_bits``) as
    in :func:`product_round_step`: ``(f', w', sums (2, 4)[, witness (1,)])``. One launch for
    tables of one block with native kernels."""
    kernel = custom_kernels.native("sumcheck.fold_product_round_step")
    return dt.observe_made(SUMS, kernel and (lambda *absorb: kernel(f, w, r, *absorb)),
                           lambda: fold_product_round(f, w, r), grind_bits)
