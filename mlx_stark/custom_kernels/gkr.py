"""LogUp GKR sumcheck kernels: the native path of the layer sumchecks in
:func:`mlx_stark.prover.logup_gkr.prove_fractional_sumcheck` (constraints.md §5.4).

Layer ``j``'s sumcheck runs over the stacked tables ``(2M, 5, 4)`` (rows ``P0, Q0, P1, Q1, E``,
extension elements, uint32 canonical), ``2M = 2^(j−1)`` halving with every sub-round. A
sub-round needs ``g(X) = Σ_y e·(p0·q1 + p1·q0 + λ·q0·q1)`` at ``X = 1, 2, 3`` (the rows
``t_X = t0 + X·(t1 − t0)`` of the pair ``y``: ``t0 = T[2y]``, ``t1 = T[2y + 1]``), sends them to
the host for the transcript, and folds the tables at the sampled ``r``. With MLX ops that is
several dispatches per sub-round, about ``G²/2`` sub-rounds for ``2^G`` leaves; here a
sub-round is one or two launches:

- :func:`fraction_layer`: the circuit's layer above a layer (the sums of the children's
  fractions), one thread per node;
- :func:`layer_tables`: the tables of a layer from its nodes and ``ξ``, one thread per row;
  ``E[y] = eq(ξ, y)`` is the product of one factor per bit of ``y`` (``j − 1`` products per
  row, one launch instead of MLX's doubling with a few dispatches per variable).
- :func:`round_sums`: every thread adds the terms of the pairs ``y ≡ gid`` (mod the launch's
  threads); the block adds its threads' sums in shared memory and writes one partial sum
  (``parts (B, 12)``). When ``B > 1`` a one-block launch
  (:func:`mlx_stark.custom_kernels.linear.parts_sum_source`) adds them.
- :func:`fold_round_sums`: thread ``y`` folds the old rows ``4y .. 4y + 3`` at ``r`` into the
  new rows ``2y, 2y + 1``, writes them and adds their terms, so a sub-round after the first
  reads the tables once.

Values are canonical in memory and ``ef_mul`` is the Montgomery product (``a·b·2^-32``): with
canonical rows and ``λ`` in Montgomery form every term is computed as ``term·2^-64``, summed
with field additions, and the block's sums are multiplied by ``2^96`` by one ``bb_mont``. The
fold multiplies the canonical difference by ``r`` in Montgomery form (canonical result).
Every result is bit-equal to the MLX-ops reference in :mod:`mlx_stark.prover.logup_gkr`.
"""
from __future__ import annotations

from functools import lru_cache

import mlx.core as mx

from ..errors import InvalidInputError
from ..field import ext
from ..field.bb import P
from . import KernelSource, launch, params
from .linear import launch_summed
from .poseidon2 import with_absorb
from .prelude import EXTENSION, block_sum, kernel_args, literal, mont
from .sizing import THREADS, grid_x, plan_blocks

SUMS = 12  # g(1), g(2), g(3): 3 x 4 coefficients
ROW = 20  # a table row: 5 extension elements

_HEADER = EXTENSION + """\
// a table row: P0, Q0, P1, Q1, E
struct grow {
  ef p0, q0, p1, q1, e;
};
#define ROW_LOAD(a, o) grow_make(EF_LOAD(a, o), EF_LOAD(a, (o) + 4u), EF_LOAD(a, (o) + 8u), \\
                                 EF_LOAD(a, (o) + 12u), EF_LOAD(a, (o) + 16u))
#define ROW_STORE(a, o, v) EF_STORE(a, o, (v).p0); EF_STORE(a, (o) + 4u, (v).q0); \\
  EF_STORE(a, (o) + 8u, (v).p1); EF_STORE(a, (o) + 12u, (v).q1); EF_STORE(a, (o) + 16u, (v).e)
KFN grow grow_make(ef p0, ef q0, ef p1, ef q1, ef e) {
  grow t;
  t.p0 = p0; t.q0 = q0; t.p1 = p1; t.q1 = q1; t.e = e;
  return t;
}
KFN grow grow_add(grow a, grow b) {
  return grow_make(ef_add(a.p0, b.p0), ef_add(a.q0, b.q0), ef_add(a.p1, b.p1), ef_add(a.q1, b.q1),
                   ef_add(a.e, b.e));
}
KFN grow grow_sub(grow a, grow b) {
  return grow_make(ef_sub(a.p0, b.p0), ef_sub(a.q0, b.q0), ef_sub(a.p1, b.p1), ef_sub(a.q1, b.q1),
                   ef_sub(a.e, b.e));
}
// a + r·(b − a) for canonical rows and r in Montgomery form: canonical
KFN grow grow_fold(grow a, grow b, ef r) {
  const grow d = grow_sub(b, a);
  return grow_make(ef_add(a.p0, ef_mul(d.p0, r)), ef_add(a.q0, ef_mul(d.q0, r)),
                   ef_add(a.p1, ef_mul(d.p1, r)), ef_add(a.q1, ef_mul(d.q1, r)),
                   ef_add(a.e, ef_mul(d.e, r)));
}
// e·(p0·q1 + p1·q0 + λ·q0·q1)·2^-64 for a canonical row and λ in Montgomery form
KFN ef gkr_term(grow t, ef lam) {
  const ef cross = ef_add(ef_mul(t.p0, t.q1), ef_mul(t.p1, t.q0));
  return ef_mul(t.e, ef_add(cross, ef_mul(ef_mul(t.q0, t.q1), lam)));
}
struct cubic {
  ef g1, g2, g3;
};
KFN cubic cubic_zero() {
  cubic s;
  s.g1 = ef_make(0u, 0u, 0u, 0u); s.g2 = s.g1; s.g3 = s.g1;
  return s;
}
// s += the terms of X = 1, 2, 3 for the pair (t0, t1): t_X = t0 + X·(t1 − t0)
KFN cubic cubic_add(cubic s, grow t0, grow t1, ef lam) {
  const grow d = grow_sub(t1, t0);
  s.g1 = ef_add(s.g1, gkr_term(t1, lam));
  const grow t2 = grow_add(t1, d);
  s.g2 = ef_add(s.g2, gkr_term(t2, lam));
  s.g3 = ef_add(s.g3, gkr_term(grow_add(t2, d), lam));
  return s;
}
"""

