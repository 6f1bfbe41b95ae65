"""Poseidon2 kernels (pcs.md §2-§4): batched permutation, leaf hashing of matrix rows, 2-to-1
compression (pairs, strided Merkle layers, several tree levels per launch), the
proof-of-work search and the transcript's bulk absorption.

One thread owns one sponge state (16 registers, Montgomery form inside the kernel): the
permutation is compute-bound, and a batch of rows or nodes gives every thread its own state.
The permutation is generated as straight-line code with the round constants as literals, so a
constant set gets its own kernels (names carry a digest of the source). Contracts, shapes and
results are those of the MLX-ops functions in :mod:`mlx_stark.hash` (bit-equal). The
transcript's absorption is the exception: one sequential chain, so 16 threads share each
permutation, one lane each (see the lane-parallel permutation below).

Leaf hashing runs at the permutation's rate, so one thread per row is compute-bound and wide
rows need no other layout (measurements: docs/tracking/kernel-notes.md).
"""
from __future__ import annotations

from functools import lru_cache

import mlx.core as mx

from ..field.bb import P, U32
from ..hash.poseidon2 import DEFAULT_CONSTANTS, INTERNAL_DIAG, INTERNAL_DIAG_FORM, NO_HIT, WIDTH
from . import KernelSource, launch
from . import params as _params
from ..tracing import read
from .prelude import literal, mont
from .sizing import THREADS, grid_x

RATE = 8
DIGEST = 8
TREE_LEVELS = 9  # tree levels per launch: a block of 2^8 threads reduces 2^9 nodes to one
POW_MIN_BATCH = 1 << 8
POW_MAX_BATCH = 1 << 22
# first batch 2^(bits + POW_MARGIN_BITS): it holds no witness with probability e^-16, so a
# search almost always costs one launch and one read-back
POW_MARGIN_BITS = 4
# blocks of one search launch: a larger batch loops over its candidates, so that the minimum
# over the blocks is one short pass (in the absorbing block, :func:`grind_source`)
POW_BLOCKS = 1024
# a device grind's batch up to this many nonces runs in the absorbing block itself (four per
# thread at most): one launch
POW_ONE_BLOCK = 4 * THREADS


# ---------------------------------------------------------------- generated permutation
def _internal_lane(i: int) -> str:
    """``sum + V[i]·s[i]``, with the small diagonal entries as additions (pcs.md §2)."""
    sign, num, log_den = INTERNAL_DIAG_FORM[i]
    x = f"s[{i}]"
    if log_den == 0 and num <= 4:
        term = {1: x, 2: f"bb_dbl({x})", 3: f"bb_add(bb_dbl({x}), {x})",
                4: f"bb_dbl(bb_dbl({x}))"}[num]
    elif num == 1 and log_den == 1:
        term = f"bb_half({x})"
    else:
        magnitude = INTERNAL_DIAG[i] if sign > 0 else P - INTERNAL_DIAG[i]
        term = f"bb_mont({x}, {literal(mont(magnitude))})"
    return f"  s[{i}] = {'bb_add' if sign > 0 else 'bb_sub'}(sum, {term});"


def _external_layer() -> str:
    lines = ["KFN void p2_external(LOCAL uint32_t* s) {"]
    for r in range(4):
        lines.append(f"  uint32_t u{r} = bb_add(bb_add(s[{r}], s[{r + 4}]), bb_add(s[{r + 8}], s[{r + 12}]));")
    for c in range(0, WIDTH, 4):
        lines.append("  {")
        for r in range(4):
            lines.append(f"    uint32_t a{r} = bb_add(s[{c + r}], u{r});")
        # M4 rows [2,3,1,1], [1,2,3,1], [1,1,2,3], [3,1,1,2] (Plonky3's addition chain)
        lines += [
            "    uint32_t t01 = bb_add(a0, a1), t23 = bb_add(a2, a3);",
            "    uint32_t t0123 = bb_add(t01, t23);",
            "    uint32_t t01123 = bb_add(t0123, a1), t01233 = bb_add(t0123, a3);",
            f"    s[{c}] = bb_add(t01123, t01);",
            f"    s[{c + 1}] = bb_add(t01123, bb_dbl(a2));",
            f"    s[{c + 2}] = bb_add(t01233, t23);",
            f"    s[{c + 3}] = bb_add(t01233, bb_dbl(a0));",
            "  }",
        ]
    lines.append("}")
    return "\n".join(lines)


def _internal_layer() -> str:
    lines = ["KFN void p2_internal(LOCAL uint32_t* s) {"]
    terms = [f"s[{i}]" for i in range(WIDTH)]
    while len(terms) > 1:
        terms = [f"bb_add({terms[i]}, {terms[i + 1]})" for i in range(0, len(terms), 2)]
    lines.append(f"  uint32_t sum = {terms[0]};")
    lines += [_internal_lane(i) for i in range(WIDTH)]
    lines.append("}")
    return "\n".join(lines)


# x^7 in three dependent multiplications (x^4 and x^3 in parallel)
_SBOX = """\
KFN uint32_t p2_sbox(uint32_t x) {
  uint32_t x2 = bb_mont(x, x);
  uint32_t x3 = bb_mont(x2, x);
  return bb_mont(bb_mont(x2, x2), x3);
}"""


