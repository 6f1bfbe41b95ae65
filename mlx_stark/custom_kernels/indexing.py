"""Gather, scatter and stacking kernels: the native paths of :func:`mlx_stark.arrays.take`,
:func:`mlx_stark.arrays.scatter_rows`, :func:`mlx_stark.arrays.concat_flat`,
:func:`mlx_stark.prover.stacked_pcs.stacked_matrix` and a trace's column blocks
(:meth:`~mlx_stark.prover.batch_constraints.traces.TraceData.column_block`).

MLX's CUDA backend compiles its own gather and scatter kernels at run time with NVRTC and its
headers, one module per dtype and index count, 20 s each on a machine's first proof
(docs/tracking/cold-start.md). These two plain kernels compile in well under a second, are
kept as cubins, and move uint32 words only, so they serve every shape the prover indexes.

``take``: ``x`` viewed as ``(outer, n, inner)``, ``out[o, i, j] = x[o, idx[i], j]``; threads
loop over the output words. ``scatter_rows``: ``out[idx[i], j] = rows[i, j]`` into a
zero-filled ``(n, inner)`` output, one thread per word of ``rows``. ``stack_matrix``: a
commitment's stacked matrix read straight from its matrices (see :func:`stack_source`).
``column_block``: a trace's needed columns (parts, rotations, selectors), transposed, through
shared-memory tiles (see :func:`column_block_source`).
"""
from __future__ import annotations

import math
from functools import lru_cache

import mlx.core as mx

from ..errors import InvalidInputError
from ..field.bb import U32
from . import KernelSource, launch
from . import params as _params
from .sizing import THREADS, chained, grid_x, input_slots, plan_blocks


@lru_cache(maxsize=None)
def take_source() -> KernelSource:
    """``x`` (flat), ``idx`` ``(k,)``, ``params = [total, n, inner, k, stride]`` uint32 ->
    ``out`` ``(total,)`` with ``total = outer·k·inner``; ``stride``: the launch's threads."""
    body = """\
const uint64_t total = params[0];
const uint32_t n = params[1];
const uint32_t inner = params[2];
const uint32_t k = params[3];
for (uint64_t e = gid; e < total; e += params[4]) {
  const uint64_t t = e / inner;
  const uint64_t o = t / k;
  const uint32_t i = (uint32_t)(t - o * k);
  out[e] = x[(o * n + idx[i]) * inner + (e - t * inner)];
}
"""
    return KernelSource("take_rows", ("x", "idx", "params"), ("out",), "", body)


@lru_cache(maxsize=None)
def scatter_source() -> KernelSource:
    """``rows`` ``(k·inner,)``, ``idx`` ``(k,)``, ``params = [k·inner, inner]`` uint32 -> ``out``
    (zero-filled by the launch) with ``out[idx[i]·inner + j] = rows[i·inner + j]``."""
    body = """\
const uint32_t words = params[0];
if (gid >= words) return;
const uint32_t inner = params[1];
const uint32_t i = gid / inner;
out[(uint64_t)idx[i] * inner + (gid - i * inner)] = rows[gid];
"""
    return KernelSource("scatter_rows", ("rows", "idx", "params"), ("out",), "", body)


# Inputs of one concatenating launch (sources for 2, 4, …, CONCAT_ARITY inputs; more chain).
CONCAT_ARITY = 32


@lru_cache(maxsize=None)
def concat_source(k: int, mont_tail: bool = False) -> KernelSource:
    """``a0`` … ``a{k-1}`` (flat), ``params = [n_0, …, n_{k-1}, stride]`` uint32 -> ``out``
    ``(Σ n_i,)``: the inputs one after another (``mont_tail``: every input after the first
    turned from canonical to Montgomery form); ``stride``: the launch's threads."""
    lines = ["uint64_t at = 0;"]
    for i in range(k):
        word = f"bb_to_mont(a{i}[e])" if mont_tail and i else f"a{i}[e]"
        lines += [f"for (uint64_t e = gid; e < params[{i}]; e += params[{k}]) out[at + e] = {word};",
                  f"at += params[{i}];"]
    name = "concat_mont" if mont_tail else "concat"
    return KernelSource(f"{name}_{k}", tuple(f"a{i}" for i in range(k)) + ("params",), ("out",),
                        "", "\n".join(lines) + "\n")


