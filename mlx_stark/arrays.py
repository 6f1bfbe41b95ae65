"""Array layout helpers that the stages share."""
from __future__ import annotations

import mlx.core as mx

from .errors import InvalidInputError


def transpose(x: mx.array) -> mx.array:
    """``x`` with its last two axes swapped, contiguous: ``(..., R, C)`` uint32 ->
    ``(..., C, R)`` uint32. (MLX's own copy: faster than a tiled shared-memory kernel on the
    H100; docs/tracking/kernel-notes.md.)"""
    if x.ndim < 2:
        raise InvalidInputError(f"transpose needs at least 2 axes, got shape {tuple(x.shape)}")
    if x.dtype != mx.uint32:
        raise InvalidInputError(f"transpose expects uint32, got {x.dtype}")
    return mx.contiguous(mx.swapaxes(x, -1, -2))


def stack(items: list, shape: tuple) -> mx.array:
    """``mx.stack(items)`` of arrays of ``shape`` (uint32), or an empty ``(0, *shape)`` array
    when there are none (a stage with no rounds still returns one array to read back)."""
    return mx.stack(items) if items else mx.zeros((0,) + tuple(shape), dtype=mx.uint32)