_R3 = literal((1 << 96) % P)  # bb_mont(x·2^-64, 2^96) = x


def _store_cubic() -> str:
    """Thread ``tid``'s sums ``s`` into its column of ``red``."""
    lines = []
    for x in range(3):
        for c in range(4):
            lines.append(f"red[{4 * x + c}u * {THREADS}u + tid] = s.g{x + 1}.c{c};")
    return "\n".join(lines) + "\n"


@lru_cache(maxsize=1)
def round_sums_source() -> KernelSource:
    """``tables`` ``(2M·20)`` and ``lam_in`` ``(4)`` (``λ``) canonical, ``args = [M, T]``
    (``T`` threads in the launch) -> ``parts`` ``(B, 12)``: block ``b``'s canonical sums of
    ``g(1), g(2), g(3)`` over the pairs ``y ≡ gid (mod T)`` of its threads."""
    body = f"""\
SHARED uint32_t red[{SUMS * THREADS}];
const uint32_t pairs = args[0];
const uint32_t stride = args[1];
const ef lam = ef_in(lam_in[0], lam_in[1], lam_in[2], lam_in[3]);
cubic s = cubic_zero();
for (uint32_t y = gid; y < pairs; y += stride) {{
  const uint32_t o = y * {2 * ROW}u;
  s = cubic_add(s, ROW_LOAD(tables, o), ROW_LOAD(tables, o + {ROW}u), lam);
}}
{_store_cubic()}{block_sum(SUMS, THREADS, "parts", "bb_mont({}, " + _R3 + ")")}"""
    return KernelSource("gkr_round_sums", ("tables", "lam_in", "args"), ("parts",), _HEADER, body)


@lru_cache(maxsize=1)
def fold_round_sums_source() -> KernelSource:
    """``tables`` ``(4N·20)``, ``r_in`` and ``lam_in`` ``(4)`` canonical, ``args = [N, T]``
    -> ``folded`` ``(2N·20)`` (the tables folded at ``r``) and ``parts`` ``(B, 12)`` (as
    :func:`round_sums_source`, over the pairs of ``folded``)."""
    body = f"""\
SHARED uint32_t red[{SUMS * THREADS}];
const uint32_t pairs = args[0];
const uint32_t stride = args[1];
const ef r = ef_in(r_in[0], r_in[1], r_in[2], r_in[3]);
const ef lam = ef_in(lam_in[0], lam_in[1], lam_in[2], lam_in[3]);
cubic s = cubic_zero();
for (uint32_t y = gid; y < pairs; y += stride) {{
  const uint32_t o = y * {4 * ROW}u;
  const grow t0 = grow_fold(ROW_LOAD(tables, o), ROW_LOAD(tables, o + {ROW}u), r);
  const grow t1 = grow_fold(ROW_LOAD(tables, o + {2 * ROW}u), ROW_LOAD(tables, o + {3 * ROW}u), r);
  const uint32_t f = y * {2 * ROW}u;
  ROW_STORE(folded, f, t0);
  ROW_STORE(folded, f + {ROW}u, t1);
  s = cubic_add(s, t0, t1, lam);
}}
{_store_cubic()}{block_sum(SUMS, THREADS, "parts", "bb_mont({}, " + _R3 + ")")}"""
    return KernelSource("gkr_fold_round_sums", ("tables", "r_in", "lam_in", "args"), ("folded", "parts"),
                        _HEADER, body)