def concat_flat(arrays: list, mont_tail: bool = False) -> mx.array:
    """:func:`mlx_stark.arrays.concat_flat` (equal): uint32 arrays of any shapes -> ``(Σ size,)``
    uint32, their words one after another; ``mont_tail``: the words of every array after the
    first (canonical) in Montgomery form (a kernel's ``args``: counts, then device values). One
    launch per :data:`CONCAT_ARITY` inputs (MLX's concatenate is a copy launch per input). Lazy."""
    def concat(prev, more):
        group = ([] if prev is None else [prev]) + more
        sizes = [x.size for x in group]
        total = sum(sizes)
        if total >= 1 << 32:
            raise InvalidInputError(f"concatenating {total} words exceeds 32-bit indices")
        k = input_slots(len(group))
        blocks = plan_blocks(total)
        inputs = group + [group[0]] * (k - len(group))  # any shapes: the kernel reads words
        return launch(concat_source(k, mont_tail),
                      inputs + [_params(*sizes, *[0] * (k - len(group)), blocks * THREADS)],
                      (blocks * THREADS, 1), THREADS, [(total,)])[0]

    out = chained(arrays, CONCAT_ARITY, concat)
    return out if out is not None else mx.zeros((0,), dtype=U32)


def take(x: mx.array, idx: mx.array, axis: int) -> mx.array:
    """:func:`mlx_stark.arrays.take` (equal): ``x`` uint32 of any shape, ``idx`` ``(k,)`` uint32
    with every entry below ``x.shape[axis]`` (not checked) -> ``x`` with ``axis`` replaced by
    ``k``. One launch. Lazy."""
    shape = tuple(x.shape)
    n, k = shape[axis], idx.shape[0]
    inner = math.prod(shape[axis + 1:])
    out_shape = shape[:axis] + (k,) + shape[axis + 1:]
    total = math.prod(out_shape)
    if total == 0:
        return mx.zeros(out_shape, dtype=U32)
    if x.size >= 1 << 32 or total >= 1 << 32:
        raise InvalidInputError(f"take from {shape} exceeds 32-bit indices")
    blocks = plan_blocks(total)
    out = launch(take_source(), [x.reshape(-1), idx, _params(total, n, inner, k, blocks * THREADS)],
                 (blocks * THREADS, 1), THREADS, [(total,)])[0]
    return out.reshape(out_shape)


def scatter_rows(n: int, idx: mx.array, rows: mx.array) -> mx.array:
    """:func:`mlx_stark.arrays.scatter_rows` (equal): ``rows`` ``(k, ...)`` uint32, ``idx``
    ``(k,)`` uint32 distinct and below ``n`` (not checked) -> ``(n, ...)``, zero except the
    rows ``idx``. One launch. Lazy."""
    inner = math.prod(rows.shape[1:])
    words = rows.shape[0] * inner
    out_shape = (n,) + tuple(rows.shape[1:])
    if words == 0:
        return mx.zeros(out_shape, dtype=U32)
    if n * inner >= 1 << 32:
        raise InvalidInputError(f"scatter into {out_shape} exceeds 32-bit indices")
    out = launch(scatter_source(), [rows.reshape(-1), idx, _params(words, inner)], (grid_x(words), 1),
                 THREADS, [(n * inner,)], zero_outputs=True)[0]
    return out.reshape(out_shape)