@lru_cache(maxsize=4)
def permutation_header(constants=DEFAULT_CONSTANTS) -> str:
    """``p2_permute(LOCAL uint32_t* s)``: Poseidon2 on 16 Montgomery-form lanes, in place."""
    lines = [
        _SBOX,
        _external_layer(),
        _internal_layer(),
        "KFN void p2_permute(LOCAL uint32_t* s) {",
        "  p2_external(s);",
    ]

    def full_round(rcs):
        out = [f"  s[{i}] = p2_sbox(bb_add(s[{i}], {literal(mont(c))}));" for i, c in enumerate(rcs)]
        return out + ["  p2_external(s);"]

    for rcs in constants.ext_init:
        lines += full_round(rcs)
    for c in constants.internal:
        lines += [f"  s[0] = p2_sbox(bb_add(s[0], {literal(mont(c))}));", "  p2_internal(s);"]
    for rcs in constants.ext_term:
        lines += full_round(rcs)
    lines.append("}")
    return "\n".join(lines) + "\n"


def _load(src: str, offset: str, count: int, lane: int = 0) -> str:
    """Statements ``s[lane + i] = to_mont(src[offset + i])`` for ``i < count``."""
    return "\n".join(f"s[{lane + i}] = bb_to_mont({src}[{offset} + {i}u]);" for i in range(count))


def _store(dst: str, offset: str, count: int) -> str:
    """Statements ``dst[offset + i] = from_mont(s[i])`` for ``i < count``."""
    return "\n".join(f"{dst}[{offset} + {i}u] = bb_from_mont(s[{i}]);" for i in range(count))


def _from_shared(lane: int, slots: int, node: str) -> str:
    """Statements ``s[lane + c] = digests[c·slots + node]`` (a digest kept in shared memory,
    word-major, Montgomery form), one per line."""
    return "".join(f"    s[{lane + c}] = digests[{c}u * {slots}u + {node}];\n" for c in range(DIGEST))


def _to_shared(slots: int, node: str) -> str:
    """Statements ``digests[c·slots + node] = s[c]``, one per line."""
    return "".join(f"    digests[{c}u * {slots}u + {node}] = s[{c}];\n" for c in range(DIGEST))


# ---------------------------------------------------------------- kernel sources
@lru_cache(maxsize=4)
def permute_source(constants=DEFAULT_CONSTANTS) -> KernelSource:
    """``states`` (n·16) -> ``out`` (n·16); ``params = [n]``. One thread per state."""
    body = f"""\
if (gid >= params[0]) return;
uint32_t s[16];
const uint64_t base = (uint64_t)gid * 16u;
{_load("states", "base", WIDTH)}
p2_permute(s);
{_store("out", "base", WIDTH)}
"""
    return KernelSource("p2_permute", ("states", "params"), ("out",), permutation_header(constants), body)


@lru_cache(maxsize=16)
def hash_rows_source(width: int) -> KernelSource:
    """``matrix`` (n·width) -> ``out`` (n·8): the padding-free sponge of pcs.md §3.1 over each
    row, one thread per row; ``params = [n]``."""
    body = f"""\
if (gid >= params[0]) return;
const uint64_t row = (uint64_t)gid * {width}u;
{_row_sponge(width)}{_store("out", "(uint64_t)gid * 8u", DIGEST)}
"""
    return KernelSource(f"p2_hash_rows_w{width}", ("matrix", "params"), ("out",),
                        permutation_header(), body)


def _row_sponge(width: int) -> str:
    """Statements hashing ``matrix``'s row at word ``row`` into ``s`` (declared here; the digest
    in ``s[0..8)``, Montgomery form). Rate blocks overwrite lanes 0..7 (a short last block only
    its first ``width mod 8``); the block count and tail are compile-time, so every state
    index is static and the state stays in registers."""
    full, tail = divmod(width, RATE)
    code = "uint32_t s[16];\n" + "".join(f"s[{i}] = 0u;\n" for i in range(WIDTH))
    if full:
        code += f"""\
for (uint32_t blk = 0; blk < {full}u; ++blk) {{
const uint64_t at = row + blk * 8u;
{_load("matrix", "at", RATE)}
p2_permute(s);
}}
"""
    if tail:
        code += f"""\
{{
const uint64_t at = row + {full * RATE}u;
{_load("matrix", "at", tail)}
p2_permute(s);
}}
"""
    return code


# strided levels of the leaf groups taken in the launch that hashes the rows (a block of
# 2^levels · G threads: levels ≤ 8)
GROUP_LEVELS = 8
# rows up to which a commitment hashes its rows and their leaf groups in one launch: there the
# launches bound the time; above, hash_rows with every thread busy and a strided layer per
# launch is faster (H100, k = 4: 2^16 x 4 0.35 against 0.59 ms; 2^18 x 4 0.68 against 0.81 ms;
# 2^20 x 4 2.10 against 1.48 ms; 2^22 x 42 20.0 against 15.3 ms)
FUSED_GROUP_ROWS = 1 << 18


