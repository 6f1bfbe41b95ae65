"""Weighted-sum and field-sum kernels. The weighted sum is the native path of
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

Each product ``v·w`` (both canonical) is added to a 64-bit accumulator kept below ``p·2^32``
by a conditional subtraction; one Montgomery reduction per output gives ``Σ v·w·2^-32`` and one
Montgomery product by ``2^64`` the canonical ``Σ v·w``, bit-equal to the MLX-ops reference
(the weights need no conversion launch).

The field sum (:func:`field_sum`, the native :func:`mlx_stark.field.bb.sum` where fusion is
off: one launch instead of four MLX ops) gives each output a group of lanes within a block.
"""
from __future__ import annotations

import math
from functools import lru_cache

import mlx.core as mx
import numpy as np

from ..errors import InvalidInputError
from ..field import bb
from ..field.bb import U32
from . import KernelSource, launch
from . import params as _params
from .elementwise import merged_dims, operand_strides
from .poseidon2 import launch_absorbing, with_absorb
from .prelude import EXTENSION, block_sum, kernel_args
from .sizing import THREADS, chained, grid_x, input_slots, plan_blocks, plan_parts

MIN_PART_TERMS = 16  # values of x per part at least, so that a part outweighs its partial sum
MAX_PARTS = 1 << 12


@lru_cache(maxsize=16)
def weighted_sum_source(columns: int) -> KernelSource:
    """The kernel for ``C = columns``: ``values`` ``(A, X, B)`` and ``weights`` ``(X, C)``
    uint32 canonical; ``params = [A·B, B, X, span]`` (``span``: values of ``x`` per
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
    # Σ v·w·2^-32 after the reduction (both canonical): times 2^32 for the sum itself
    lines += [f"out[o + {j}u] = bb_to_mont(bb_redc(s{j}));" for j in range(c)]
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
    params = _params(outputs, b, x, span)
    out = launch(weighted_sum_source(c), [values, weights, params], (grid_x(outputs), parts),
                 THREADS, [(parts * outputs * c,)])[0]
    out = out.reshape(parts, a, b, c)
    return out[0, ...] if parts == 1 else bb.sum(out, axis=0)


# Polynomials of one ragged_sum launch (sources for 2, 4, …; more chain through the output).
RAGGED_ARITY = 16


@lru_cache(maxsize=None)
def ragged_sum_source(k: int) -> KernelSource:
    """``a0`` … ``a{k-1}`` (extension coefficients, flat, canonical), ``args = [len_0, …,
    len_{k-1}, off_0, …, off_{k-1}, L, stride, w_0, …, w_{k-1}]`` (:func:`kernel_args`: the
    weights in Montgomery form) -> ``out`` ``(L·4)``: coefficient ``e`` is ``Σ_i w_i·a_i[e −
    off_i]`` over the ``i`` with ``off_i ≤ e < off_i + len_i`` (each polynomial times
    ``Z^off_i``, zero elsewhere)."""
    lines = [f"for (uint32_t e = gid; e < args[{2 * k}]; e += args[{2 * k + 1}]) {{",
             "  ef acc = ef_make(0u, 0u, 0u, 0u);"]
    for i in range(k):
        w = 2 * k + 2 + 4 * i
        lines += [f"  const uint32_t e{i} = e - args[{k + i}];  // below the offset: wraps past len",
                  f"  if (e{i} < args[{i}]) acc = ef_add(acc, ef_mul(EF_LOAD(a{i}, 4u * e{i}), "
                  f"EF_LOAD(args, {w}u)));"]
    lines += ["  EF_STORE(out, 4u * e, acc);", "}"]
    return KernelSource(f"ragged_sum_{k}", tuple(f"a{i}" for i in range(k)) + ("args",),
                        ("out",), EXTENSION, "\n".join(lines) + "\n")


def ragged_sum(terms: list, length: int) -> mx.array:
    """:func:`mlx_stark.prover.batch_constraints.round0.shifted_sum` (bit-equal): ``terms``
    ``[(poly (len_i, 4) uint32 canonical, w, off_i)]`` with ``off_i + len_i ≤ length``, ``w``
    host EF or ``(4,)`` device array -> ``Σ w·Z^off·poly`` as ``(length, 4)`` coefficients.
    One launch per :data:`RAGGED_ARITY` polynomials (no padded copies). Lazy."""
    if length * 4 >= 1 << 32 or any(off + p.shape[0] > length for p, _, off in terms):
        raise InvalidInputError(f"cannot sum polynomials of lengths {[p.shape[0] for p, _, _ in terms]} "
                                f"at {[off for _, _, off in terms]} into {length}")
    blocks = plan_blocks(length)

    def launch_sum(prev, more):
        group = ([] if prev is None else [(prev, 1, 0)]) + more
        pad = input_slots(len(group)) - len(group)
        counts = ([p.shape[0] for p, _, _ in group] + [0] * pad + [off for _, _, off in group]
                  + [0] * pad + [length, blocks * THREADS])
        args = kernel_args(counts, [w for _, w, _ in group] + [0] * pad)
        return launch(ragged_sum_source(len(group) + pad),
                      [p for p, _, _ in group] + [group[0][0]] * pad + [args],
                      (blocks * THREADS, 1), THREADS, [(length, 4)])[0]

    out = chained(terms, RAGGED_ARITY, launch_sum)
    return out if out is not None else mx.zeros((length, 4), dtype=U32)


# ---------------------------------------------------------------- field sums
MAX_TERMS_PER_THREAD = 1 << 12  # longer sums stay on MLX's own reduction (whole-GPU)


@lru_cache(maxsize=None)
def field_sum_source() -> KernelSource:
    """``x`` viewed ``(O, R, I)`` (flat), ``params = [O·I, R, I, log2 t]`` -> ``out`` ``(O·I)``:
    ``Σ_r x[o, r, i]`` over F. ``t`` lanes per output (a power of two dividing the block): lane
    ``l`` adds ``r = l, l + t, …``, then the lanes' sums meet in shared memory."""
    body = f"""\
const uint32_t outputs = params[0];
const uint32_t terms = params[1];
const uint32_t inner = params[2];
const uint32_t lanes = 1u << params[3];
const uint32_t o = gid >> params[3];
const uint32_t lane = gid & (lanes - 1u);
uint32_t acc = 0u;
if (o < outputs) {{
  const uint32_t outer = o / inner;
  const uint64_t at = (uint64_t)outer * terms * inner + (o - outer * inner);
  for (uint32_t r = lane; r < terms; r += lanes) acc = bb_add(acc, x[at + (uint64_t)r * inner]);
}}
SHARED uint32_t red[{THREADS}];
red[tid] = acc;
for (uint32_t gap = lanes >> 1; gap > 0u; gap >>= 1) {{
  BARRIER();
  if (lane < gap) red[tid] = bb_add(red[tid], red[tid + gap]);
}}
if (lane == 0u && o < outputs) out[o] = red[tid];
"""
    return KernelSource("field_sum", ("x", "params"), ("out",), "", body)


