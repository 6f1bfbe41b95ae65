"""Product-sumcheck kernels: the native path of the degree-2 product sumcheck shared by the
stacked opening reduction (pcs.md §7.3 step 4) and WHIR (§8.2 step 2a), of
:func:`mlx_stark.poly.fold_lowest` and of WHIR's query weights.

A round of the product sumcheck over tables ``f, w`` ``(N, ..., 4)`` (extension elements,
uint32 canonical, the trailing batch axes flattened to ``B`` columns) needs
``s(1) = Σ f1·w1`` and ``s(2) = Σ f2·w2`` over the pairs ``y`` and columns ``b``
(``t0 = T[2y, b]``, ``t1 = T[2y + 1, b]``, ``t2 = 2·t1 − t0``), sends them to the host for the
transcript and folds both tables at the sampled ``r``. With MLX ops that is a few dispatches
and uint64 ``% p`` per round; here a round is one launch:

- :func:`fold_ext` / :func:`fold_base`: ``T'[y] = T[2y] + r·(T[2y + 1] − T[2y])``, one thread
  per output element ``(y, b)``;
- :func:`product_round`: every thread adds the terms of the items ``i = y·B + b ≡ gid`` (mod
  the launch's threads), the block adds its threads' sums in shared memory and writes one
  partial sum (``parts (K, 8)``), added up on the device into the round's message;
- :func:`fold_product_round`: item ``(y, b)`` of the folded tables folds the old rows
  ``4y .. 4y + 3`` of column ``b`` of both tables, writes the new rows ``2y, 2y + 1`` and adds
  their terms, so that every round after the first reads the tables once;
- :func:`update_weights`: WHIR's weight update ``w + γ·E(z_0) + Σ_q γ^(q+2)·E(z_q)`` with
  ``E(z)[b] = Π_i (bit_i(b) ? z^(2^i) : 1 − z^(2^i))``, one thread per ``b`` looping over the
  queries and squaring each point as it goes; :func:`powers_at`: the query points
  ``z_q = g^idx_q`` themselves, a thread per query.

Values are canonical in memory; ``ef_mul`` is the Montgomery product (``a·b·2^-32``): the
product terms of canonical tables are ``term·2^-32``, added with field additions, and a block's
sums are multiplied by ``2^32`` once (``bb_to_mont``). Folds multiply the canonical difference
by ``r`` in Montgomery form (canonical result). The weight update works in Montgomery form
throughout. Every result is bit-equal to the MLX-ops references
(:func:`mlx_stark.prover.sumcheck.product_round_values`,
:func:`mlx_stark.poly.fold_lowest`, :func:`mlx_stark.prover.whir._update_weights`,
:func:`mlx_stark.prover.whir._powers_at`).
"""
from __future__ import annotations

import math
from functools import lru_cache

import mlx.core as mx
import numpy as np

from ..errors import InvalidInputError
from ..field import ext
from ..field.bb import P
from . import KernelSource, launch
from . import params as _params
from .linear import launch_summed
from .poseidon2 import duplex, with_absorb
from .prelude import EXTENSION, block_sum, kernel_args, literal, mont
from .sizing import THREADS, grid_x, plan_blocks

SUMS = 8  # s(1), s(2): 2 x 4 coefficients

_HEADER = EXTENSION + """\
// a + r·(b − a) for canonical a, b and r in Montgomery form: canonical
KFN ef ef_fold(ef a, ef b, ef r) {
  return ef_add(a, ef_mul(ef_sub(b, a), r));
}
struct psums {
  ef s1, s2;
};
KFN psums psums_zero() {
  psums s;
  s.s1 = ef_make(0u, 0u, 0u, 0u); s.s2 = s.s1;
  return s;
}
// s += (f1·w1, f2·w2)·2^-32 for the pairs (f0, f1), (w0, w1): t2 = t1 + (t1 − t0)
KFN psums psums_add(psums s, ef f0, ef f1, ef w0, ef w1) {
  s.s1 = ef_add(s.s1, ef_mul(f1, w1));
  const ef f2 = ef_add(f1, ef_sub(f1, f0));
  const ef w2 = ef_add(w1, ef_sub(w1, w0));
  s.s2 = ef_add(s.s2, ef_mul(f2, w2));
  return s;
}
"""