@lru_cache(maxsize=64)
def leaf_groups_source(width: int, levels: int) -> KernelSource:
    """The leaf hashes of ``matrix`` (N·width, rows as :func:`hash_rows_source`) and the
    first ``levels`` strided levels of the leaf groups above them in one launch: ``out``
    ((N/2^levels)·8), ``out[t'·qs + y]`` the digest of rows ``(t'·2^levels + t)·qs + y`` for
    ``t < 2^levels`` (a binary tree over ``t``: what ``levels`` launches of
    :func:`compress_layer_source` with stride ``qs`` leave); ``params = [qs, G]``.

    A block of ``2^levels·G`` threads (``G`` divides ``qs``) owns ``G`` consecutive ``y`` of
    one ``t'``; thread ``t·G + g`` hashes row ``(t'·2^levels + t)·qs + y`` (a warp reads runs
    of consecutive rows), then the tree over ``t`` runs in shared memory, every thread at
    every barrier."""
    if not 0 <= levels <= GROUP_LEVELS:
        raise ValueError(f"a launch takes at most {GROUP_LEVELS} group levels, not {levels}")
    tmax = 1 << GROUP_LEVELS
    body = f"""\
SHARED uint32_t digests[8 * {tmax}];
const uint32_t qs = params[0];
const uint32_t groups = params[1];
const uint32_t g = tid % groups;
const uint32_t y_blocks = qs / groups;
const uint64_t y = (uint64_t)(bid % y_blocks) * groups + g;
const uint64_t t0 = (uint64_t)(bid / y_blocks) << {levels}u;
const uint64_t row = ((t0 + tid / groups) * qs + y) * {width}u;
{_row_sponge(width)}{_to_shared(tmax, "tid")}\
for (uint32_t lev = 1; lev <= {levels}u; ++lev) {{
  const uint32_t active = groups << ({levels}u - lev);
  BARRIER();
  if (tid < active) {{
    const uint32_t left = 2u * tid - g;
{_from_shared(0, tmax, "left")}{_from_shared(8, tmax, "left + groups")}\
  }}
  BARRIER();
  if (tid < active) {{
    p2_permute(s);
{_to_shared(tmax, "tid")}\
  }}
}}
if (tid < groups) {{
{_store("out", "((t0 >> " + str(levels) + "u) * qs + y) * 8u", DIGEST)}
}}
"""
    return KernelSource(f"p2_leaf_groups_w{width}_l{levels}", ("matrix", "params"), ("out",),
                        permutation_header(), body)


@lru_cache(maxsize=1)
def compress_source() -> KernelSource:
    """``left``, ``right`` (n·8) -> ``out`` (n·8), ``out[i] = C(left[i], right[i])``; ``params = [n]``."""
    body = f"""\
if (gid >= params[0]) return;
uint32_t s[16];
const uint64_t at = (uint64_t)gid * 8u;
{_load("left", "at", DIGEST)}
{_load("right", "at", DIGEST, 8)}
p2_permute(s);
{_store("out", "at", DIGEST)}
"""
    return KernelSource("p2_compress", ("left", "right", "params"), ("out",), permutation_header(), body)


@lru_cache(maxsize=1)
def compress_layer_source() -> KernelSource:
    """One Merkle level with stride ``S``: ``level`` (2·n·8) -> ``out`` (n·8) with
    ``out[t·S + y] = C(level[2t·S + y], level[(2t+1)·S + y])``; ``params = [n, S]``.
    ``S = 1`` is a binary-tree level; ``S = qs`` compresses the rows of a leaf group."""
    body = f"""\
if (gid >= params[0]) return;
const uint32_t stride = params[1];
const uint32_t y = gid % stride;
const uint64_t left = ((uint64_t)(gid - y) * 2u + y) * 8u;
const uint64_t right = left + (uint64_t)stride * 8u;
uint32_t s[16];
{_load("level", "left", DIGEST)}
{_load("level", "right", DIGEST, 8)}
p2_permute(s);
{_store("out", "(uint64_t)gid * 8u", DIGEST)}
"""
    return KernelSource("p2_compress_layer", ("level", "params"), ("out",), permutation_header(), body)


@lru_cache(maxsize=1)
def tree_levels_source() -> KernelSource:
    """``L`` binary-tree levels in one launch: ``level`` (m·8) -> ``out`` ((m − m/2^L)·8), the
    levels ``m/2, m/4, ..., m/2^L`` one after the other; ``params = [m, L]``, ``L <= 9``.

    A block of ``T = 2^(L−1)`` threads owns ``2^L`` consecutive nodes: each thread compresses
    one pair into shared memory, then half the threads compress the previous level's pairs, and
    so on; every thread reaches every barrier."""
    tmax = 1 << (TREE_LEVELS - 1)
    body = f"""\
SHARED uint32_t digests[8 * {tmax}];
const uint32_t m = params[0];
const uint32_t levels = params[1];
const uint32_t threads = 1u << (levels - 1u);
uint32_t s[16];
{_load("level", "(uint64_t)gid * 16u", DIGEST)}
{_load("level", "(uint64_t)gid * 16u + 8u", DIGEST, 8)}
p2_permute(s);
{_store("out", "(uint64_t)gid * 8u", DIGEST)}
{_to_shared(tmax, "tid")}\
uint32_t offset = m >> 1;
for (uint32_t lev = 1; lev < levels; ++lev) {{
  const uint32_t count = threads >> lev;
  BARRIER();
  if (tid < count) {{
{_from_shared(0, tmax, "2u * tid")}{_from_shared(8, tmax, "2u * tid + 1u")}\
  }}
  BARRIER();
  if (tid < count) {{
    p2_permute(s);
{_to_shared(tmax, "tid")}\
    const uint32_t node = offset + bid * count + tid;
{"".join(f"    out[(uint64_t)node * 8u + {c}u] = bb_from_mont(s[{c}]);" + chr(10) for c in range(DIGEST))}\
  }}
  offset += m >> (lev + 1u);
}}
"""
    return KernelSource("p2_tree_levels", ("level", "params"), ("out",), permutation_header(), body)