@lru_cache(maxsize=None)
def parts_sum_source(n: int) -> KernelSource:
    """One block: ``parts`` ``(B·n)`` canonical (the per-block partial sums of a launch),
    ``params = [B]`` -> ``sums`` ``(n)``: the column sums over F, left in ``red[c·THREADS]``
    at the end (what :func:`mlx_stark.custom_kernels.poseidon2.with_absorb` absorbs)."""
    body = f"""\
SHARED uint32_t red[{n * THREADS}];
const uint32_t count = params[0];
for (uint32_t c = 0; c < {n}u; ++c) {{
  uint32_t acc = 0u;
  for (uint32_t b = tid; b < count; b += {THREADS}u) acc = bb_add(acc, parts[b * {n}u + c]);
  red[c * {THREADS}u + tid] = acc;
}}
{block_sum(n, THREADS, "sums")}"""
    return KernelSource(f"parts_sum_{n}", ("parts", "params"), ("sums",), "", body)


# the sums a :func:`parts_sum_source` launch leaves in ``red``, as absorbed values
PARTS_SUMMED = f"red[i * {THREADS}u]"


def launch_summed(src: KernelSource, inputs: list, blocks: int, shapes: list, n: int,
                  summed: str, absorb=None) -> tuple:
    """Launch ``src``, a kernel whose blocks (of ``THREADS`` threads, ``blocks`` of them) each
    write ``n`` partial sums as its last output (``parts``, after the outputs of ``shapes``):
    its other outputs, then the sums ``(n,)``, then with ``absorb = (sponge, absorb_idx,
    permute_last[, grind])`` a device transcript's sponge after absorbing them (and searching:
    :func:`~mlx_stark.custom_kernels.poseidon2.launch_absorbing`). ``summed``: the sums a
    one-block launch leaves in shared memory at its end, as
    :func:`mlx_stark.custom_kernels.poseidon2.with_absorb` values. One block absorbing: one
    launch; else the blocks' sums and (for several blocks, or to absorb) one block adding
    (and absorbing) them. Lazy."""
    if absorb is not None and blocks == 1:
        return tuple(launch_absorbing(src, summed, n, inputs, shapes + [(n,)], *absorb))
    *outs, parts = launch(src, inputs, (blocks * THREADS, 1), THREADS, shapes + [(blocks, n)])
    if absorb is not None:
        return (*outs, *sum_parts_absorbed(parts, n, *absorb))
    if blocks > 1:
        parts = launch(parts_sum_source(n), [parts, _params(blocks)], (THREADS, 1), THREADS,
                       [(n,)])[0]
    return (*outs, parts.reshape(n))


