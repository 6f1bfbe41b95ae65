"""NTT kernels (pcs.md §0, §5.3, §6.4): batched DFT along axis 0 and the RS messages of the
stacked matrix. Natural order in and out, bit-equal to :mod:`mlx_stark.poly.ntt` and
:func:`mlx_stark.prover.stacked_pcs.rs_messages`.

Transform: radix-``2^s`` Stockham passes (``s <= 10``), a whole transform being 1-3 launches
and no host wait. With ``N_s`` the product of the radices of the previous passes, a pass maps
``A`` to ``A'`` with, for ``j < N/R`` and ``r, q < R``::

    A'[(j / N_s)·N_s·R + j mod N_s + q·N_s] = Σ_r ω_R^{rq} · ω_{N_s·R}^{r·(j mod N_s)} · A[j + r·N/R]

(decimation in time; after the last pass ``A' = DFT(A)`` in natural order). A block loads
``TB`` adjacent columns (index ``j`` and the trailing batch position together form one
contiguous column number) of ``R`` elements each into shared memory, bit-reversed, runs the
``s`` radix-2 stages there (two per barrier) and writes the ``R`` outputs. ``TB·R`` words fit
32 KiB (Metal's threadgroup memory); rows past the input's height read as zero, which makes
the LDE's zero padding free.

Coset LDE of short blocks (round 0 of the batch constraint sumcheck, ``N = 2^l_skip``): the
values on ``s·D`` are a fixed linear map of the values on ``D``, ``M_s = DFT·diag(s^j)·iDFT``,
i.e. ``M_s[i][j] = L_j(s·ω^i)`` with ``L_j`` the Lagrange basis of ``D``. The ``E`` matrices
are built on the host (Montgomery form) and read by one thread per (row, coset), which holds
its row's ``N`` values in registers and writes ``N`` dot products, each one 64-bit sum of
products and one Montgomery reduction. One pass over the data instead of the several
uint64-wide passes of iDFT, scaling and DFT.
"""
from __future__ import annotations

import math
from functools import lru_cache
from typing import Sequence

import mlx.core as mx
import numpy as np

from ..errors import InvalidInputError
from ..field.bb import P, U32, two_adic_generator
from ..poly.ntt import coset_lde_ops, twiddles_mont
from ..tracing import wait
from . import KernelSource, launch
from . import params as _params
from .indexing import stack_inputs
from .prelude import literal, mont
from .sizing import THREADS, grid_x

SHARED_WORDS = 1 << 13  # 32 KiB of shared / threadgroup memory per block
MAX_LOG_RADIX = 10
MAX_GRID_Y = 65535  # CUDA's limit on blocks along y (the leading batch axis)
MAX_LDE_LOG_N = 5  # coset_lde keeps N <= 32 values per thread in registers
MAX_LAUNCH_THREADS = 1 << 30  # threads of one coset_lde launch (32-bit gid and slice bounds)
# A transform with an output this large waits for its passes before the last one: MLX's GPU
# backends keep every buffer a command graph reads until the graph completes, so without the
# wait the input and all passes' outputs are alive at once (keccakf's commitment: msgs 0.33 GiB
# and three 0.66 GiB passes). One host sync; the GPU has the passes before it queued already.
WAIT_BEFORE_LAST_PASS_BYTES = 1 << 28


def tile_columns(log_radix: int) -> int:
    """Columns per block of a radix-``2^log_radix`` pass: the tile fills the shared memory,
    at most one column per thread (so each thread keeps one column through the pass)."""
    return min(SHARED_WORDS >> log_radix, THREADS)