@lru_cache(maxsize=None)
def merkle_open_source(blocks: int) -> KernelSource:
    """Openings of a Merkle tree (:meth:`mlx_stark.hash.merkle.MerkleTree.open_device`) in one
    launch: ``idx`` ``(q,)`` leaf-group indices, ``matrix`` ``(N, w)`` flat, the arrays
    ``b0 .. b{blocks−1}`` holding the tree's levels below the root (consecutive levels each),
    ``params = [q, group, w, qs, depth, stride, (block, offset) per level]`` -> ``rows``
    ``(q·group·w,)``, ``rows[i, t] = matrix[idx[i] + t·qs]``, and ``paths`` ``(q·depth·8,)``,
    ``paths[i, d]`` = node ``offset_d + ((idx[i] >> d) ^ 1)`` of level ``d``'s array. Threads
    loop over the words of both outputs (``stride``: the launch's threads)."""
    pick = "".join(f"blk == {b}u ? b{b}[node] : " for b in range(blocks - 1)) + f"b{blocks - 1}[node]"
    body = f"""\
const uint32_t q = params[0], group = params[1], w = params[2], qs = params[3], depth = params[4];
const uint64_t row_words = (uint64_t)q * group * w;
const uint64_t total = row_words + (uint64_t)q * depth * 8u;
for (uint64_t e = gid; e < total; e += params[5]) {{
  if (e < row_words) {{
    const uint64_t r = e / w;
    const uint32_t query = (uint32_t)(r / group);
    const uint64_t row = (uint64_t)idx[query] + (r - (uint64_t)query * group) * qs;
    rows[e] = matrix[row * w + (e - r * w)];
  }} else {{
    const uint32_t f = (uint32_t)(e - row_words);
    const uint32_t s = f >> 3u;
    const uint32_t query = s / depth;
    const uint32_t d = s - query * depth;
    const uint32_t blk = params[6u + 2u * d];
    const uint32_t node = (((idx[query] >> d) ^ 1u) + params[7u + 2u * d]) * 8u + (f & 7u);
    paths[f] = {pick};
  }}
}}
"""
    names = ("idx", "matrix") + tuple(f"b{b}" for b in range(blocks)) + ("params",)
    return KernelSource(f"merkle_open_b{blocks}", names, ("rows", "paths"), "", body)


def merkle_open(matrix: mx.array, arrays: list, levels: list, log_rows_per_query: int,
                idx: mx.array) -> tuple:
    """:meth:`mlx_stark.hash.merkle.MerkleTree.open_device` (equal) over ``matrix`` ``(N, w)``
    with ``w >= 1``: ``arrays`` the tree's level arrays (:attr:`~mlx_stark.hash.merkle.MerkleTree.blocks`),
    ``levels`` ``(array, first node, nodes)`` of every level below the root (at least one),
    ``idx`` ``(q,)`` uint32 below ``N / 2^k``, ``q >= 1`` (not checked): rows ``(q, 2^k, w)``
    and paths ``(q, depth, 8)``. One launch, no copy of the tree's levels. Lazy."""
    n, w = matrix.shape
    q, group, depth = idx.shape[0], 1 << log_rows_per_query, len(levels)
    used = max(b for b, _, _ in levels) + 1
    total = q * group * w + q * depth * 8
    if total >= 1 << 32:
        raise InvalidInputError(f"opening {q} queries of {tuple(matrix.shape)} exceeds 32-bit indices")
    nb = plan_blocks(total)
    table = [v for b, at, _ in levels for v in (b, at)]
    rows, paths = launch(merkle_open_source(used),
                         [idx, matrix] + arrays[:used]
                         + [_params(q, group, w, n >> log_rows_per_query, depth, nb * THREADS, *table)],
                         (nb * THREADS, 1), THREADS, [(q, group, w), (q, depth, 8)])
    return rows, paths


# a column block's tile: TILE rows x TILE columns per block, through shared memory
TILE = 32


