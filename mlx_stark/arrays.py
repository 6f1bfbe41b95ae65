"""Array layout helpers that the stages share."""
from __future__ import annotations

from typing import Sequence, Union

import mlx.core as mx

from . import custom_kernels
from .errors import InvalidInputError

Indices = Union[mx.array, Sequence[int]]


def indices(idx: Indices) -> mx.array:
    """``idx`` as a ``(k,)`` uint32 device array; host integers are kept per values
    (:func:`mlx_stark.custom_kernels.params`: a proof's index lists follow its fixed layout)."""
    return idx.astype(mx.uint32) if isinstance(idx, mx.array) else custom_kernels.params(*idx)


def take(x: mx.array, idx: Indices, axis: int = 0) -> mx.array:
    """``mx.take(x, idx, axis)``: ``x`` uint32 of any shape, ``idx`` ``(k,)`` indices below
    ``x.shape[axis]`` (a device array or host integers) -> ``x`` with ``axis`` of length ``k``.
    The stages index through here: on CUDA, MLX's gather is a run-time compile of ~20 s on a
    machine's first proof, the native kernel well under one."""
    idx = indices(idx)
    axis = axis % x.ndim
    kernel = custom_kernels.native("arrays.take")
    if kernel is not None:
        return kernel(x, idx, axis)
    return mx.take(x, idx, axis=axis)


def scatter_rows(n: int, idx: Indices, rows: mx.array) -> mx.array:
    """An ``(n, ...)`` uint32 array of zeros with row ``idx[i]`` set to ``rows[i]``: ``rows``
    ``(k, ...)`` uint32, ``idx`` ``(k,)`` distinct indices below ``n``. (Native on the GPU, as
    :func:`take`.)"""
    idx = indices(idx)
    kernel = custom_kernels.native("arrays.scatter_rows")
    if kernel is not None:
        return kernel(n, idx, rows)
    out = mx.zeros((n,) + tuple(rows.shape[1:]), dtype=mx.uint32)
    out[idx] = rows
    return out


def concat_flat(xs: Sequence[mx.array]) -> mx.array:
    """The elements of ``xs`` (arrays of one dtype, any shapes) one after another: ``(Σ
    size,)``. (Native on the GPU for uint32: a launch per up to 32 arrays, where MLX's
    concatenate is a copy launch per array.)"""
    kernel = custom_kernels.native("arrays.concat_flat")
    if kernel is not None and xs and xs[0].dtype == mx.uint32:
        return kernel(list(xs))
    return mx.concatenate([x.reshape(-1) for x in xs]) if xs else mx.zeros((0,), dtype=mx.uint32)


def transpose(x: mx.array) -> mx.array:
    """``x`` with its last two axes swapped, contiguous: ``(..., R, C)`` uint32 ->
    ``(..., C, R)`` uint32. (MLX's own copy: faster than a tiled shared-memory kernel on the
    H100; docs/tracking/kernel-notes.md.)"""
    if x.ndim < 2:
        raise InvalidInputError(f"transpose needs at least 2 axes, got shape {tuple(x.shape)}")
    if x.dtype != mx.uint32:
        raise InvalidInputError(f"transpose expects uint32, got {x.dtype}")
    return mx.contiguous(mx.swapaxes(x, -1, -2))