@lru_cache(maxsize=1)
def layer_tables_source() -> KernelSource:
    """``p, q`` ``(2N·4)`` canonical (a layer's nodes), ``args = [N, d, ξ_0, …, ξ_{d−1}]``
    (4 words each, Montgomery form) -> ``tables`` ``(N·20)``: row ``y`` is ``p[2y], q[2y],
    p[2y + 1], q[2y + 1], eq(ξ, y)``, the factors ``1 − ξ_k`` made in the kernel."""
    one = literal(mont(1))
    body = f"""\
const uint32_t rows = args[0];
if (gid >= rows) return;
const uint32_t vars = args[1];
const ef one = ef_make({one}, 0u, 0u, 0u);
ef e = one;
for (uint32_t k = 0; k < vars; ++k) {{
  const ef x = EF_LOAD(args, 2u + k * 4u);
  e = ef_mul(e, ((gid >> k) & 1u) ? x : ef_sub(one, x));
}}
const uint32_t i = gid * 8u;
const uint32_t o = gid * {ROW}u;
for (uint32_t c = 0; c < 4u; ++c) {{
  tables[o + c] = p[i + c];
  tables[o + 4u + c] = q[i + c];
  tables[o + 8u + c] = p[i + 4u + c];
  tables[o + 12u + c] = q[i + 4u + c];
}}
tables[o + 16u] = bb_from_mont(e.c0);
tables[o + 17u] = bb_from_mont(e.c1);
tables[o + 18u] = bb_from_mont(e.c2);
tables[o + 19u] = bb_from_mont(e.c3);
"""
    return KernelSource("gkr_layer_tables", ("p", "q", "args"), ("tables",), _HEADER, body)


@lru_cache(maxsize=1)
def fraction_layer_source() -> KernelSource:
    """``p, q`` ``(2N·4)`` canonical (a layer's nodes), ``args = [N]`` -> ``p_out, q_out``
    ``(N·4)``: node ``i`` of the layer above, ``p[2i]·q[2i+1] + p[2i+1]·q[2i]`` and
    ``q[2i]·q[2i+1]`` (the sum of the fractions ``p/q`` of its two children)."""
    body = """\
if (gid >= args[0]) return;
const uint32_t i = gid * 8u;
const ef p0 = EF_LOAD(p, i);
const ef p1 = EF_LOAD(p, i + 4u);
const ef q0 = EF_LOAD(q, i);
const ef q1 = EF_LOAD(q, i + 4u);
const ef q0m = ef_in(q0.c0, q0.c1, q0.c2, q0.c3);
const ef q1m = ef_in(q1.c0, q1.c1, q1.c2, q1.c3);
EF_STORE(p_out, gid * 4u, ef_add(ef_mul(p0, q1m), ef_mul(p1, q0m)));
EF_STORE(q_out, gid * 4u, ef_mul(q0, q1m));
"""
    return KernelSource("gkr_fraction_layer", ("p", "q", "args"), ("p_out", "q_out"), _HEADER, body)


# ---------------------------------------------------------------- host side
def _check_rows(tables: mx.array, least: int) -> int:
    n = tables.shape[0]
    if tables.shape[1:] != (5, 4) or n < least or n & (n - 1):
        raise InvalidInputError(f"GKR tables must be (2^k >= {least}, 5, 4), got {tuple(tables.shape)}")
    if n * ROW >= 1 << 32:
        raise InvalidInputError(f"GKR tables of {n} rows exceed 32-bit indices")
    return n


# the sums a one-block launch leaves in ``red`` (before the ``2^96`` finish), as absorbed values
_ABSORBED = f"bb_mont(red[i * {THREADS}u], {_R3})"


def _sub_round(src: KernelSource, inputs: list, pairs: int, shapes: list, absorb=None) -> tuple:
    """Launch the sub-round kernel ``src`` over ``pairs`` pairs (its ``inputs`` before
    ``args``): its outputs of ``shapes``, then the sums ``(3, 4)``, then with ``absorb`` the
    sponge (:func:`mlx_stark.custom_kernels.linear.launch_summed`)."""
    blocks = plan_blocks(pairs)
    out = list(launch_summed(src, inputs + [params(pairs, blocks * THREADS)], blocks, shapes,
                             SUMS, _ABSORBED, absorb))
    out[len(shapes)] = out[len(shapes)].reshape(3, 4)
    return tuple(out)