@lru_cache(maxsize=1)
def pow_source() -> KernelSource:
    """Proof-of-work candidates ``start + k`` for ``k < count``, thread ``gid`` taking ``k =
    gid, gid + stride, ...``: ``out[block]`` is the smallest nonce of the block's candidates
    whose ``P(state with lane a = nonce)[7]`` has its ``mask`` bits zero, or ``0xFFFFFFFF``.
    ``state``: 16 canonical values (a device array, so the search can follow device-side
    absorbs with no read-back); ``params = [start, count, mask, a, stride]`` (``stride``: the
    grid's threads, so that a batch of any size has at most :data:`POW_BLOCKS` minima); blocks
    of 256 threads (a shared-memory minimum, every thread at every barrier)."""
    lanes = "\n".join(f"  s[{i}] = absorb == {i}u ? nonce_mont : base[{i}];" for i in range(WIDTH))
    body = f"""\
SHARED uint32_t best[{THREADS}];
const uint32_t absorb = params[3];
uint32_t base[16];
for (uint32_t i = 0u; i < 16u; ++i) base[i] = bb_to_mont(state[i]);
uint32_t found = {NO_HIT}u;
for (uint32_t k = gid; k < params[1] && found == {NO_HIT}u; k += params[4]) {{
  const uint32_t nonce = params[0] + k;
  const uint32_t nonce_mont = bb_to_mont(nonce);
  uint32_t s[16];
{lanes}
  p2_permute(s);
  if ((bb_from_mont(s[7]) & params[2]) == 0u) found = nonce;  // a thread's candidates rise
}}
best[tid] = found;
for (uint32_t gap = {THREADS // 2}u; gap > 0u; gap >>= 1) {{
  BARRIER();
  if (tid < gap) best[tid] = min(best[tid], best[tid + gap]);
}}
if (tid == 0u) out[bid] = best[0];
"""
    return KernelSource("p2_pow", ("state", "params"), ("out",), permutation_header(), body)


# ---------------------------------------------------------------- lane-parallel permutation
# The transcript's absorption is one sequential chain of permutations, so its kernel spreads
# each permutation over WIDTH threads: thread ``tid`` keeps lane ``tid`` of the state in a
# register (``x``, Montgomery form), and each layer (the initial linear layer, then a round and
# its linear layer) exchanges lanes with warp shuffles (``SHFL`` / ``SHFL_XOR`` within the
# 16 lanes): no threadgroup memory and no barrier on the chain. Sums over lanes are butterflies
# (XOR shuffles), so every lane ends with the sum it needs; field additions are exact, so the
# order of the terms does not change the result.
#
# One warp walks the chain alone, with no other warps to hide its instruction fetches, so the
# layers run as a loop (about 300 instructions on sm_90, against 2,700 for 22 straight-line
# layers) over a per-lane constant table. Layer ``L`` adds ``rc = table[L][tid]`` to its
# output: the constant of layer ``L + 1`` (a full round's lane constant; a partial round's
# constant in lane 0, zero in the others; zero after the last layer). It is loaded when the
# layer starts and joins a term known before the barrier, so neither the load nor the
# addition lengthens the chain.
def _lane_layers(constants) -> tuple:
    """``(table, first partial layer, partial count)``: ``table`` one row of 16 lanes per layer,
    Montgomery-form constants as above; the layers are the initial linear layer, the
    ``ext_init`` rounds, the partial rounds, the ``ext_term`` rounds."""
    full = [tuple(mont(c) for c in rcs) for rcs in constants.ext_init]
    partial = [(mont(c),) + (0,) * (WIDTH - 1) for c in constants.internal]
    term = [tuple(mont(c) for c in rcs) for rcs in constants.ext_term]
    table = full + partial + term + [(0,) * WIDTH]
    return table, 1 + len(full), len(partial)


def _lane_constants(table: list) -> str:
    """Fills lane ``tid``'s column of ``rcs`` (``rcs[L·16 + tid] = table[L][tid]``, read only
    by lane ``tid``, so no barrier) and sets ``diag`` (declared before) to ``V[tid]`` in
    Montgomery form, except in lane 0 (zero: see :func:`_lane_internal`)."""
    lines = [f"for (uint32_t i = tid; i < {len(table) * WIDTH}u; i += {WIDTH}u) rcs[i] = 0u;",
             "switch (tid) {"]
    for i in range(WIDTH):
        stores = " ".join(f"rcs[{row * WIDTH + i}u] = {literal(values[i])};"
                          for row, values in enumerate(table) if values[i])
        label = "default" if i == WIDTH - 1 else f"case {i}u"
        diag = mont(INTERNAL_DIAG[i]) if i else 0
        lines.append(f"  {label}: diag = {literal(diag)}; {stores} break;")
    lines.append("}")
    return "\n".join(lines)


def _tree_sum(terms: list) -> str:
    while len(terms) > 1:
        pairs = [f"bb_add({terms[i]}, {terms[i + 1]})" for i in range(0, len(terms) - 1, 2)]
        terms = pairs + terms[len(pairs) * 2:]
    return terms[0]


def _lane_external() -> list:
    """The S-box (except in layer 0), then lane ``tid`` of ``M_E``. For tid's block ``B`` and
    row ``r = tid mod 4``: ``a_j = B[j] + u_j`` with the column sums ``u_j``; M4's rows
    [2,3,1,1], [1,2,3,1], [1,1,2,3], [3,1,1,2] are ``1 + e_r + 2·e_(r+1)``, so the output is
    ``Σa + a_r + 2·a_(r+1)`` with ``Σa = Σu + ΣB``; ``rc`` joins ``a_r``. ``col{j}`` is column
    ``(r + j) mod 4``, ``right`` the block's lane ``(r + 1) mod 4``. The column sums and the
    block sum are butterflies over lane bits 2-3 and 0-1; lane ``c < 4`` holds column ``c``'s."""
    return ["    if (layer != 0u) x = p2_sbox(x);",
            "    const uint32_t xn = bb_add(x, rc);",
            "    uint32_t cs = bb_add(x, SHFL_XOR(x, 4u));",
            "    cs = bb_add(cs, SHFL_XOR(cs, 8u));",
            "    uint32_t bsum = bb_add(x, SHFL_XOR(x, 1u));",
            "    bsum = bb_add(bsum, SHFL_XOR(bsum, 2u));",
            "    const uint32_t xr = SHFL(x, right);",
            "    const uint32_t u1 = SHFL(cs, col1), u2 = SHFL(cs, col2), u3 = SHFL(cs, col3);",
            "    const uint32_t a0 = bb_add(xn, cs), a1 = bb_add(xr, u1);",
            "    x = bb_add(bb_add(bb_add(bb_add(cs, u1), bb_add(u2, u3)), bsum), bb_add(a0, bb_dbl(a1)));"]