_MONT_ONE = literal(mont(1))


def _block_sums() -> str:
    """Thread ``tid``'s sums ``s`` into its column of ``red`` (``SUMS`` x ``THREADS`` shared
    words), added over the block; thread 0 writes ``parts[bid·8 + c]`` (times ``2^32``: the
    canonical sum)."""
    stores = "\n".join(f"red[{4 * x + c}u * {THREADS}u + tid] = s.s{x + 1}.c{c};"
                       for x in range(2) for c in range(4))
    return stores + "\n" + block_sum(SUMS, THREADS, "parts", "bb_to_mont({})")


@lru_cache(maxsize=1)
def product_round_source() -> KernelSource:
    """``f, w`` ``(2M·B·4)`` canonical, ``args = [M·B, B, T]`` (``T`` threads in the launch) ->
    ``parts`` ``(K, 8)``: block ``k``'s canonical sums of ``s(1), s(2)`` over the items
    ``i = y·B + b ≡ gid (mod T)`` of its threads."""
    body = f"""\
SHARED uint32_t red[{SUMS * THREADS}];
const uint32_t items = args[0];
const uint32_t width = args[1];
const uint32_t stride = args[2];
const uint32_t pitch = width * 4u;
psums s = psums_zero();
for (uint32_t i = gid; i < items; i += stride) {{
  // row 2y, column b: (2y·B + b)·4 = (i + y·B)·4
  const uint32_t o = (i + (i / width) * width) * 4u;
  s = psums_add(s, EF_LOAD(f, o), EF_LOAD(f, o + pitch), EF_LOAD(w, o), EF_LOAD(w, o + pitch));
}}
{_block_sums()}"""
    return KernelSource("sumcheck_product_round", ("f", "w", "args"), ("parts",), _HEADER, body)


@lru_cache(maxsize=1)
def fold_product_round_source() -> KernelSource:
    """``f, w`` ``(4M·B·4)`` and ``r_in`` ``(4)`` canonical, ``args = [M·B, B, T]`` ->
    ``f_out, w_out`` ``(2M·B·4)`` (both tables folded at ``r``) and ``parts`` ``(K, 8)`` (as
    :func:`product_round_source`, over the pairs of the folded tables)."""
    body = f"""\
SHARED uint32_t red[{SUMS * THREADS}];
const uint32_t items = args[0];
const uint32_t width = args[1];
const uint32_t stride = args[2];
const ef r = ef_in(r_in[0], r_in[1], r_in[2], r_in[3]);
const uint32_t pitch = width * 4u;
psums s = psums_zero();
for (uint32_t i = gid; i < items; i += stride) {{
  const uint32_t y = i / width;
  // old row 4y, column b: (4y·B + b)·4; new row 2y: (2y·B + b)·4
  const uint32_t o = (i + 3u * y * width) * 4u;
  const uint32_t n = (i + y * width) * 4u;
  const ef f0 = ef_fold(EF_LOAD(f, o), EF_LOAD(f, o + pitch), r);
  const ef f1 = ef_fold(EF_LOAD(f, o + 2u * pitch), EF_LOAD(f, o + 3u * pitch), r);
  const ef w0 = ef_fold(EF_LOAD(w, o), EF_LOAD(w, o + pitch), r);
  const ef w1 = ef_fold(EF_LOAD(w, o + 2u * pitch), EF_LOAD(w, o + 3u * pitch), r);
  EF_STORE(f_out, n, f0);
  EF_STORE(f_out, n + pitch, f1);
  EF_STORE(w_out, n, w0);
  EF_STORE(w_out, n + pitch, w1);
  s = psums_add(s, f0, f1, w0, w1);
}}
{_block_sums()}"""
    return KernelSource("sumcheck_fold_product_round", ("f", "w", "r_in", "args"), ("f_out", "w_out", "parts"),
                        _HEADER, body)


