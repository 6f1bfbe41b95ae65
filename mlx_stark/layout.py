"""Layout rules that the prover and the verifier (and their shape checks) must compute
identically: pure data, owned here so that each rule is written once.

- trace order (:func:`trace_order`) and a trace's parts (:func:`trace_parts`);
- the commitment list (:func:`commitment_list`);
- the stacked layout of one commitment (pcs.md §6.2, :func:`stacked_layout`);
- the LogUp interaction segments and ``n_logup`` (constraints.md §5.1, :func:`segment_offsets`,
  :func:`n_logup_of`);
- the trace-height constraints (constraints.md §2.3, :func:`trace_height_violations`).

Stacked layout: matrices ``T_0 … T_{M−1}`` (trace order, non-increasing heights ``2^{h_a}``,
``h_a <= m``) are cut into columns; column ``j`` of ``T_a`` becomes a :class:`StackedSlice`
occupying ``2^{max(h_a, l)}`` consecutive rows of one stacked column (a column shorter than
``2^l`` is spread with stride ``2^{l − h_a}`` over a ``2^l``-row window). Slices fill stacked
column 0 top-down, then column 1, and so on; their creation order is the commitment's
canonical column order (``sorted_cols``).
"""
from __future__ import annotations

from functools import lru_cache

from dataclasses import dataclass
from typing import List, Mapping, Sequence, Tuple

from .errors import InvalidInputError


def trace_order(log_heights: Mapping[int, int]) -> List[int]:
    """The present AIRs in trace order (constraints.md §0.4): height descending, AIR id
    ascending. ``log_heights``: ``{AIR id: log height}`` of the present AIRs."""
    return sorted(log_heights, key=lambda a: (-log_heights[a], a))


def trace_parts(common, preprocessed, cached) -> list:
    """A trace's parts in proof order (their column openings, their commitments): the common
    main, the preprocessed trace unless ``preprocessed`` is ``None``, then the cached mains."""
    return [common, *([] if preprocessed is None else [preprocessed]), *cached]


def commitment_list(parts: Sequence[Sequence]) -> List[List[Tuple[int, object]]]:
    """The commitment list (pcs.md §6.1, constraints.md §4.2) over ``parts[t]``, the parts of
    trace ``t`` in trace order (:func:`trace_parts`): the common mains of all traces form
    commitment 0, then every other part is a commitment of its own, trace by trace. Returns
    per commitment its ``(trace, part)`` pairs."""
    return ([[(t, p[0]) for t, p in enumerate(parts)]]
            + [[(t, part)] for t, p in enumerate(parts) for part in p[1:]])


def segment_offsets(l_skip: int, traces: Sequence[Tuple[int, int]]) -> Tuple[List[List[int]], int]:
    """Offsets ``off(t, σ)`` of the LogUp interaction segments (constraints.md §5.1) and
    ``total``, the leaves they span.

    ``traces``: per trace in trace order ``(K_t, ñ_t)`` (interaction count, lifted relative
    dimension). Segment ``(t, σ)`` spans ``2^(l+ñ_t)`` leaves."""
    offsets, o = [], 0
    for k, nt in traces:
        offsets.append([o + (s << (l_skip + nt)) for s in range(k)])
        o += k << (l_skip + nt)
    return offsets, o


def n_logup_of(l_skip: int, total: int) -> int:
    """``n_logup = bitlength(total) − l`` for ``total > 0``, else 0 (constraints.md §5.1)."""
    return total.bit_length() - l_skip if total > 0 else 0


def trace_height_violations(constraints, l_skip: int,
                            log_heights: Mapping[int, int]) -> List[Tuple[int, int]]:
    """``(index, sum)`` of every trace-height constraint (constraints.md §2.3, §8.3) that the
    present AIRs break: ``sum = Σ_a coefficients[a]·2^max(h_a, l) >= threshold``.
    ``constraints``: the key's ``LinearConstraint`` list; ``log_heights``: ``{AIR id: log
    height}`` of the present AIRs."""
    out = []
    for i, c in enumerate(constraints):
        total = sum(c.coefficients[a] << max(h, l_skip) for a, h in log_heights.items())
        if total >= c.threshold:
            out.append((i, total))
    return out


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
    ``2^log_stacked_height`` or heights that are not non-increasing. Kept per arguments: a
    proof asks for its layouts several times (validation, the commitment, compiling ahead),
    and a wide trace has thousands of slices (keccakf's 2633: ~2.5 ms each time)."""
    return _stacked_layout(int(l_skip), int(log_stacked_height),
                           tuple((int(w), int(h)) for w, h in matrix_dims))


@lru_cache(maxsize=256)
def _stacked_layout(l_skip: int, log_stacked_height: int, dims: tuple) -> StackedLayout:
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