def absorbing_sources() -> list:
    """:func:`parts_sum_source` for the sumchecks' sums (8: product rounds, 12: GKR
    sub-rounds), plain and absorbing (:func:`sum_parts_absorbed`; the product rounds' also
    with the folding grind), for compiling ahead."""
    return [src for n in (8, 12)
            for src in (parts_sum_source(n), with_absorb(parts_sum_source(n), PARTS_SUMMED, n))
            ] + [with_absorb(parts_sum_source(8), PARTS_SUMMED, 8, True)]


def sum_parts_absorbed(parts: mx.array, n: int, sponge: mx.array, absorb_idx: int,
                       permute_last: bool, grind=None) -> tuple:
    """The column sums of ``parts`` ``(B, n)`` (``B ≥ 1``) absorbed into a device transcript's
    sponge (and ``grind``) as :func:`mlx_stark.custom_kernels.poseidon2.launch_absorbing`
    does: ``(sums (n,), sponge)``. One launch. Lazy."""
    return tuple(launch_absorbing(parts_sum_source(n), PARTS_SUMMED, n,
                                  [parts.reshape(-1), _params(parts.shape[0])], [(n,)], sponge,
                                  absorb_idx, permute_last, grind))


def field_sum(a: mx.array, axis=None):
    """:func:`mlx_stark.field.bb.sum` (bit-equal): ``a`` uint32 canonical, ``axis`` an int or
    ``None`` (all) -> the field sum along it, or ``None`` (declined: MLX's reduction runs)
    for other dtypes, several axes, or sums longer than ``THREADS·MAX_TERMS_PER_THREAD``
    terms per output. One launch. Lazy."""
    if not isinstance(a, mx.array) or a.dtype != U32 or not (axis is None or isinstance(axis, int)):
        return None
    shape = tuple(a.shape)
    if axis is None:
        outer, terms, inner, out_shape = 1, a.size, 1, ()
    else:
        axis %= max(a.ndim, 1)
        outer = math.prod(shape[:axis])
        terms, inner = shape[axis], math.prod(shape[axis + 1:])
        out_shape = shape[:axis] + shape[axis + 1:]
    outputs = outer * inner
    lanes = min(THREADS, 1 << max(0, terms - 1).bit_length())
    if outputs == 0 or terms == 0 or a.size >= 1 << 32 or terms > lanes * MAX_TERMS_PER_THREAD:
        return None
    log_lanes = lanes.bit_length() - 1
    params = _params(outputs, terms, inner, log_lanes)
    return launch(field_sum_source(), [a, params], (grid_x(outputs * lanes), 1), THREADS,
                  [out_shape])[0]


# ---------------------------------------------------------------- extension dot products
MUL_SUM_DIMS = 4  # output dimensions of a mul_sum launch (after merging)