@lru_cache(maxsize=2)
def fold_source(base: bool) -> KernelSource:
    """``table`` ``(2M·B·4)`` canonical extension (``(2M·B)`` base when ``base``),
    ``r_in`` ``(4)`` canonical, ``args = [M·B, B]`` -> ``out`` ``(M·B·4)``: one thread per
    output element ``(y, b)``."""
    if base:
        fold = """\
const uint32_t o = gid + (gid / width) * width;
const uint32_t d = bb_sub(table[o + width], table[o]);
EF_STORE(out, gid * 4u, ef_add_b(ef_mul_b(r, d), table[o]));
"""
    else:
        fold = """\
const uint32_t o = (gid + (gid / width) * width) * 4u;
EF_STORE(out, gid * 4u, ef_fold(EF_LOAD(table, o), EF_LOAD(table, o + width * 4u), r));
"""
    body = """\
const uint32_t items = args[0];
if (gid >= items) return;
const uint32_t width = args[1];
const ef r = ef_in(r_in[0], r_in[1], r_in[2], r_in[3]);
""" + fold
    return KernelSource("sumcheck_fold_base" if base else "sumcheck_fold_ext", ("table", "r_in", "args"), ("out",),
                        _HEADER, body)


@lru_cache(maxsize=1)
def update_weights_source() -> KernelSource:
    """``w`` ``(2^d·4)``, ``z`` ``(4)`` (the out-of-domain point ``z_0``), ``gamma`` ``(4)``,
    ``points`` ``(Q)`` (base-field ``z_q``), all canonical, ``args = [2^d, d, Q]`` -> ``out``
    ``(2^d·4)``: thread ``b`` writes ``w[b] + γ·E(z_0)[b] + Σ_q γ^(q+2)·E(z_q)[b]``, the
    squares of every point and the powers of ``γ`` made as it goes (Montgomery form)."""
    body = f"""\
const uint32_t size = args[0];
if (gid >= size) return;
const uint32_t vars = args[1];
const uint32_t queries = args[2];
const ef one = ef_make({_MONT_ONE}, 0u, 0u, 0u);
const ef g = ef_in(gamma[0], gamma[1], gamma[2], gamma[3]);
ef sq = ef_in(z[0], z[1], z[2], z[3]);
ef e = one;
for (uint32_t i = 0u; i < vars; ++i) {{
  e = ef_mul(e, ((gid >> i) & 1u) ? sq : ef_sub(one, sq));
  sq = ef_mul(sq, sq);
}}
const uint32_t o = gid * 4u;
ef acc = ef_add(ef_in(w[o], w[o + 1u], w[o + 2u], w[o + 3u]), ef_mul(g, e));
ef c = ef_mul(g, g);
for (uint32_t q = 0u; q < queries; ++q) {{
  uint32_t eq = {_MONT_ONE};
  uint32_t x = bb_to_mont(points[q]);
  for (uint32_t i = 0u; i < vars; ++i) {{
    eq = bb_mont(eq, ((gid >> i) & 1u) ? x : bb_sub({_MONT_ONE}, x));
    x = bb_mont(x, x);
  }}
  acc = ef_add(acc, ef_mul_b(c, eq));
  c = ef_mul(c, g);
}}
EF_STORE(out, o, ef_make(bb_from_mont(acc.c0), bb_from_mont(acc.c1), bb_from_mont(acc.c2),
                         bb_from_mont(acc.c3)));
"""
    return KernelSource("sumcheck_update_weights", ("w", "z", "gamma", "points", "args"), ("out",),
                        _HEADER, body)


@lru_cache(maxsize=1)
def powers_at_source() -> KernelSource:
    """``idx`` ``(Q)``, ``args = [Q, bits, g]`` (``g`` canonical) -> ``out`` ``(Q)``: thread
    ``q`` writes ``g^idx[q]`` over the low ``bits`` bits of ``idx[q]`` (canonical)."""
    body = f"""\
const uint32_t n = args[0];
if (gid >= n) return;
const uint32_t bits = args[1];
uint32_t sq = bb_to_mont(args[2]);
uint32_t acc = {_MONT_ONE};
const uint32_t e = idx[gid];
for (uint32_t b = 0; b < bits; ++b) {{
  if ((e >> b) & 1u) acc = bb_mont(acc, sq);
  sq = bb_mont(sq, sq);
}}
out[gid] = bb_from_mont(acc);
"""
    return KernelSource("sumcheck_powers_at", ("idx", "args"), ("out",), _HEADER, body)