# V[0] = -2 (pcs.md §2): lane 0's output of a partial round, total + V[0]·y, is rest − y.
assert INTERNAL_DIAG[0] == P - 2


def _lane_internal() -> list:
    """A partial round and ``M_I`` (lane 0 holding ``s0 + c``): every lane takes lane 0's
    value and its S-box ``y`` while the butterfly sums all lanes (``rest`` = lanes 1..15).
    Lane ``tid > 0`` outputs ``rest + y + V[tid]·x``, lane 0 ``rest − y``: ``(rest ± y) + dx``
    with ``dx = V[tid]·x + rc`` (``V[0]·x`` is zero: lane 0's ``diag`` is zero)."""
    return ["    const uint32_t x0 = SHFL(x, 0u);",
            "    const uint32_t dx = bb_add(bb_mont(x, diag), rc);",
            "    uint32_t total = bb_add(x, SHFL_XOR(x, 1u));",
            "    total = bb_add(total, SHFL_XOR(total, 2u));",
            "    total = bb_add(total, SHFL_XOR(total, 4u));",
            "    total = bb_add(total, SHFL_XOR(total, 8u));",
            "    const uint32_t y = p2_sbox(x0);",
            "    const uint32_t rest = bb_sub(total, x0);",
            "    x = bb_add(tid == 0u ? bb_sub(rest, y) : bb_add(rest, y), dx);"]


# Before the chain (after lane tid's constants, read by lane tid only, and a barrier that
# marks the shared table as written): its columns and its block's lane (r + 1) mod 4.
_LANE_COLUMNS = """\
const uint32_t col1 = (tid + 1u) & 3u, col2 = (tid + 2u) & 3u, col3 = (tid + 3u) & 3u;
const uint32_t right = (tid & 12u) | col1;"""


def _lane_permutation(layers: int, first_partial: int, partials: int) -> str:
    """The loop applying P to the state whose lane ``tid`` is ``x`` (Montgomery form)."""
    return "\n".join([
        "#pragma unroll 1",
        f"for (uint32_t layer = 0u; layer < {layers}u; ++layer) {{",
        f"  const uint32_t rc = rcs[layer * {WIDTH}u + tid];",
        f"  if (layer - {first_partial}u < {partials}u) {{",
        *_lane_internal(),
        "  } else {",
        *_lane_external(),
        "  }",
        "}",
    ])


def duplex_code(value: str, n: str, a: str, last: str, state: str, out: str, then: str = "",
                constants=DEFAULT_CONSTANTS) -> tuple:
    """The duplex sponge of a device-resident transcript as code run by threads ``0..15`` of a
    block of 16 or more (every thread of the block reaches its barrier; only the first 16 run
    the chain and its shuffles): ``(header, shared, code)``, the helper functions, the shared
    declarations (at the top of a body) and the statements.
    ``state`` (16 canonical words, or the first 16 of a longer state) absorbs ``n`` values
    (``value``: a C expression of ``i``, value ``i`` canonical) from rate position ``a`` on,
    permuting after every filled rate block and once more at the end when ``last`` is
    nonzero; ``out`` (24 words) gets the state, then its rate part reversed (``out[16 + k] =
    state[7 − k]``: the transcript's samples, which read the rate downwards, are then slices).
    Value ``i`` goes to lane ``(a + i) mod 8`` of chunk ``(a + i) / 8``; ``n``, ``a`` and
    ``last`` must be the same for every thread. ``then``: statements of the 16 lanes after the
    absorb, lane ``tid`` holding its word of the new state in ``x`` (Montgomery form)."""
    table, first_partial, partials = _lane_layers(constants)
    perm = _lane_permutation(len(table), first_partial, partials)
    shared = f"SHARED uint32_t rcs[{len(table) * WIDTH}];\n"
    code = f"""\
uint32_t diag = 0u;
if (tid < {WIDTH}u) {{
{_lane_constants(table)}
}}
BARRIER();
if (tid < {WIDTH}u) {{
{_LANE_COLUMNS}
const uint32_t dx_n = {n}, dx_a = {a}, dx_total = dx_n + dx_a;
uint32_t x = bb_to_mont({state}[tid]);
for (uint32_t c = 0u; c * 8u < dx_total; ++c) {{
const uint32_t pos = c * 8u + tid;
if (tid < 8u && pos >= dx_a && pos < dx_total) {{ const uint32_t i = pos - dx_a; x = bb_to_mont({value}); }}
if ((c + 1u) * 8u <= dx_total) {{
{perm}
}}
}}
if ({last} != 0u) {{
{perm}
}}
{out}[tid] = bb_from_mont(x);
if (tid < 8u) {out}[23u - tid] = bb_from_mont(x);
{then}}}
"""
    return _SBOX + "\n", shared, code