@lru_cache(maxsize=MAX_LOG_RADIX)
def stockham_source(log_radix: int) -> KernelSource:
    """One radix-``2^log_radix`` pass: ``x`` (pre·n_in·cols) -> ``y`` (pre·N·cols);
    ``tw``: ``ω_N^i`` for ``i < N/2`` (Montgomery); ``params = [N, cols, N_s, log N_s, n_in,
    log N]``. Blocks of :data:`THREADS` threads along x, one leading batch index per block row
    along y.

    Thread ``tid`` owns column ``tid mod TB`` of the tile and every ``THREADS/TB``-th element
    of it. In shared memory the stages go two at a time (a radix-4 butterfly in registers
    between two barriers), the last one alone when ``log_radix`` is odd."""
    if not 1 <= log_radix <= MAX_LOG_RADIX:
        raise ValueError(f"radix 2^{log_radix} out of range")
    s = log_radix
    radix = 1 << s
    tb = tile_columns(s)
    log_tb = tb.bit_length() - 1
    step = THREADS // tb
    radix2_tail = ""
    if s % 2:
        radix2_tail = f"""{{
  const uint32_t h = {radix // 2}u;
  BARRIER();
  for (uint32_t k = first; k < h; k += {step}u) {{
    const uint32_t ia = k * {tb}u + t;
    const uint32_t ib = ia + h * {tb}u;
    const uint32_t a = tile[ia];
    const uint32_t bw = bb_mont(tile[ib], tw[k << (log_n - {s}u)]);
    tile[ia] = bb_add(a, bw);
    tile[ib] = bb_sub(a, bw);
  }}
}}
"""
    body = f"""SHARED uint32_t tile[{tb * radix}];
const uint32_t n = params[0];
const uint32_t cols = params[1];
const uint32_t ns = params[2];
const uint32_t log_ns = params[3];
const uint32_t n_in = params[4];
const uint32_t log_n = params[5];
const uint32_t nr = n >> {s}u;
const uint32_t span = nr * cols;
const uint32_t half_n = n >> 1;
const uint32_t pre_shift = log_n - log_ns - {s}u;
const uint32_t t = tid & {tb - 1}u;
const uint32_t first = tid >> {log_tb}u;
const uint32_t f = bid * {tb}u + t;
const bool live = f < span;
const uint32_t j = live ? f / cols : 0u;
const uint32_t c = j & (ns - 1u);
const uint64_t in_at = (uint64_t)bid_y * n_in * cols + f;
for (uint32_t r = first; r < {radix}u; r += {step}u) {{
  uint32_t v = 0u;
  if (live && j + r * nr < n_in) v = x[in_at + (uint64_t)r * span];
  const uint32_t te = (r * c) << pre_shift;
  if (te != 0u) v = bb_mont(v, te < half_n ? tw[te] : BB_P - tw[te - half_n]);
  tile[(BITREV32(r) >> {32 - s}u) * {tb}u + t] = v;
}}
for (uint32_t log_h = 0u; log_h + 1u < {s}u; log_h += 2u) {{
  const uint32_t h = 1u << log_h;
  BARRIER();
  for (uint32_t b = first; b < {radix // 4}u; b += {step}u) {{
    const uint32_t k = b & (h - 1u);
    const uint32_t i0 = (((b - k) << 2) + k) * {tb}u + t;
    const uint32_t i1 = i0 + h * {tb}u;
    const uint32_t i2 = i1 + h * {tb}u;
    const uint32_t i3 = i2 + h * {tb}u;
    const uint32_t w1 = tw[k << (log_n - 1u - log_h)];
    const uint32_t a0 = tile[i0];
    const uint32_t a1 = bb_mont(tile[i1], w1);
    const uint32_t a2 = tile[i2];
    const uint32_t a3 = bb_mont(tile[i3], w1);
    const uint32_t b0 = bb_add(a0, a1), b1 = bb_sub(a0, a1);
    const uint32_t c2 = bb_mont(bb_add(a2, a3), tw[k << (log_n - 2u - log_h)]);
    const uint32_t c3 = bb_mont(bb_sub(a2, a3), tw[(k + h) << (log_n - 2u - log_h)]);
    tile[i0] = bb_add(b0, c2);
    tile[i2] = bb_sub(b0, c2);
    tile[i1] = bb_add(b1, c3);
    tile[i3] = bb_sub(b1, c3);
  }}
}}
{radix2_tail}BARRIER();
if (live) {{
  const uint64_t out_row = (uint64_t)bid_y * n + ((j >> log_ns) << (log_ns + {s}u)) + c;
  const uint32_t m = f - j * cols;
  for (uint32_t q = first; q < {radix}u; q += {step}u)
    y[(out_row + (q << log_ns)) * cols + m] = tile[q * {tb}u + t];
}}
"""
    return KernelSource(f"ntt_stockham_r{s}", ("x", "tw", "params"), ("y",), "", body)