MAX_NODES = 32  # interpolation nodes of one launch (round polynomials have a handful)


def interpolation_code(n: str, value: str, x: str, inv: str, out: str) -> str:
    """C statements that set ``out`` (an ``ef`` the caller declared) to the value at ``x`` (an
    ``ef`` in Montgomery form) of the polynomial through ``(i, value)``, ``i < n``
    (``n ≤ MAX_NODES``), canonical. ``value``: a C expression of ``i``, node ``i``'s value in
    Montgomery form; ``inv``: one of ``i``, ``1 / Π_{j≠i} (i − j)`` canonical. Prefix products
    ``Π_{j<i} (x − j)`` in registers, suffix products on the way down."""
    return f"""{{
ef pre[{MAX_NODES}];
pre[0] = ef_make({_MONT_ONE}, 0u, 0u, 0u);
for (uint32_t i = 1u; i < {n}; ++i) pre[i] = ef_mul(pre[i - 1u], ef_sub_eb({x}, bb_to_mont(i - 1u)));
ef suf = pre[0];
{out} = ef_make(0u, 0u, 0u, 0u);
for (uint32_t i = {n}; i-- > 0u;) {{
  const ef w = ef_mul_b(ef_mul(pre[i], suf), {inv});
  {out} = ef_add({out}, ef_mul({value}, w));
  suf = ef_mul(suf, ef_sub_eb({x}, bb_to_mont(i)));
}}
}}
"""


@lru_cache(maxsize=None)
def interpolate_source() -> KernelSource:
    """``values`` ``(n·4)`` canonical, ``x`` ``(4)`` canonical, ``params = [n, inv_0 ..
    inv_{n−1}]`` (``inv_i = 1 / Π_{j≠i} (i − j)``, canonical) -> ``out`` ``(4)``: the value at
    ``x`` of the polynomial through ``(i, values[i])`` (:func:`interpolation_code`), one
    thread."""
    body = f"""if (gid != 0u) return;
const uint32_t n = params[0];
const ef xm = ef_in(x[0], x[1], x[2], x[3]);
ef acc;
{interpolation_code("n", "ef_in(values[i * 4u], values[i * 4u + 1u], values[i * 4u + 2u], values[i * 4u + 3u])", "xm", "params[1u + i]", "acc")}EF_STORE(out, 0u, acc);
"""
    return KernelSource("sumcheck_interpolate", ("values", "x", "params"), ("out",), _HEADER, body)


@lru_cache(maxsize=None)
def product_table_source() -> KernelSource:
    """``factors`` ``(d·8)`` canonical (``a0_j``, ``a1_j`` per factor; with ``args[2] = 1``
    ``(d·4)``, the points ``p_j`` of an eq table: ``a0_j = 1 − p_j``, ``a1_j = p_j``),
    ``args = [2^d, d, eq]`` -> ``out`` ``(2^d·4)``: thread ``i`` writes
    ``Π_j (bit_j(i) ? a1_j : a0_j)`` (Montgomery-form products, canonical out)."""
    body = f"""\
const uint32_t size = args[0];
if (gid >= size) return;
const uint32_t d = args[1];
const uint32_t eq = args[2];
ef acc = ef_make({_MONT_ONE}, 0u, 0u, 0u);
for (uint32_t j = 0u; j < d; ++j) {{
  const uint32_t bit = (gid >> j) & 1u;
  ef f = eq ? EF_LOAD(factors, j * 4u) : EF_LOAD(factors, (j * 2u + bit) * 4u);
  if (eq && !bit) f = ef_sub_be(1u, f);
  acc = ef_mul(acc, ef_in(f.c0, f.c1, f.c2, f.c3));
}}
EF_STORE(out, gid * 4u, ef_make(bb_from_mont(acc.c0), bb_from_mont(acc.c1), bb_from_mont(acc.c2),
                                 bb_from_mont(acc.c3)));
"""
    return KernelSource("sumcheck_product_table", ("factors", "args"), ("out",), _HEADER, body)