@lru_cache(maxsize=32)
def with_absorb(src: KernelSource, value: str, n: int, grind: bool = False) -> KernelSource:
    """``src``, a kernel of one block whose every thread runs its whole body, followed by a
    device transcript's absorb of ``n`` values it made (``value``: a C expression of ``i``
    valid at the body's end, value ``i`` canonical): inputs ``sponge`` (16 or more words) and
    ``absorb = [a, last]`` after ``src``'s, output ``sponge_out`` (24) after its
    (:func:`duplex_code`). The absorb runs after a barrier, in a scope of its own.

    ``grind``: the absorb (no final permutation) is followed, in the same block of
    :data:`THREADS` threads, by a proof-of-work search and the witness's absorb as
    :func:`grind_source` with ``search`` runs them: ``absorb = [a, count, a', last', mask]``
    (``a'``, ``last'``: the witness's rate position and final permutation) and ``sponge_out``
    (25) ends with the witness."""
    header, shared, code = duplex_code(value, f"{n}u", "absorb[0]", "0u" if grind else "absorb[1]",
                                       "sponge", "mid" if grind else "sponge_out")
    body = shared + src.body + "BARRIER();\n{\n" + code + "}\n"
    if grind:  # the absorbed state in shared memory, then the search and the witness's absorb
        _, _, absorb_witness = duplex_code(
            "witness", "1u", "absorb[2]", "absorb[3]", "mid", "sponge_out",
            then=f"if (tid == 0u) sponge_out[{WIDTH + RATE}u] = witness;\n")
        header = permutation_header()  # its S-box is the duplex's
        body = (f"SHARED uint32_t mid[{WIDTH + RATE}];\nSHARED uint32_t low[{THREADS}];\n" + body
                + "BARRIER();\n" + _search_code("mid", "absorb[1]", "absorb[2]", "absorb[4]")
                + "{\n" + absorb_witness + "}\n")
    return KernelSource(src.name + ("_grind" if grind else "_absorb"),
                        src.input_names + ("sponge", "absorb"), src.output_names + ("sponge_out",),
                        src.header + header, body)


def launch_absorbing(src: KernelSource, value: str, n: int, inputs: list, output_shapes: list,
                     sponge: mx.array, absorb_idx: int, permute_last: bool, grind=None) -> list:
    """Launch :func:`with_absorb` of ``src`` as one block of ``THREADS`` threads: ``src``'s
    ``inputs`` and ``output_shapes``, then the sponge's -> ``src``'s outputs and the new
    sponge ``(24,)`` last; with ``grind = (count, a', last', mask)`` (a search of ``count ≤``
    :data:`POW_ONE_BLOCK` nonces after the absorb, without its final permutation) the sponge
    ``(25,)``, the witness last."""
    if grind is None:
        words, size = (absorb_idx, int(permute_last)), WIDTH + RATE
    else:
        count, a, last, mask = grind
        words, size = (absorb_idx, count, a, int(last), mask), WIDTH + RATE + 1
    return launch(with_absorb(src, value, n, grind is not None), inputs + [sponge, _params(*words)],
                  (THREADS, 1), THREADS, output_shapes + [(size,)])


@lru_cache(maxsize=4)
def duplex_source(constants=DEFAULT_CONSTANTS) -> KernelSource:
    """:func:`duplex_code` as a kernel: ``state`` (16 or 24) absorbs ``values`` (n);
    ``params = [n, a, last]`` -> ``out`` (24, canonical). One block of ``WIDTH`` threads with
    the lane-parallel permutation of :func:`duplex_code`."""
    header, shared, code = duplex_code("values[i]", "params[0]", "params[1]", "params[2]",
                                       "state", "out", constants=constants)
    return KernelSource("p2_duplex", ("state", "values", "params"), ("out",), header, shared + code)


def _search_code(state: str, count: str, a: str, mask: str) -> str:
    """A block of :data:`THREADS` threads trying the nonces ``k = tid, tid + THREADS, … <
    count`` on ``state`` (16 canonical words; a nonce is a witness when ``P(state with lane a =
    nonce)[7]`` has its ``mask`` bits zero) and taking the smallest: statements leaving it in
    ``witness`` (``NO_HIT`` if none), every thread (needs :func:`permutation_header`)."""
    lanes = "\n".join(f"  s[{i}] = {a} == {i}u ? bb_to_mont(nonce) : base[{i}];"
                       for i in range(WIDTH))
    return f"""\
{{
uint32_t base[16];
for (uint32_t i = 0u; i < 16u; ++i) base[i] = bb_to_mont({state}[i]);
low[tid] = {NO_HIT}u;
for (uint32_t nonce = tid; nonce < {count} && low[tid] == {NO_HIT}u; nonce += {THREADS}u) {{
  uint32_t s[16];
{lanes}
  p2_permute(s);
  if ((bb_from_mont(s[7]) & {mask}) == 0u) low[tid] = nonce;  // a thread's nonces rise
}}
{_LOW_MIN}}}
const uint32_t witness = low[0];
"""


# the block's smallest ``low[tid]`` into ``low[0]``, visible to every thread
_LOW_MIN = f"""\
for (uint32_t gap = {THREADS // 2}u; gap > 0u; gap >>= 1) {{
  BARRIER();
  if (tid < gap) low[tid] = min(low[tid], low[tid + gap]);
}}
BARRIER();
"""