@lru_cache(maxsize=None)
def ext_mul_sum_source() -> KernelSource:
    """``lhs``, ``rhs`` extension elements (flat words, canonical), ``params = [O, T, log2 t,
    dims, n_0..n_3, (stride_0..stride_3 per operand), term stride per operand, Q, part stride
    per operand]`` -> ``out`` ``(O·4)``: ``Σ_q Σ_k lhs[o, q, k]·rhs[o, q, k]`` over EF, output
    ``o`` decomposed over the ``dims`` dimensions ``n_d`` (element strides per operand, 0 where
    it broadcasts), term ``k`` at the operand's term stride, part ``q < Q`` at its part stride
    (``Q = 1``: one axis summed). ``t`` lanes per output, as :func:`field_sum_source`."""
    base = 4 + MUL_SUM_DIMS
    body = f"""\
const uint32_t outputs = params[0];
const uint32_t terms = params[1];
const uint32_t lanes = 1u << params[2];
const uint32_t o = gid >> params[2];
const uint32_t lane = gid & (lanes - 1u);
ef acc = ef_make(0u, 0u, 0u, 0u);
if (o < outputs) {{
  uint32_t rest = o, oa = 0u, ob = 0u;
  for (uint32_t d = params[3]; d-- > 0u;) {{
    const uint32_t len = params[4u + d];
    const uint32_t i = rest % len;
    rest /= len;
    oa += i * params[{base}u + d];
    ob += i * params[{base + MUL_SUM_DIMS}u + d];
  }}
  const uint32_t ta = params[{base + 2 * MUL_SUM_DIMS}], tb = params[{base + 2 * MUL_SUM_DIMS + 1}];
  const uint32_t parts = params[{base + 2 * MUL_SUM_DIMS + 2}];
  for (uint32_t p = 0u; p < parts; ++p) {{
    const uint32_t pa = oa + p * params[{base + 2 * MUL_SUM_DIMS + 3}];
    const uint32_t pb = ob + p * params[{base + 2 * MUL_SUM_DIMS + 4}];
    for (uint32_t k = lane; k < terms; k += lanes) {{
      const ef y = EF_LOAD(rhs, 4u * (pb + k * tb));
      acc = ef_add(acc, ef_mul(EF_LOAD(lhs, 4u * (pa + k * ta)), ef_in(y.c0, y.c1, y.c2, y.c3)));
    }}
  }}
}}
SHARED uint32_t red[{4 * THREADS}];
red[tid] = acc.c0;
red[{THREADS}u + tid] = acc.c1;
red[{2 * THREADS}u + tid] = acc.c2;
red[{3 * THREADS}u + tid] = acc.c3;
for (uint32_t gap = lanes >> 1; gap > 0u; gap >>= 1) {{
  BARRIER();
  if (lane < gap) {{
    for (uint32_t c = 0u; c < 4u; ++c) {{
      red[c * {THREADS}u + tid] = bb_add(red[c * {THREADS}u + tid], red[c * {THREADS}u + tid + gap]);
    }}
  }}
}}
if (lane == 0u && o < outputs) {{
  for (uint32_t c = 0u; c < 4u; ++c) out[o * 4u + c] = red[c * {THREADS}u + tid];
}}
"""
    return KernelSource("ext_mul_sum", ("lhs", "rhs", "params"), ("out",), EXTENSION, body)


@lru_cache(maxsize=1024)
def _mul_sum_plan(sa: tuple, sb: tuple, axis: int, also):
    """``(out_shape, outputs, terms, lanes, params)`` of :func:`ext_mul_sum` for leading
    shapes ``sa``, ``sb``, or ``None`` where the kernel cannot serve them."""
    try:
        shape = tuple(np.broadcast_shapes(sa, sb))
    except ValueError:
        return None
    n = len(shape)
    if not shape or not -n <= axis < n or (also is not None and not -n <= also < n):
        return None
    axis %= n
    also = axis if also is None else also % n
    strides = operand_strides((sa, sb), shape)
    terms, parts = shape[axis], shape[also] if also != axis else 1
    term_strides = [st[axis] for st in strides]
    part_strides = [st[also] if also != axis else 0 for st in strides]
    # the part axis as a length-1 one: merged_dims leaves it out
    dims, cols = merged_dims(tuple(1 if d == also else x for d, x in enumerate(shape)), strides,
                             drop=axis)
    outputs = math.prod(dims)
    lanes = min(THREADS, 1 << max(0, terms - 1).bit_length())
    if len(dims) > MUL_SUM_DIMS or parts * terms > lanes * MAX_TERMS_PER_THREAD \
            or outputs * lanes >= 1 << 31:
        return None
    pad = [1] * (MUL_SUM_DIMS - len(dims))
    words = [outputs, terms, lanes.bit_length() - 1, len(dims)] + dims + pad
    for c in cols:
        words += c + [0] * len(pad)
    words += term_strides + [parts] + part_strides
    out_shape = tuple(x for d, x in enumerate(shape) if d not in (axis, also))
    return out_shape, outputs, terms, lanes, _params(*words)


def ext_mul_sum(a: mx.array, b: mx.array, axis: int, also=None):
    """:func:`mlx_stark.field.ext.mul_sum` (bit-equal): ``a``, ``b`` ``(..., 4)`` uint32
    canonical extension elements whose leading shapes broadcast, ``axis`` (and ``also``, when
    given) a leading axis -> ``Σ`` along it (them) of the products ``(..., 4)``, or ``None``
    (declined: the product and the field sums run) for other dtypes, more than four output
    dimensions after merging, or sums longer than ``THREADS·MAX_TERMS_PER_THREAD`` terms. One
    launch, no product array. Lazy."""
    for x in (a, b):
        if not isinstance(x, mx.array) or x.dtype != U32 or x.ndim < 2 or x.shape[-1] != 4 \
                or x.size >= 1 << 31:
            return None
    planned = _mul_sum_plan(tuple(a.shape[:-1]), tuple(b.shape[:-1]), axis, also)
    if planned is None:
        return None
    out_shape, outputs, terms, lanes, params = planned
    if outputs == 0 or terms == 0:
        return mx.zeros(out_shape + (4,), dtype=U32)
    return launch(ext_mul_sum_source(), [a, b, params], (grid_x(outputs * lanes), 1), THREADS,
                  [out_shape + (4,)])[0]