def round_sums(tables: mx.array, lam) -> mx.array:
    """:func:`mlx_stark.prover.logup_gkr.round_sums` (bit-equal): ``tables`` ``(2M, 5, 4)``
    uint32 canonical (``M ≥ 1``), ``lam`` host EF or ``(4,)`` device array -> ``g(1), g(2), g(3)``
    ``(3, 4)`` uint32.
    One launch (two when the pairs need several blocks). Lazy."""
    pairs = _check_rows(tables, 2) // 2
    return _sub_round(round_sums_source(), [tables, ext.constant(lam)], pairs, [])[0]


def fold_round_sums(tables: mx.array, r, lam):
    """:func:`mlx_stark.prover.logup_gkr.fold_round_sums` (bit-equal): ``tables`` ``(4N, 5, 4)``
    uint32 canonical (``N ≥ 1``), ``r, lam`` host EF or device arrays -> ``(folded (2N, 5, 4),
    sums (3, 4))``:
    the tables folded at ``r`` and the next sub-round's ``g(1), g(2), g(3)``. One pass over the
    tables (plus a one-block launch when several blocks). Lazy."""
    n = _check_rows(tables, 4)
    return _sub_round(fold_round_sums_source(), [tables, ext.constant(r), ext.constant(lam)],
                      n // 4, [(n // 2, 5, 4)])


def absorbing_sources() -> list:
    """The one-block sub-round kernels with their absorb (what :func:`round_sums_step` and
    :func:`fold_round_sums_step` launch), for compiling ahead."""
    return [with_absorb(round_sums_source(), _ABSORBED, SUMS),
            with_absorb(fold_round_sums_source(), _ABSORBED, SUMS)]


def round_sums_step(tables: mx.array, lam, sponge: mx.array, absorb_idx: int,
                    permute_last: bool) -> tuple:
    """:func:`round_sums` absorbed into a device transcript's sponge (``(16,)`` or more words,
    from rate position ``absorb_idx``, a final permutation if ``permute_last``): ``(sponge
    (24,), sums (3, 4))``. One launch when the pairs fit one block (the absorb in it), else two
    (the blocks' sums, then one block adding and absorbing them). Lazy."""
    pairs = _check_rows(tables, 2) // 2
    sums, out = _sub_round(round_sums_source(), [tables, ext.constant(lam)], pairs, [],
                           (sponge, absorb_idx, permute_last))
    return out, sums


def fold_round_sums_step(tables: mx.array, r, lam, sponge: mx.array, absorb_idx: int,
                         permute_last: bool) -> tuple:
    """:func:`fold_round_sums` with the sums absorbed as in :func:`round_sums_step`:
    ``(sponge (24,), folded (2N, 5, 4), sums (3, 4))``. Lazy."""
    n = _check_rows(tables, 4)
    folded, sums, out = _sub_round(fold_round_sums_source(),
                                   [tables, ext.constant(r), ext.constant(lam)], n // 4,
                                   [(n // 2, 5, 4)], (sponge, absorb_idx, permute_last))
    return out, folded, sums


def layer_tables(lp: mx.array, lq: mx.array, xi) -> mx.array:
    """:func:`mlx_stark.prover.logup_gkr.layer_tables` (bit-equal): ``lp, lq`` ``(2N, 4)``
    uint32 canonical, ``xi`` ``log2 N`` host EF -> ``(N, 5, 4)``. One launch. Lazy."""
    rows = lp.shape[0] // 2
    if lp.shape != (2 * rows, 4) or lq.shape != lp.shape or rows != 1 << len(xi):
        raise InvalidInputError(f"layer {tuple(lp.shape)}, {tuple(lq.shape)} does not match "
                                f"{len(xi)} eq variables")
    if rows * ROW >= 1 << 32:
        raise InvalidInputError(f"GKR tables of {rows} rows exceed 32-bit indices")
    args = kernel_args((rows, len(xi)), list(xi))
    return launch(layer_tables_source(), [lp, lq, args], (grid_x(rows), 1), THREADS,
                  [(rows, 5, 4)])[0]


def fraction_layer(lp: mx.array, lq: mx.array) -> tuple:
    """The layer above ``lp, lq`` ``(2N, 4)`` uint32 canonical (``N ≥ 1``) in the fraction
    circuit of :func:`mlx_stark.prover.logup_gkr.fraction_layers` (bit-equal): ``(p, q)``
    ``(N, 4)`` each. One launch (four field-kernel launches otherwise). Lazy."""
    rows = lp.shape[0] // 2
    if rows == 0 or lp.shape != (2 * rows, 4) or lq.shape != lp.shape:
        raise InvalidInputError(f"a fraction layer of {tuple(lp.shape)}, {tuple(lq.shape)}")
    out = launch(fraction_layer_source(), [lp, lq, params(rows)], (grid_x(rows), 1), THREADS,
                 [(rows, 4), (rows, 4)])
    return out[0], out[1]