@lru_cache(maxsize=None)
def column_block_source() -> KernelSource:
    """A trace's logical table columns, transposed
    (:meth:`mlx_stark.prover.batch_constraints.traces.TraceData.column_block`): ``table``
    ``(H, wall)`` row-major, ``cols`` ``(k,)`` logical columns, ``params = [lo, n, k, H − 1,
    wall, sel0, tiles_k]`` -> ``out`` ``(k, n)``: ``out[c, i]`` is column ``cols[c]`` at row
    ``(lo + i) mod H``; a column below ``wall`` reads the table, one below ``sel0`` the table's
    column ``− wall`` at the next row (cyclically), the others are the selectors first row,
    last row, transition. A block moves a tile of TILE rows x TILE columns through shared
    memory: reads along a table row, writes along an output row (both coalesced)."""
    t = TILE
    body = f"""\
SHARED uint32_t tile[{t * (t + 1)}];
const uint32_t lo = params[0], n = params[1], k = params[2], mask = params[3];
const uint32_t wall = params[4], sel0 = params[5];
const uint32_t c0 = (bid % params[6]) * {t}u, i0 = (bid / params[6]) * {t}u;
for (uint32_t l = tid; l < {t * t}u; l += {THREADS}u) {{
  const uint32_t c = c0 + (l % {t}u), i = i0 + (l / {t}u);
  uint32_t v = 0u;
  if (c < k && i < n) {{
    const uint32_t row = (lo + i) & mask, col = cols[c];
    if (col < wall) v = table[(uint64_t)row * wall + col];
    else if (col < sel0) v = table[(uint64_t)((row + 1u) & mask) * wall + (col - wall)];
    else if (col == sel0) v = row == 0u ? 1u : 0u;
    else if (col == sel0 + 1u) v = row == mask ? 1u : 0u;
    else v = row == mask ? 0u : 1u;
  }}
  tile[(l / {t}u) * {t + 1}u + (l % {t}u)] = v;
}}
BARRIER();
for (uint32_t l = tid; l < {t * t}u; l += {THREADS}u) {{
  const uint32_t c = c0 + (l / {t}u), i = i0 + (l % {t}u);
  if (c < k && i < n) out[(uint64_t)c * n + i] = tile[(l % {t}u) * {t + 1}u + (l / {t}u)];
}}
"""
    return KernelSource("column_block", ("table", "cols", "params"), ("out",), "", body)