def pass_plan(log_n: int) -> list:
    """Radix exponents of the passes for a length-``2^log_n`` transform: as few passes as
    :data:`MAX_LOG_RADIX` allows, as even as possible (larger ones first)."""
    if log_n == 0:
        return []
    passes = -(-log_n // MAX_LOG_RADIX)
    base, extra = divmod(log_n, passes)
    return [base + 1] * extra + [base] * (passes - extra)


def transform(x: mx.array, log_n: int, inverse: bool) -> mx.array:
    """Unscaled DFT (``inverse``: with ``ω^{-1}``) of length ``N = 2^log_n`` along axis 1 of
    ``x`` ``(pre, n_in, cols)`` uint32 canonical, ``n_in <= N`` (rows ``n_in..N`` are zero):
    ``(pre, N, cols)`` uint32, natural order. Lazy: one launch per pass."""
    pre, n_in, cols = x.shape
    n = 1 << log_n
    if n_in > n:
        raise InvalidInputError(f"{n_in} input rows do not fit a transform of length {n}")
    if n * cols >= 1 << 32:
        raise InvalidInputError(f"native transform of {n} x {cols} exceeds 2^32 elements per batch")
    if pre == 0 or cols == 0:
        return mx.zeros((pre, n, cols), dtype=mx.uint32)
    if pre > MAX_GRID_Y:
        return mx.concatenate([transform(x[i:i + MAX_GRID_Y], log_n, inverse)
                               for i in range(0, pre, MAX_GRID_Y)], axis=0)
    if log_n == 0:
        return x
    tw = twiddles_mont(log_n, inverse).reshape(-1)
    y, rows, log_ns = x, n_in, 0
    plan = pass_plan(log_n)
    for i, s in enumerate(plan):
        if 0 < i == len(plan) - 1 and pre * n * cols * 4 >= WAIT_BEFORE_LAST_PASS_BYTES:
            wait(y)  # frees the input and the earlier passes' outputs (see the constant)
        params = _params(n, cols, 1 << log_ns, log_ns, rows, log_n)
        blocks = -(-((n >> s) * cols) // tile_columns(s))
        y = launch(stockham_source(s), [y, tw, params], (blocks * THREADS, pre), THREADS,
                   [(pre, n, cols)])[0]
        rows, log_ns = n, log_ns + s
    return y


@lru_cache(maxsize=16)
def rs_messages_source(log_block: int, stacked: bool = False) -> KernelSource:
    """RS messages per ``2^l``-row block (pcs.md §5.3): ``matrix`` (H·W) -> ``out`` (H·W);
    ``params = [H/2^l · W, W]``. One thread per (block, column) holds the block's ``2^l``
    values in registers: an inverse DFT over ``⟨ω_l⟩`` (radix 2, bit-reversed load), the scale
    ``2^-l``, then the subset-sum transform over the ``l`` bits. Straight-line code (``l`` is
    small: 2-4 in every preset).

    ``stacked``: the stacked matrix is not an input; its block is read from the committed
    matrices as :func:`mlx_stark.custom_kernels.indexing.stack_source` reads them (``x``,
    ``segs``; ``params = [H/2^l · W, W, log H, N]``): a block never straddles two runs (runs
    are ``2^max(h, l)`` long and aligned)."""
    l = log_block
    size = 1 << l
    w_inv = pow(two_adic_generator(l), P - 2, P)
    lines = [
        "if (gid >= params[0]) return;",
        "const uint32_t width = params[1];",
        "const uint32_t blk = gid / width;",
        "const uint32_t col = gid - blk * width;",
        f"const uint64_t base = ((uint64_t)blk << {l}u) * width + col;",
        f"uint32_t v[{size}];",
    ]
    rev = [int(f"{i:0{l}b}"[::-1], 2) if l else 0 for i in range(size)]
    if stacked:
        lines += [f"v[{rev[i]}] = 0u;" for i in range(size)]
        lines += [
            f"const uint32_t f = (col << params[2]) + (blk << {l}u);",
            "for (uint32_t a = 0u; a < params[3]; ++a) {",
            "  const uint32_t local = f - segs[6u * a];",
            "  if (local < segs[6u * a + 1u]) {",
            "    const uint32_t run = segs[6u * a + 3u];",
            "    const uint32_t spread = segs[6u * a + 4u];",
            "    const uint32_t i0 = local & ((1u << run) - 1u);",
            "    const uint64_t at = (uint64_t)segs[6u * a + 5u] + (local >> run);",
            "    const uint32_t w = segs[6u * a + 2u];",
        ]
        for i in range(size):
            lines += [f"    if (((i0 + {i}u) & ((1u << spread) - 1u)) == 0u) "
                      f"v[{rev[i]}] = x[at + (uint64_t)((i0 + {i}u) >> spread) * w];"]
        lines += ["    break;", "  }", "}"]
    else:
        lines += [f"v[{rev[i]}] = matrix[base + (uint64_t){i}u * width];" for i in range(size)]
    h = 1
    while h < size:
        for g in range(0, size, 2 * h):
            for k in range(h):
                a, b = g + k, g + k + h
                tw = pow(w_inv, k * (size // (2 * h)), P)
                bw = f"bb_mont(v[{b}], {literal(mont(tw))})" if k else f"v[{b}]"
                lines += ["{", f"const uint32_t bw = {bw};", f"v[{b}] = bb_sub(v[{a}], bw);",
                          f"v[{a}] = bb_add(v[{a}], bw);", "}"]
        h *= 2
    scale = literal(mont(pow(size, P - 2, P)))
    lines += [f"v[{i}] = bb_mont(v[{i}], {scale});" for i in range(size)] if l else []
    for bit in range(l):
        lines += [f"v[{i}] = bb_add(v[{i}], v[{i ^ (1 << bit)}]);" for i in range(size) if i >> bit & 1]
    lines += [f"out[base + (uint64_t){i}u * width] = v[{i}];" for i in range(size)]
    inputs = ("x", "segs", "params") if stacked else ("matrix", "params")
    return KernelSource(f"rs_messages_{'stacked_' if stacked else ''}l{l}", inputs, ("out",), "",
                        "\n".join(lines) + "\n")


def rs_messages(matrix: mx.array, l_skip: int) -> mx.array:
    """:func:`mlx_stark.prover.stacked_pcs.rs_messages`: ``(2^m, W)`` -> ``(2^m, W)``, one launch."""
    height, width = matrix.shape
    count = (height >> l_skip) * width
    if count == 0:
        return mx.zeros((height, width), dtype=mx.uint32)
    params = _params(count, width)
    return launch(rs_messages_source(l_skip), [matrix, params], (grid_x(count), 1), THREADS,
                  [(height, width)])[0]


def stacked_rs_messages(layout, matrices) -> mx.array:
    """:func:`mlx_stark.prover.stacked_pcs.stacked_rs_messages`: the RS messages of the stacked
    matrix of ``matrices`` (checked against ``layout``), read from them: ``(2^m, W)`` uint32.
    One launch (and a concatenation of the inputs when more than one matrix has columns);
    the stacked matrix is never built."""
    height, width = layout.height, layout.width
    count = (height >> layout.l_skip) * width
    x, segs = stack_inputs(layout, matrices)
    if count == 0 or x is None:
        return mx.zeros((height, width), dtype=mx.uint32)
    params = _params(count, width, layout.log_stacked_height, segs.shape[0] // 6)
    return launch(rs_messages_source(layout.l_skip, True), [x, segs, params], (grid_x(count), 1),
                  THREADS, [(height, width)])[0]


@lru_cache(maxsize=MAX_LDE_LOG_N + 1)
def coset_lde_source(n: int) -> KernelSource:
    """Coset LDE of length-``n`` blocks (module docstring): ``values`` (R·n), ``mats``
    (E·n·n: ``M_e[i][j]`` at ``(e·n + i)·n + j``, Montgomery form), ``params = [R·E, E]`` ->
    ``out`` (R·E·n). Thread ``gid = r·E + e`` reads row ``r`` and writes ``out[gid·n ...]``.

    ``v·M_R < p^2 < p·2^31``: the first two products need no fold, then each pair of products
    is added with one ``bb_fold``, keeping the sum below ``p·2^32`` for ``bb_redc``."""
    if n < 1 or n & (n - 1) or n > 1 << MAX_LDE_LOG_N:
        raise ValueError(f"coset_lde kernels take a power of two N <= {1 << MAX_LDE_LOG_N}, not {n}")
    lines = [
        "const uint32_t threads = params[0];",
        "if (gid >= threads) return;",
        "const uint32_t cosets = params[1];",
        "const uint32_t row = gid / cosets;",
        f"const uint32_t m0 = (gid - row * cosets) * {n * n}u;",
        f"const uint64_t at = (uint64_t)row * {n}u;",
        f"const uint64_t o = (uint64_t)gid * {n}u;",
    ]
    lines += [f"const uint32_t v{j} = values[at + {j}u];" for j in range(n)]
    terms = [f"mul_wide(v{j}, mats[m + {j}u])" for j in range(n)]
    lines += [f"for (uint32_t i = 0u; i < {n}u; ++i) {{",
              f"const uint32_t m = m0 + i * {n}u;",
              f"uint64_t acc = {' + '.join(terms[:2])};"]
    lines += [f"acc = bb_fold(acc + {terms[k]} + {terms[k + 1]});" for k in range(2, n, 2)]
    lines += ["out[o + i] = bb_redc(acc);", "}"]
    return KernelSource(f"coset_lde_n{n}", ("values", "mats", "params"), ("out",), "",
                        "\n".join(lines) + "\n")


@lru_cache(maxsize=32)
def coset_lde_matrices(n: int, shifts: tuple) -> mx.array:
    """The matrices ``M_s[i][j] = L_j(s·ω^i)`` for ``s`` in ``shifts`` (module docstring), in
    Montgomery form: ``(E·n·n,)`` uint32. ``M_s`` is circulant: with ``t = s·ω^(i−j)``,
    ``L_j(s·ω^i) = (s^n − 1)/(n·(t − 1))``, or ``1`` where ``t = 1`` (``s ∈ D``)."""
    w = two_adic_generator(n.bit_length() - 1)
    inv_n = pow(n, P - 2, P)
    rows = []
    for s in shifts:
        scale = (pow(s, n, P) - 1) * inv_n % P
        diag = []  # entry of M_s on the diagonal i − j = d (mod n)
        for d in range(n):
            t = s * pow(w, d, P) % P
            diag.append(1 if t == 1 else scale * pow(t - 1, P - 2, P) % P)
        rows += [mont(diag[(i - j) % n]) for i in range(n) for j in range(n)]
    return mx.array(np.array(rows, dtype=np.uint32))


def coset_lde(values: mx.array, shifts: Sequence[int]) -> mx.array:
    """:func:`mlx_stark.poly.ntt.coset_lde` (bit-equal; arguments as it checks them):
    ``(..., N)`` -> ``(..., E, N)`` uint32, one launch (per :data:`MAX_LAUNCH_THREADS`
    threads) for ``N <= 2^MAX_LDE_LOG_N``, the MLX-ops path for longer blocks."""
    n = values.shape[-1]
    shifts = tuple(int(s) for s in shifts)
    if n > 1 << MAX_LDE_LOG_N:
        return coset_lde_ops(values, shifts)
    lead, e = values.shape[:-1], len(shifts)
    rows = math.prod(lead)
    if rows == 0:
        return mx.zeros(lead + (e, n), dtype=U32)
    src, mats = coset_lde_source(n), coset_lde_matrices(n, shifts)
    flat = values.astype(U32).reshape(rows, n)
    per_launch = max(1, MAX_LAUNCH_THREADS // e)
    outs = []
    for r0 in range(0, rows, per_launch):
        part = flat[r0:min(rows, r0 + per_launch)]
        threads = part.shape[0] * e
        params = _params(threads, e)
        outs.append(launch(src, [part, mats, params], (grid_x(threads), 1), THREADS,
                           [(part.shape[0], e, n)])[0])
    out = outs[0] if len(outs) == 1 else mx.concatenate(outs)
    return out.reshape(lead + (e, n))


MAX_LOG_SUBSET = 5  # subset_transform keeps 2^5 values per thread in registers


def subset_plan(log_n: int) -> list:
    """Bits per pass of a subset-sum transform over ``log_n`` bits: as few passes as
    :data:`MAX_LOG_SUBSET` allows, as even as possible."""
    if log_n == 0:
        return []
    passes = -(-log_n // MAX_LOG_SUBSET)
    base, extra = divmod(log_n, passes)
    return [base + 1] * extra + [base] * (passes - extra)


@lru_cache(maxsize=None)
def subset_source(log_radix: int, inverse: bool) -> KernelSource:
    """One pass of the subset-sum transform (:func:`mlx_stark.poly.mle.zeta`; with ``inverse``
    :func:`~mlx_stark.poly.mle.mobius`) over ``r = log_radix`` index bits ``b..b+r`` of the
    middle axis of ``x`` viewed as ``(pre, n, post)``: ``params = [count, post, b, n/2^(b+r)]``,
    ``count = pre·n·post / 2^r`` threads, each holding the ``2^r`` values that differ in those
    bits in registers. Straight-line code."""
    size = 1 << log_radix
    op = "bb_sub" if inverse else "bb_add"
    lines = [
        "if (gid >= params[0]) return;",
        "const uint32_t post = params[1];",
        "const uint32_t b = params[2];",
        "const uint32_t n_hi = params[3];",
        "const uint32_t q = gid % post;",
        "uint32_t t = gid / post;",
        "const uint32_t lo = t & ((1u << b) - 1u);",
        "t >>= b;",
        "const uint32_t hi = t % n_hi;",
        "const uint64_t stride = (uint64_t)post << b;",
        f"const uint64_t base = (((((uint64_t)(t / n_hi) * n_hi + hi) << (b + {log_radix}u)) + lo) * post) + q;",
        f"uint32_t v[{size}];",
    ]
    lines += [f"v[{i}] = x[base + {i}u * stride];" for i in range(size)]
    for bit in range(log_radix):
        lines += [f"v[{i}] = {op}(v[{i}], v[{i ^ (1 << bit)}]);" for i in range(size) if i >> bit & 1]
    lines += [f"out[base + {i}u * stride] = v[{i}];" for i in range(size)]
    name = f"{'mobius' if inverse else 'zeta'}_r{log_radix}"
    return KernelSource(name, ("x", "params"), ("out",), "", "\n".join(lines) + "\n")


def subset_transform(x: mx.array, axis: int, inverse: bool) -> mx.array:
    """:func:`mlx_stark.poly.mle.zeta` (``inverse``: :func:`~mlx_stark.poly.mle.mobius`) over all
    bits of ``axis`` (a power-of-two length) of ``x`` uint32 canonical, any shape: same shape
    out. One launch per :func:`subset_plan` pass; lazy. Each pass writes a new array of the
    input's size (the MLX-ops path makes several per bit)."""
    axis = axis % x.ndim
    n, post = x.shape[axis], math.prod(x.shape[axis + 1:])
    if n < 1 or n & (n - 1):
        raise InvalidInputError(f"transform length must be a power of two, got {n}")
    if x.size == 0 or n == 1:
        return x
    if x.size >= 1 << 32:
        raise InvalidInputError(f"subset transform of {x.size} words exceeds 32-bit indices")
    y, b = x.reshape(-1), 0
    for r in subset_plan(n.bit_length() - 1):
        count = x.size >> r
        params = _params(count, post, b, n >> (b + r))
        y = launch(subset_source(r, inverse), [y, params], (grid_x(count), 1), THREADS, [(x.size,)])[0]
        b += r
    return y.reshape(x.shape)


def zeta(x: mx.array, axis: int = 0) -> mx.array:
    """:func:`subset_transform`, forward."""
    return subset_transform(x, axis, False)


def mobius(x: mx.array, axis: int = 0) -> mx.array:
    """:func:`subset_transform`, inverse."""
    return subset_transform(x, axis, True)
