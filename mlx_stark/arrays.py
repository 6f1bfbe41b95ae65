"""Array layout helpers that the stages share, with native kernels where MLX's generic copy is
slow on the GPU."""
from __future__ import annotations

import mlx.core as mx

from . import custom_kernels
from .errors import InvalidInputError


def transpose(x: mx.array) -> mx.array:
    """``x`` with its last two axes swapped, contiguous: ``(..., R, C)`` uint32 ->
    ``(..., C, R)`` uint32. Uses the tiled ``layout.transpose`` kernel where the device has
    native kernels (bit-equal: it moves words)."""
    if x.ndim < 2:
        raise InvalidInputError(f"transpose needs at least 2 axes, got shape {tuple(x.shape)}")
    if x.dtype != mx.uint32:
        raise InvalidInputError(f"transpose expects uint32, got {x.dtype}")
    kernel = custom_kernels.native("layout.transpose")
    if kernel is None:
        return mx.contiguous(mx.swapaxes(x, -1, -2))
    lead, (rows, cols) = x.shape[:-2], x.shape[-2:]
    out = kernel(x.reshape((-1, rows, cols)))
    return out.reshape(lead + (cols, rows))