@lru_cache(maxsize=4)
def grind_source(search: bool, constants=DEFAULT_CONSTANTS) -> KernelSource:
    """A device transcript's grind in one block of ``THREADS`` threads: the witness, then the
    sponge absorbing it as :func:`duplex_source` does one value. ``search``: the block tries
    the nonces ``k = tid, tid + THREADS, … < count`` itself, ``params = [count, a, last,
    mask]`` (a nonce is a witness when ``P(state with lane a = nonce)[7]`` has its ``mask``
    bits zero); else the witness is the smallest of the input ``best``, the ``B`` block minima
    of :func:`pow_source`, ``params = [B, a, last]``. -> ``out`` (25): the
    duplex's 24 words, then the witness (``0xFFFFFFFF`` if there is none)."""
    header, shared, code = duplex_code("witness", "1u", "params[1]", "params[2]", "state", "out",
                                       then=f"if (tid == 0u) out[{WIDTH + RATE}u] = witness;\n",
                                       constants=constants)
    if search:
        header = permutation_header(constants)  # its S-box is the duplex's
        find = _search_code("state", "params[0]", "params[1]", "params[3]")
    else:
        find = f"""\
low[tid] = {NO_HIT}u;
for (uint32_t i = tid; i < params[0]; i += {THREADS}u) low[tid] = min(low[tid], best[i]);
{_LOW_MIN}const uint32_t witness = low[0];
"""
    body = f"{shared}SHARED uint32_t low[{THREADS}];\n{find}{code}"
    inputs = ("state", "params") if search else ("state", "best", "params")
    return KernelSource("p2_grind_search" if search else "p2_grind", inputs, ("out",), header, body)


# ---------------------------------------------------------------- host wrappers

def permute(states: mx.array, constants=DEFAULT_CONSTANTS) -> mx.array:
    """:func:`mlx_stark.hash.poseidon2.permute`: ``(n, 16)`` uint32 -> ``(n, 16)`` uint32."""
    n = states.shape[0]
    if n == 0:
        return mx.zeros((0, WIDTH), dtype=U32)
    return launch(permute_source(constants), [states, _params(n)], (grid_x(n), 1), THREADS,
                  [(n, WIDTH)])[0]


def hash_rows(matrix: mx.array) -> mx.array:
    """:func:`mlx_stark.hash.merkle.hash_rows` for ``(n, w)`` with ``w >= 1``: -> ``(n, 8)``."""
    n, w = matrix.shape
    if n == 0:
        return mx.zeros((0, DIGEST), dtype=U32)
    return launch(hash_rows_source(w), [matrix, _params(n)], (grid_x(n), 1), THREADS,
                  [(n, DIGEST)])[0]


def compress(left: mx.array, right: mx.array) -> mx.array:
    """:func:`mlx_stark.hash.merkle.compress`: two ``(n, 8)`` -> ``(n, 8)``."""
    n = left.shape[0]
    if n == 0:
        return mx.zeros((0, DIGEST), dtype=U32)
    return launch(compress_source(), [left, right, _params(n)], (grid_x(n), 1), THREADS,
                  [(n, DIGEST)])[0]


def leaf_source(n: int, w: int, k: int):
    """The kernel :func:`leaf_groups` launches first for an ``(n, w)`` matrix and ``2^k`` rows
    per group (its rows' hashes; ``None`` for a large matrix without columns)."""
    if n > FUSED_GROUP_ROWS:
        return hash_rows_source(w) if w else None
    return leaf_groups_source(w, min(k, GROUP_LEVELS))


def leaf_groups(matrix: mx.array, k: int) -> mx.array:
    """The digests of the leaf groups of a Merkle tree over ``matrix`` (``(N, w)`` uint32
    canonical, ``N`` a power of two ``>= 2^k``): ``(N/2^k, 8)``, group ``y`` over rows ``y +
    t·N/2^k`` (a binary tree over ``t``). Up to :data:`FUSED_GROUP_ROWS` rows one launch
    takes the row hashes and up to :data:`GROUP_LEVELS` levels; beyond, a strided layer per
    launch."""
    n, w = matrix.shape
    qs = n >> k
    if n > FUSED_GROUP_ROWS:
        levels, level = 0, hash_rows(matrix) if w else mx.zeros((n, DIGEST), dtype=U32)
    else:
        levels = min(k, GROUP_LEVELS)
        groups = min(qs, THREADS >> levels)
        # (a matrix without columns is read by no thread; an input needs a buffer)
        level = launch(leaf_groups_source(w, levels), [matrix if w else _params(0), _params(qs, groups)],
                       (n, 1), groups << levels, [(n >> levels, DIGEST)])[0]
    for _ in range(k - levels):
        level = compress_layer(level, qs)
    return level


def compress_layer(level: mx.array, stride: int) -> mx.array:
    """``(2n, 8)`` -> ``(n, 8)``, ``out[t·S + y] = C(level[2t·S + y], level[(2t+1)·S + y])``."""
    n = level.shape[0] // 2
    return launch(compress_layer_source(), [level, _params(n, stride)], (grid_x(n), 1), THREADS,
                  [(n, DIGEST)])[0]