@lru_cache(maxsize=None)
def eq_suffix_source() -> KernelSource:
    """``points`` ``(d·4)`` canonical, ``args = [2^(d+1) − 1, d]`` -> ``out`` (``(2^(d+1) −
    1)·4``): the eq tables of every suffix of the points one after the other, ``eq(p[k..d),
    ·)`` (``2^(d−k)`` rows) at row offset ``2^(d+1) − 2^(d−k+1)`` for ``k = 0..d``; thread
    ``i`` writes one row, ``Π_{j ≥ k} (bit_{j−k}(y) ? p_j : 1 − p_j)`` (Montgomery-form
    products, canonical out)."""
    body = f"""\
const uint32_t size = args[0];
if (gid >= size) return;
const uint32_t d = args[1];
uint32_t k = 0u, start = 0u;
while (gid >= start + (1u << (d - k))) {{
  start += 1u << (d - k);
  ++k;
}}
const uint32_t y = gid - start;
ef acc = ef_make({_MONT_ONE}, 0u, 0u, 0u);
for (uint32_t j = k; j < d; ++j) {{
  ef f = EF_LOAD(points, j * 4u);
  if (((y >> (j - k)) & 1u) == 0u) f = ef_sub_be(1u, f);
  acc = ef_mul(acc, ef_in(f.c0, f.c1, f.c2, f.c3));
}}
EF_STORE(out, gid * 4u, ef_make(bb_from_mont(acc.c0), bb_from_mont(acc.c1), bb_from_mont(acc.c2),
                                 bb_from_mont(acc.c3)));
"""
    return KernelSource("sumcheck_eq_suffixes", ("points", "args"), ("out",), _HEADER, body)


@lru_cache(maxsize=None)
def powers_source() -> KernelSource:
    """``x`` ``(4)`` canonical, ``args = [n]`` -> ``out`` ``(n·4)``: thread ``i`` writes ``x^i``
    (square and multiply over the bits of ``i``, Montgomery form inside, canonical out)."""
    body = f"""\
const uint32_t n = args[0];
if (gid >= n) return;
ef sq = ef_in(x[0], x[1], x[2], x[3]);
ef acc = ef_make({_MONT_ONE}, 0u, 0u, 0u);
for (uint32_t e = gid; e != 0u; e >>= 1) {{
  if (e & 1u) acc = ef_mul(acc, sq);
  sq = ef_mul(sq, sq);
}}
EF_STORE(out, gid * 4u, ef_make(bb_from_mont(acc.c0), bb_from_mont(acc.c1), bb_from_mont(acc.c2),
                                 bb_from_mont(acc.c3)));
"""
    return KernelSource("sumcheck_powers", ("x", "args"), ("out",), _HEADER, body)


# ---------------------------------------------------------------- host side
def _table_dims(table: mx.array, least: int, base: bool = False, even: bool = False) -> tuple:
    """``(N, B)`` of a table ``(N, ..., 4)`` (``(N, ...)`` when ``base``): rows and columns.
    ``N`` must be a power of two, or only even (``even``: a fold of adjacent rows)."""
    n = table.shape[0] if table.ndim else 0
    if table.ndim < (1 if base else 2) or (not base and table.shape[-1] != 4):
        raise InvalidInputError(f"an extension table must be (N, ..., 4), got {tuple(table.shape)}")
    if n < least or (n % 2 if even else n & (n - 1)):
        kind = "even" if even else "a power of two"
        raise InvalidInputError(f"table rows must be {kind} >= {least}, got {tuple(table.shape)}")
    width = math.prod(table.shape[1:] if base else table.shape[1:-1])
    if n * width * 4 >= 1 << 32:
        raise InvalidInputError(f"table {tuple(table.shape)} exceeds 32-bit indices")
    return n, width


def _pair_dims(f: mx.array, w: mx.array, least: int) -> tuple:
    if f.shape != w.shape:
        raise InvalidInputError(f"product tables differ in shape: {tuple(f.shape)} vs {tuple(w.shape)}")
    return _table_dims(f, least)


# the sums a one-block launch leaves in ``red`` (before the ``2^32`` finish), as absorbed values
_ABSORBED = f"bb_to_mont(red[i * {THREADS}u])"