def column_block(table: mx.array, cols, lo: int, n: int, wall: int, sel0: int) -> mx.array:
    """:meth:`~mlx_stark.prover.batch_constraints.traces.TraceData.column_block` (equal):
    ``table`` ``(H, wall)`` uint32 (``H`` a power of two), ``cols`` logical columns (host ints
    below ``sel0 + 3``) -> ``(len(cols), n)`` uint32. One launch. Lazy."""
    h, k = table.shape[0], len(cols)
    if k * n == 0:
        return mx.zeros((k, n), dtype=U32)
    if k * n >= 1 << 32 or table.size >= 1 << 32 or lo + n >= 1 << 32:
        raise InvalidInputError(f"a column block of {k} x {n} from {tuple(table.shape)} exceeds 32-bit indices")
    tiles_k = -(-k // TILE)
    blocks = tiles_k * -(-n // TILE)
    params = _params(lo, n, k, h - 1, wall, sel0, tiles_k)
    return launch(column_block_source(), [table, _params(*cols), params],
                  (blocks * THREADS, 1), THREADS, [(k, n)])[0]


@lru_cache(maxsize=None)
def stack_source() -> KernelSource:
    """The stacked matrix ``Q`` ``(2^m, W)`` of a commitment straight from its matrices
    (:func:`mlx_stark.prover.stacked_pcs.stacked_matrix`): ``x`` (every matrix's row-major words,
    one after another), ``segs`` ``(N, 6)`` = ``[start, length, width, log_run, spread, x_offset]``
    per matrix with columns, ``params = [total, m, W, N, stride, transposed]`` -> ``out``
    ``(total,)``: ``Q``, or ``Q^T`` when ``transposed``.

    ``Q^T`` flattened is each matrix's columns, one run of ``2^log_run`` words per column from
    ``start`` (each value followed by ``2^spread − 1`` zeros for a matrix lower than ``2^l``),
    then zeros: thread ``e`` writes ``Q[r, c]`` (coalesced), word ``c·2^m + r`` of ``Q^T``. No
    temporaries of the matrix's size (the ops path transposes twice and concatenates). For
    ``Q^T`` thread ``e`` writes word ``e`` of ``Q^T`` (coalesced too)."""
    body = """\
const uint64_t total = params[0];
const uint32_t log_h = params[1];
const uint32_t width = params[2];
const uint32_t nseg = params[3];
for (uint64_t e = gid; e < total; e += params[4]) {
  uint32_t f = (uint32_t)e;
  if (params[5] == 0u) {
    const uint32_t r = (uint32_t)(e / width);
    f = ((uint32_t)(e - (uint64_t)r * width) << log_h) + r;
  }
  uint32_t v = 0u;
  for (uint32_t a = 0u; a < nseg; ++a) {
    const uint32_t local = f - segs[6u * a];
    if (local < segs[6u * a + 1u]) {
      const uint32_t run = segs[6u * a + 3u];
      const uint32_t spread = segs[6u * a + 4u];
      const uint32_t i = local & ((1u << run) - 1u);
      if ((i & ((1u << spread) - 1u)) == 0u) {
        v = x[(uint64_t)segs[6u * a + 5u] + (uint64_t)(i >> spread) * segs[6u * a + 2u] + (local >> run)];
      }
      break;
    }
  }
  out[e] = v;
}
"""
    return KernelSource("stack_matrix", ("x", "segs", "params"), ("out",), "", body)


def stack_inputs(layout, matrices) -> tuple:
    """``(x, segs)`` of :func:`stack_source` for matrices already checked against ``layout``
    (``(2^h_a, w_a)`` each): their words one after another (a concatenation only when more than
    one has columns) and the ``(N·6,)`` uint32 segment table; ``(None, None)`` when no matrix
    has columns."""
    l, m, width = layout.l_skip, layout.log_stacked_height, layout.width
    segs, xs, start, x_off = [], [], 0, 0
    for mat, (w, h) in zip(matrices, layout.matrix_dims):
        if w == 0:
            continue
        run = max(h, l)
        segs.append([start, w << run, w, run, run - h, x_off])
        xs.append(mat.reshape(-1) if mat.dtype == U32 else mat.astype(U32).reshape(-1))
        start += w << run
        x_off += w << h
    if not segs:
        return None, None
    if (width << m) >= 1 << 32 or x_off >= 1 << 32:
        raise InvalidInputError(f"stacked matrix 2^{m} x {width} exceeds 32-bit indices")
    x = xs[0] if len(xs) == 1 else concat_flat(xs)
    return x, _params(*(v for seg in segs for v in seg))


def stack_matrix(layout, matrices, transposed: bool = False) -> mx.array:
    """:func:`mlx_stark.prover.stacked_pcs.stacked_matrix` (equal) for matrices already checked
    against ``layout``: ``(2^h_a, w_a)`` uint32 each -> ``(2^m, W)`` uint32 (``transposed``:
    ``(W, 2^m)``). One launch (and a concatenation of the inputs when more than one matrix
    has columns). Lazy."""
    m, width = layout.log_stacked_height, layout.width
    total = width << m
    shape = (width, 1 << m) if transposed else (1 << m, width)
    x, segs = stack_inputs(layout, matrices)
    if x is None or total == 0:
        return mx.zeros(shape, dtype=U32)
    blocks = plan_blocks(total)
    params = _params(total, m, width, segs.shape[0] // 6, blocks * THREADS, int(transposed))
    out = launch(stack_source(), [x, segs, params], (blocks * THREADS, 1), THREADS, [(total,)])[0]
    return out.reshape(shape)