def tree_levels(level: mx.array, levels: int) -> mx.array:
    """The next ``levels`` binary-tree levels above ``level`` (``(m, 8)``, ``m`` a multiple of
    ``2^levels``), one after the other in one ``(m − m/2^levels, 8)`` array: ``(m/2, 8)``,
    ..., ``(m/2^levels, 8)``."""
    m = level.shape[0]
    if not 1 <= levels <= TREE_LEVELS or m % (1 << levels):
        raise ValueError(f"cannot take {levels} tree levels above {m} nodes")
    return launch(tree_levels_source(), [level, _params(m, levels)], (m // 2, 1), 1 << (levels - 1),
                  [(m - (m >> levels), DIGEST)])[0]


def merkle_blocks(matrix: mx.array, log_rows_per_query: int) -> list:
    """The levels of :class:`mlx_stark.hash.merkle.MerkleTree` over ``matrix`` (``(N, w)``
    uint32 canonical, ``N`` a power of two ``>= 2^k``) as stored: ``[(array, count), ...]``,
    ``count`` consecutive levels in each array, from the group digests ``(N/2^k, 8)`` to the
    root. Leaf group ``y`` holds rows ``y + t·N/2^k``; its ``k`` levels are strided layers, the
    tree above them :data:`TREE_LEVELS` levels per launch (one array each); lazy, no host wait."""
    level, qs = leaf_groups(matrix, log_rows_per_query), matrix.shape[0] >> log_rows_per_query
    blocks, m = [(level, 1)], qs
    while m > 1:
        levels = min(TREE_LEVELS, m.bit_length() - 1)
        out = tree_levels(level, levels)
        blocks.append((out, levels))
        m >>= levels
        level = out[out.shape[0] - m:]  # the block's last level feeds the next launch
    return blocks


def find_pow_witness(state, absorb_idx: int, bits: int) -> int:
    """:func:`mlx_stark.hash.poseidon2.find_pow_witness` (validated arguments): the smallest
    nonce, searched in increasing batches of one launch and one read-back each (the first
    2^(bits + 4) within [2^8, 2^22], then doubling to 2^22); the smallest valid nonce of the
    first batch that has one is the witness, whatever the batch sizes."""
    state = _params(*(int(v) for v in state))
    start, batch = 0, pow_first_batch(bits)
    while start < P:
        count = min(batch, P - start)
        found = int(read(pow_batch(state, absorb_idx, bits, start, count))[0].min())
        if found != NO_HIT:
            return found
        start += count
        batch = min(2 * batch, POW_MAX_BATCH)
    raise RuntimeError(f"no proof-of-work witness for {bits} bits exists in the field")


def pow_first_batch(bits: int) -> int:
    """Size of a search's first batch: ``2^(bits + POW_MARGIN_BITS)`` within
    ``[POW_MIN_BATCH, POW_MAX_BATCH]``."""
    return min(max(1 << (bits + POW_MARGIN_BITS), POW_MIN_BATCH), POW_MAX_BATCH)


def pow_batch(state: mx.array, absorb_idx: int, bits: int, start: int, count: int) -> mx.array:
    """The smallest valid nonce of each block of the search of ``[start, start + count)``:
    ``(B,)`` uint32 on the device (``B ≤`` :data:`POW_BLOCKS`; ``0xFFFFFFFF`` where a block
    holds none), ``state`` ``(16,)`` canonical on the device (or a duplex's 24 words). One
    launch; lazy (no read-back)."""
    blocks = min(grid_x(count) // THREADS, POW_BLOCKS)
    return launch(pow_source(), [state, _params(start, count, (1 << bits) - 1, absorb_idx,
                                                blocks * THREADS)],
                  (blocks * THREADS, 1), THREADS, [(blocks,)])[0]


def duplex(state: mx.array, values: mx.array, absorb_idx: int, permute_last: bool,
           grind=None) -> mx.array:
    """:func:`duplex_source` on the device: ``state`` ``(16,)`` (or the ``(24,)`` of a previous
    call) and ``values`` ``(n,)`` uint32 canonical -> ``(24,)``: the state after absorbing
    ``values`` from rate position ``absorb_idx`` (and a final permutation if ``permute_last``),
    then its rate part reversed. One launch; lazy. With ``grind`` as for
    :func:`launch_absorbing`: the search after it, ``(25,)`` (two launches)."""
    if grind is not None:
        count, a, last, mask = grind
        out = duplex(state, values, absorb_idx, False)
        return launch(grind_source(True), [out, _params(count, a, int(last), mask)], (THREADS, 1),
                      THREADS, [(WIDTH + RATE + 1,)])[0]
    if values.shape[0] == 0:
        values = _params(0)  # an input needs a buffer (a kept zero word); n = 0 reads none
        n = 0
    else:
        n = values.shape[0]
    return launch(duplex_source(), [state, values, _params(n, absorb_idx, int(permute_last))],
                  (WIDTH, 1), WIDTH, [(WIDTH + 8,)])[0]


def one_block_search(bits: int):
    """``(count, mask)`` of a device transcript's first search batch for ``bits`` where one
    block of :data:`THREADS` threads runs it (up to :data:`POW_ONE_BLOCK` nonces), else
    ``None``."""
    batch = pow_first_batch(bits)
    return (batch, (1 << bits) - 1) if batch <= POW_ONE_BLOCK else None


def grind(sponge: mx.array, absorb_idx: int, bits: int, permute_last: bool) -> tuple:
    """A device transcript's proof-of-work search and the witness's absorb: one search batch
    from nonce 0 (:func:`pow_first_batch` nonces) on the sponge (``(16,)`` or a longer state)
    with the witness at rate position ``absorb_idx``, then the sponge absorbing the smallest
    (a final permutation if ``permute_last``) -> ``(sponge (25,), witness (1,))``: the duplex's
    24 words and the witness, ``NO_HIT`` if the batch holds none. One launch for a batch of
    up to :data:`POW_ONE_BLOCK` nonces (the search in the absorbing block), else two; lazy."""
    search = one_block_search(bits)
    if search is not None:
        count, mask = search
        inputs = [sponge, _params(count, absorb_idx, int(permute_last), mask)]
        src = grind_source(True)
    else:
        best = pow_batch(sponge, absorb_idx, bits, 0, pow_first_batch(bits))
        inputs = [sponge, best, _params(best.shape[0], absorb_idx, int(permute_last))]
        src = grind_source(False)
    out = launch(src, inputs, (THREADS, 1), THREADS, [(WIDTH + RATE + 1,)])[0]
    return out, out[WIDTH + RATE:]