def _round(src: KernelSource, inputs: list, items: int, width: int, shapes: list,
           absorb=None) -> tuple:
    """Launch the round kernel ``src`` over ``items`` items of ``width`` columns (its
    ``inputs`` before ``args``): its outputs of ``shapes``, then ``[s(1), s(2)]`` ``(2, 4)``,
    then with ``absorb`` the sponge (:func:`mlx_stark.custom_kernels.linear.launch_summed`)."""
    if items == 0:  # no columns
        sums = mx.zeros((2, 4), dtype=mx.uint32)
        outs = [mx.zeros(shape, dtype=mx.uint32) for shape in shapes]
        if absorb is None:
            return (*outs, sums)
        return (*outs, sums, duplex(absorb[0], sums.reshape(-1), *absorb[1:]))
    blocks = plan_blocks(items)
    out = list(launch_summed(src, inputs + [kernel_args((items, width, blocks * THREADS))], blocks,
                             shapes, SUMS, _ABSORBED, absorb))
    out[len(shapes)] = out[len(shapes)].reshape(2, 4)
    return tuple(out)


def product_round(f: mx.array, w: mx.array) -> tuple:
    """:func:`mlx_stark.prover.sumcheck.product_round_values` (bit-equal): ``f, w``
    ``(2^d, ..., 4)`` uint32 canonical, ``d ≥ 1`` -> ``[s(1), s(2)]`` ``(2, 4)``. One launch
    (two when the items need several blocks); lazy."""
    n, width = _pair_dims(f, w, 2)
    return _round(product_round_source(), [f.reshape(-1), w.reshape(-1)], n // 2 * width, width,
                  [])[0]


