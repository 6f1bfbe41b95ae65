"""Weighted-sum kernel: the native path of
:func:`mlx_stark.prover.stacked_reduction.weighted_sum` and of base tables in
:func:`mlx_stark.poly.mle.fold_skip`,
``out[a, b, c] = Σ_x values[a, x, b]·weights[x, c]`` over BabyBear.

The stages call it in very different shapes: WHIR's μ-combination of the stacked columns
(``A = 2^m`` rows, ``X`` = the stacked width, ``B = 1``), round 0 of the stacked reduction
(``A`` = a few dozen slices, ``X = 2^ñ``, ``B = 2^l``, ``C = 8``) and WHIR's query weights
(``A = 1``, ``X`` = the queries, ``B = 2^d``) and the univariate-skip fold of a trace or stacked
matrix (``A`` = its rows over ``2^l``, ``X = 2^l``, ``B`` = its width). One thread computes all ``C`` sums of one
output ``(a, b)`` over a contiguous range of ``x``: consecutive threads take consecutive ``b``
(coalesced reads when ``B`` is large; when ``B = 1`` a thread walks its own contiguous row),
and every thread of a block reads the same weight row.

*Parts.* When ``A·B`` alone would not fill the GPU, block row ``k`` of the launch (``K`` rows)
takes the ``k``-th of ``K`` contiguous ranges of ``x`` and writes its partial sums; the ``K``
partial sums are added afterwards (as the constraint kernels do).

Each product ``v·w_R`` (the weight in Montgomery form) is added to a 64-bit accumulator kept
below ``p·2^32`` by a conditional subtraction; one Montgomery reduction per output gives the
canonical ``Σ v·w``, bit-equal to the MLX-ops reference.
"""
from __future__ import annotations

from functools import lru_cache

import mlx.core as mx
import numpy as np

from ..errors import InvalidInputError
from ..field import bb
from ..field.bb import U32
from . import KernelSource, launch
from .sizing import THREADS, grid_x, plan_parts

MIN_PART_TERMS = 16  # values of x per part at least, so that a part outweighs its partial sum
MAX_PARTS = 1 << 12


@lru_cache(maxsize=16)
def weighted_sum_source(columns: int) -> KernelSource:
    """The kernel for ``C = columns``: ``values`` ``(A, X, B)`` and ``weights`` ``(X, C)``
    (Montgomery form) uint32; ``params = [A·B, B, X, span]`` (``span``: values of ``x`` per
    part); output ``(K, A, B, C)``: the partial sums of the ``K`` parts (block rows)."""
    c = columns
    lines = [
        "const uint32_t outputs = params[0];",
        "if (gid >= outputs) return;",
        "const uint32_t width = params[1];",
        "const uint32_t xs = params[2];",
        "const uint32_t span = params[3];",
        "const uint32_t lo = bid_y * span;",
        "const uint32_t hi = min(xs, lo + span);",
        "const uint32_t a = gid / width;",
        "// values[a, x, b] for output gid = a·B + b",
        "const uint64_t row = ((uint64_t)a * xs) * width + (gid - a * width);",
    ]
    lines += [f"uint64_t s{j} = 0u;" for j in range(c)]
    lines += [
        "for (uint32_t x = lo; x < hi; ++x) {",
        "const uint32_t v = values[row + (uint64_t)x * width];",
        f"const uint32_t w = x * {c}u;",
    ]
    lines += [f"s{j} = bb_fold(s{j} + mul_wide(v, weights[w + {j}u]));" for j in range(c)]
    lines += ["}", f"const uint64_t o = ((uint64_t)bid_y * outputs + gid) * {c}u;"]
    lines += [f"out[o + {j}u] = bb_redc(s{j});" for j in range(c)]
    return KernelSource(f"weighted_sum_c{c}", ("values", "weights", "params"), ("out",), "",
                        "\n".join(lines) + "\n")


def plan_ranges(outputs: int, terms: int) -> tuple:
    """``(K, span)``: block rows of a launch over ``outputs`` outputs of ``terms`` terms each,
    and the values of ``x`` per row (module docstring). Every row gets at least one value."""
    parts = plan_parts(outputs, min(MAX_PARTS, terms // MIN_PART_TERMS))
    span = -(-terms // parts)
    return -(-terms // span), span


def weighted_sum(values: mx.array, weights: mx.array) -> mx.array:
    """:func:`mlx_stark.prover.stacked_reduction.weighted_sum` (bit-equal): ``values``
    ``(A, X, B)`` and ``weights`` ``(X, C)`` uint32 canonical -> ``(A, B, C)`` uint32. One
    launch, plus the sum of the partial sums when ``X`` is split. Lazy. (The stage checks that
    the shapes match.)"""
    a, x, b = values.shape
    c = weights.shape[1]
    outputs = a * b
    if outputs * c == 0 or x == 0:
        return mx.zeros((a, b, c), dtype=U32)
    if outputs >= 1 << 32 or x * c >= 1 << 32:
        raise InvalidInputError(f"weighted_sum of {tuple(values.shape)} x {tuple(weights.shape)} "
                                "exceeds 32-bit indices")
    parts, span = plan_ranges(outputs, x)
    params = mx.array(np.array([outputs, b, x, span], dtype=np.uint32))
    out = launch(weighted_sum_source(c), [values, bb.to_mont(weights), params], (grid_x(outputs), parts),
                 THREADS, [(parts * outputs * c,)])[0]
    out = out.reshape(parts, a, b, c)
    return out[0, ...] if parts == 1 else bb.sum(out, axis=0)
