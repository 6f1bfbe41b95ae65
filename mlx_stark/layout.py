"""Stacked layout of a commitment (pcs.md §6.2): where each matrix column sits in the stacked
matrix. Pure data, computed identically by the prover and the verifier.

Matrices ``T_0 … T_{M−1}`` (trace order, non-increasing heights ``2^{h_a}``, ``h_a <= m``) are
cut into columns; column ``j`` of ``T_a`` becomes a :class:`StackedSlice` occupying
``2^{max(h_a, l)}`` consecutive rows of one stacked column (a column shorter than ``2^l`` is
spread with stride ``2^{l − h_a}`` over a ``2^l``-row window). Slices fill stacked column 0
top-down, then column 1, and so on; their creation order is the commitment's canonical column
order (``sorted_cols``).
"""
from __future__ import annotations

from dataclasses import dataclass

from .errors import InvalidInputError


@dataclass(frozen=True)
class StackedSlice:
    """Column ``column`` of matrix ``matrix`` (height ``2^log_height``) stored in stacked column
    ``col`` from row ``row`` on."""

    matrix: int
    column: int
    col: int
    row: int
    log_height: int

    def length(self, l_skip: int) -> int:
        """Rows occupied in the stacked matrix: ``2^{max(log_height, l)}``."""
        return 1 << max(self.log_height, l_skip)

    def stride(self, l_skip: int) -> int:
        """Row step between consecutive entries: ``2^{l − h}`` below ``2^l``, else 1."""
        return 1 << max(0, l_skip - self.log_height)


@dataclass(frozen=True)
class StackedLayout:
    """Layout of one commitment: ``slices`` in canonical order, stacked matrix
    ``2^log_stacked_height × width``. ``matrix_dims[a] = (width_a, log_height_a)``."""

    l_skip: int
    log_stacked_height: int
    matrix_dims: tuple
    slices: tuple
    width: int

    @property
    def height(self) -> int:
        return 1 << self.log_stacked_height

    def matrix_slices(self, a: int) -> tuple:
        """The slices of matrix ``a`` (its columns in order; empty for a zero-width matrix)."""
        return tuple(s for s in self.slices if s.matrix == a)


def stacked_layout(l_skip: int, log_stacked_height: int, matrix_dims) -> StackedLayout:
    """pcs.md §6.2 for ``matrix_dims = [(width_a, log_height_a), …]`` in trace order.

    Raises :class:`InvalidInputError` for a negative width or height, a height above
    ``2^log_stacked_height`` or heights that are not non-increasing."""
    dims = tuple((int(w), int(h)) for w, h in matrix_dims)
    height = 1 << log_stacked_height
    slices = []
    col = row = 0
    prev_h = None
    for a, (width, h) in enumerate(dims):
        if width < 0 or h < 0:
            raise InvalidInputError(f"matrix {a}: invalid width {width} / log height {h}")
        if h > log_stacked_height:
            raise InvalidInputError(
                f"matrix {a}: height 2^{h} exceeds the stacked height 2^{log_stacked_height}")
        if prev_h is not None and h > prev_h:
            raise InvalidInputError(
                f"matrix {a}: heights must be non-increasing (2^{h} after 2^{prev_h})")
        prev_h = h
        length = 1 << max(h, l_skip)
        for j in range(width):
            if row + length > height:
                if row != height:
                    raise InvalidInputError(f"matrix {a} column {j} does not fit the stacked column")
                col, row = col + 1, 0
            slices.append(StackedSlice(a, j, col, row, h))
            row += length
    width = col + (1 if row > 0 else 0)
    return StackedLayout(l_skip, log_stacked_height, dims, tuple(slices), width)