# ---------------------------------------------------------------- the logical table's fold
@lru_cache(maxsize=None)
def fold_table_source() -> KernelSource:
    """The univariate-skip fold of a trace's whole logical table, read from its parts:
    ``table`` ``(H, wall)``, ``weights`` ``(2^l, 4)`` canonical, ``params = [W_tot·B,
    W_tot, wall, sel0, l, H, B]`` with ``B = H/2^l`` -> ``out`` ``(W_tot, B, 4)``, column-major:
    ``out[c, b] = Σ_i L[b·2^l + i, c]·weights[i]`` with ``L`` the logical table (a column below
    ``wall`` is a part column, below ``sel0`` the part column ``c − wall`` one row later
    (cyclically), then ``is_first``, ``is_last``, ``is_transition``). Thread ``b·W_tot + c``:
    consecutive threads read consecutive part columns."""
    lines = [
        "const uint32_t outputs = params[0];",
        "if (gid >= outputs) return;",
        "const uint32_t wtot = params[1];",
        "const uint32_t wall = params[2];",
        "const uint32_t sel0 = params[3];",
        "const uint32_t size = 1u << params[4];",
        "const uint32_t last = params[5] - 1u;",
        "const uint32_t b = gid / wtot;",
        "const uint32_t c = gid - b * wtot;",
        "const uint32_t row0 = b * size;",
        "const uint32_t shift = (c >= wall && c < sel0) ? 1u : 0u;",
        "const uint32_t src = c < wall ? c : c - wall;",
        "const uint32_t sel = c - sel0;",
    ]
    lines += [f"uint64_t s{j} = 0u;" for j in range(4)]
    lines += [
        "for (uint32_t i = 0u; i < size; ++i) {",
        "const uint32_t row = (row0 + i) & last;  // cyclic: a table lower than 2^l, lifted",
        "uint32_t v;",
        "if (c < sel0) v = table[(uint64_t)((row + shift) & last) * wall + src];",
        "else v = sel == 0u ? (row == 0u ? 1u : 0u) : ((row == last) == (sel == 1u) ? 1u : 0u);",
    ]
    lines += [f"s{j} = bb_fold(s{j} + mul_wide(v, weights[i * 4u + {j}u]));" for j in range(4)]
    lines += ["}", "const uint64_t o = ((uint64_t)c * params[6] + b) * 4u;"]
    lines += [f"out[o + {j}u] = bb_to_mont(bb_redc(s{j}));" for j in range(4)]  # as weighted_sum
    return KernelSource("fold_table", ("table", "weights", "params"), ("out",), "",
                        "\n".join(lines) + "\n")


def fold_table(table: mx.array, need_rot: bool, l_skip: int, weights: mx.array) -> mx.array:
    """The native :func:`mlx_stark.prover.batch_constraints.mle_rounds.fold_tables` of one trace:
    ``table`` ``(H, wall)`` uint32 (its parts, ``H`` a power of two; one lower than ``2^l``
    is lifted, read cyclically), ``weights`` ``(2^l, 4)`` the Lagrange basis of ``⟨ω_l⟩`` at
    ``r_0`` -> ``(W_tot, max(H, 2^l)/2^l, 4)`` uint32, ``W_tot = wall·(2 if need_rot else 1) +
    3``. One launch; the logical table (rotated and selector columns) is never built. Lazy."""
    h, wall = table.shape
    sel0 = wall * (2 if need_rot else 1)
    wtot, blocks = sel0 + 3, max(h >> l_skip, 1)
    outputs = wtot * blocks
    if h & (h - 1):
        raise InvalidInputError(f"fold of a table of {h} rows: not a power of two")
    if outputs >= 1 << 32 or h * wall >= 1 << 32:
        raise InvalidInputError(f"fold of a {h} x {wall} table exceeds 32-bit indices")
    params = _params(outputs, wtot, wall, sel0, l_skip, h, blocks)
    out = launch(fold_table_source(), [table, weights, params], (grid_x(outputs), 1),
                 THREADS, [(outputs * 4,)])[0]
    return out.reshape(wtot, blocks, 4)