def fold_product_round(f: mx.array, w: mx.array, r) -> tuple:
    """:func:`mlx_stark.prover.sumcheck.fold_product_round` (bit-equal): ``f, w``
    ``(2^d, ..., 4)`` uint32 canonical, ``d ≥ 2``, ``r`` host EF or ``(4,)`` device array ->
    ``(f', w', [s(1), s(2)])``: both tables folded at ``r`` (``(2^(d−1), ..., 4)``) and the next
    round's sums ``(2, 4)`` over them. One pass over the tables; lazy."""
    n, width = _pair_dims(f, w, 4)
    shape = (n // 2,) + tuple(f.shape[1:])
    return _round(fold_product_round_source(), [f, w, ext.constant(r)], n // 4 * width, width,
                  [shape, shape])


def absorbing_sources() -> list:
    """The one-block round kernels with their absorb, and with the folding grind after it (what
    :func:`product_round_step` and :func:`fold_product_round_step` launch), for compiling ahead."""
    return [with_absorb(src, _ABSORBED, SUMS, grind)
            for src in (product_round_source(), fold_product_round_source()) for grind in (False, True)]


def product_round_step(f: mx.array, w: mx.array, sponge: mx.array, absorb_idx: int,
                       permute_last: bool, grind=None) -> tuple:
    """:func:`product_round` absorbed into a device transcript's sponge (``(16,)`` or more
    words, from rate position ``absorb_idx``, a final permutation if ``permute_last``):
    ``(sponge (24,), sums (2, 4))``. One launch when the items fit one block (the absorb in
    it), else two (the blocks' sums, then one block adding and absorbing them). With ``grind``
    (:func:`~mlx_stark.custom_kernels.poseidon2.launch_absorbing`) the proof-of-work search
    after the absorb in the absorbing block: the sponge ``(25,)``, the witness last. Lazy."""
    n, width = _pair_dims(f, w, 2)
    sums, out = _round(product_round_source(), [f.reshape(-1), w.reshape(-1)], n // 2 * width,
                       width, [], (sponge, absorb_idx, permute_last, grind))
    return out, sums


def fold_product_round_step(f: mx.array, w: mx.array, r, sponge: mx.array, absorb_idx: int,
                            permute_last: bool, grind=None) -> tuple:
    """:func:`fold_product_round` with the sums absorbed (and ``grind``) as in
    :func:`product_round_step`: ``(sponge, f', w', sums (2, 4))``. Lazy."""
    n, width = _pair_dims(f, w, 4)
    shape = (n // 2,) + tuple(f.shape[1:])
    f2, w2, sums, out = _round(fold_product_round_source(), [f, w, ext.constant(r)],
                               n // 4 * width, width, [shape, shape],
                               (sponge, absorb_idx, permute_last, grind))
    return out, f2, w2, sums


def _fold(table: mx.array, r, base: bool) -> mx.array:
    n, width = _table_dims(table, 2, base, even=True)
    shape = (n // 2,) + tuple(table.shape[1:]) + ((4,) if base else ())
    items = n // 2 * width
    if items == 0:
        return mx.zeros(shape, dtype=mx.uint32)
    args = kernel_args((items, width))
    return launch(fold_source(base), [table, ext.constant(r), args], (grid_x(items), 1), THREADS,
                  [shape])[0]


def fold_ext(table: mx.array, r) -> mx.array:
    """:func:`mlx_stark.poly.fold_lowest` of an extension table (bit-equal): ``table``
    ``(N, ..., 4)`` uint32 canonical, ``N ≥ 2`` even, ``r`` host EF ->
    ``(N/2, ..., 4)``. One launch, one thread per output element. Lazy."""
    return _fold(table, r, False)


def fold_base(table: mx.array, r) -> mx.array:
    """:func:`mlx_stark.poly.fold_lowest` of a base table (bit-equal): ``table`` ``(N, ...)``
    uint32 canonical, ``N ≥ 2`` even, ``r`` host EF -> ``(N/2, ..., 4)``. One
    launch. Lazy."""
    return _fold(table, r, True)


def update_weights(w: mx.array, z0: mx.array, gamma: mx.array, points: mx.array) -> mx.array:
    """:func:`mlx_stark.prover.whir._update_weights` (bit-equal): ``w`` ``(2^d, 4)``, ``z0``,
    ``gamma`` ``(4,)`` uint32 canonical, ``points`` ``(Q,)`` uint32 base-field ``z_q`` (all on
    the device) -> ``(2^d, 4)`` uint32 ``w + γ·E(z_0) + Σ_q γ^(q+2)·E(z_q)``. One launch, one
    thread per row. Lazy."""
    rows, q = w.shape[0], points.shape[0]
    if w.shape != (rows, 4) or rows & (rows - 1) or z0.shape != (4,) or gamma.shape != (4,) \
            or points.shape != (q,):
        raise InvalidInputError(f"a weight update of {tuple(w.shape)} weights, {tuple(z0.shape)}, "
                                f"{tuple(gamma.shape)}, {tuple(points.shape)} points")
    if (4 * rows) >= 1 << 32:
        raise InvalidInputError(f"weights of {rows} rows exceed 32-bit indices")
    d = rows.bit_length() - 1
    return launch(update_weights_source(), [w, z0, gamma, points if q else _params(0),
                                            kernel_args((rows, d, q))],
                  (grid_x(rows), 1), THREADS, [(rows, 4)])[0]


def powers_at(g: int, idx: mx.array, bits: int) -> mx.array:
    """:func:`mlx_stark.prover.whir._powers_at` (bit-equal): ``g`` a host base-field element,
    ``idx`` ``(Q,)`` uint32 -> ``(Q,)`` uint32 canonical ``g^(idx mod 2^bits)``. One launch (the
    ops path takes a handful of MLX ops per bit). Lazy."""
    if idx.ndim != 1 or not 0 <= bits < 32:
        raise InvalidInputError(f"powers at {tuple(idx.shape)} indices of {bits} bits")
    q = idx.shape[0]
    if q == 0:
        return mx.zeros((0,), dtype=mx.uint32)
    return launch(powers_at_source(), [idx.astype(mx.uint32), kernel_args((q, bits, g % P))],
                  (grid_x(q), 1), THREADS, [(q,)])[0]


@lru_cache(maxsize=None)
def _interpolate_params(n: int) -> mx.array:
    from ..poly.mle import node_inverses
    return mx.array(np.array([n] + node_inverses(n), dtype=np.uint32))


def interpolate_at_integers(values: mx.array, x: mx.array) -> mx.array:
    """:func:`mlx_stark.poly.mle.interpolate_at_integers` at a device point (bit-equal):
    ``values`` ``(n, 4)`` uint32 canonical, ``x`` ``(4,)`` uint32 canonical -> ``(4,)``, or
    ``None`` (declined: the ops path runs) for ``n`` outside ``1..MAX_NODES``. One launch of one
    thread (the ops path takes ~3n small launches). Lazy."""
    n = values.shape[0]
    if not 1 <= n <= MAX_NODES:
        return None
    if values.shape != (n, 4) or x.shape != (4,):
        raise InvalidInputError(f"interpolation of {tuple(values.shape)} at {tuple(x.shape)}: "
                                "need (n, 4) and (4,)")
    return launch(interpolate_source(), [values.reshape(-1), x, _interpolate_params(n)],
                  (1, 1), 1, [(4,)])[0]


def _table(factors: mx.array, d: int, eq: int) -> mx.array:
    if (4 << d) >= 1 << 32:
        raise InvalidInputError(f"a product table of {d} factors exceeds 32-bit indices")
    args = kernel_args((1 << d, d, eq))
    return launch(product_table_source(), [factors.reshape(-1), args], (grid_x(1 << d), 1), THREADS,
                  [((1 << d) * 4,)])[0].reshape(1 << d, 4)


def product_table(factors: mx.array) -> mx.array:
    """:func:`mlx_stark.poly.mle.product_table` (bit-equal): ``factors`` ``(d, 2, 4)`` uint32
    canonical (``a0_j, a1_j``), ``d ≥ 1`` -> ``(2^d, 4)``. One launch, a thread per entry. Lazy."""
    d = factors.shape[0]
    if factors.shape != (d, 2, 4) or d == 0:
        raise InvalidInputError(f"factors must be (d, 2, 4) with d >= 1, got {tuple(factors.shape)}")
    return _table(factors, d, 0)


def eq_table(points: mx.array) -> mx.array:
    """:func:`mlx_stark.poly.mle.eq_table` (bit-equal): ``points`` ``(d, 4)`` uint32 canonical,
    ``d ≥ 1`` -> ``(2^d, 4)`` (the factors ``1 − p_j`` made in the kernel). One launch. Lazy."""
    d = points.shape[0]
    if points.shape != (d, 4) or d == 0:
        raise InvalidInputError(f"points must be (d, 4) with d >= 1, got {tuple(points.shape)}")
    return _table(points, d, 1)


def eq_suffix_tables(points: mx.array) -> list:
    """:func:`mlx_stark.poly.mle.eq_suffix_tables` (bit-equal): ``points`` ``(d, 4)`` uint32
    canonical, ``d ≥ 1`` -> ``d + 1`` tables, ``(2^(d−k), 4)`` for ``k = 0..d``: views of one
    launch's output. Lazy."""
    d = points.shape[0]
    if points.shape != (d, 4) or d == 0:
        raise InvalidInputError(f"points must be (d, 4) with d >= 1, got {tuple(points.shape)}")
    if (8 << d) >= 1 << 32:
        raise InvalidInputError(f"eq tables of {d} points exceed 32-bit indices")
    size = (2 << d) - 1
    out = launch(eq_suffix_source(), [points.reshape(-1), kernel_args((size, d))],
                 (grid_x(size), 1), THREADS, [(size, 4)])[0]
    tables, start = [], 0
    for k in range(d + 1):
        tables.append(out[start:start + (1 << (d - k))])
        start += 1 << (d - k)
    return tables


def ext_powers(x: mx.array, n: int) -> mx.array:
    """:func:`mlx_stark.poly.mle.ext_powers` (bit-equal): ``x`` ``(4,)`` uint32 canonical ->
    ``(n, 4)``, ``[1, x, …, x^{n−1}]``. One launch, a thread per power. Lazy."""
    if x.shape != (4,) or n < 0 or (4 * n) >= 1 << 32:
        raise InvalidInputError(f"powers of a {tuple(x.shape)} array, n = {n}")
    if n == 0:
        return mx.zeros((0, 4), dtype=mx.uint32)
    return launch(powers_source(), [x, kernel_args((n,))], (grid_x(n), 1), THREADS,
                  [(n * 4,)])[0].reshape(n, 4)
