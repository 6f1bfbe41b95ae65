"""LogUp GKR prover: the fractional sumcheck of constraints.md §5.

The interactions of all traces become ``2^G`` fraction leaves ``(p_i, q_i)`` (§5.1–5.2); the
layered circuit adds sibling fractions, ``(p1, q1) ⊕ (p2, q2) = (p1·q2 + p2·q1, q1·q2)``, up to
the root ``(P0, Q0)`` (§5.3), and the prover reduces the statement ``P0 = 0`` layer by layer to
one claim on the leaves' multilinear extensions at a random point ``ξ`` (§5.4).

Every layer is one whole-array computation; each sumcheck sub-round evaluates its cubic at
``X = 1, 2, 3`` as whole-array sums over the five tables ``P0, Q0, P1, Q1, E`` (stacked along
one axis so that they fold together). Only challenges and round messages touch the host.
:func:`layer_tables`, :func:`round_sums` and :func:`fold_round_sums` (a fold and the next
sub-round's sums in one pass) run native kernels where the device has them
(:mod:`mlx_stark.custom_kernels.gkr`); their MLX-ops code is the reference.

The LogUp proof of work (§5.0) precedes ``α, β``: :func:`logup_challenges` performs it and
samples both challenges, so a caller runs it right after the preamble, with or without
interactions.
"""
from __future__ import annotations

from typing import List, Sequence, Tuple

import mlx.core as mx

from .. import arrays, custom_kernels
from ..device import fused
from ..errors import ProverError, UnbalancedInteractions
from ..field import bb, ext
from ..field.bb import U32
from ..field.host import EF
from ..poly import eq_table, fold_lowest
from ..proof.constraints import GkrLayerClaims
from ..tracing import Rows
from ..transcript import Transcript, device_segment


# ------------------------------------------------------------------ challenges
def logup_challenges(transcript: Transcript, pow_bits: int) -> Tuple[int, EF, EF]:
    """§4.2 steps 4–5: ``w = grind(pow_bits)``, then ``α = sample_ext()``, ``β = sample_ext()``.
    Returns ``(w, α, β)``."""
    witness = transcript.grind(pow_bits)
    alpha = transcript.sample_ext()
    beta = transcript.sample_ext()
    return witness, alpha, beta


# ------------------------------------------------------------------ leaves
def fraction_leaves(segments: Sequence[Tuple[mx.array, mx.array]], alpha: EF, num_vars: int):
    """The ``2^G`` leaves (§5.2) from the segments in layout order.

    ``segments``: per ``(t, σ)``: ``(p, h)`` with ``p`` ``(2^(l+ñ_t),)`` uint32 (already
    lifted and scaled by ``norm_t``) and ``h`` ``(2^(l+ñ_t), 4)`` (lifted, without ``α``).
    Padding leaves are ``(0, α)``. Returns ``(p, q)``, both ``(2^G, 4)`` uint32."""
    size = 1 << num_vars
    used = sum(int(p.shape[0]) for p, _ in segments)
    if used >= size:
        raise ProverError(f"{used} interaction leaves do not fit 2^{num_vars} (no padding leaf)")
    # (one launch each with native kernels, where MLX's concatenate copies each segment apart)
    p = arrays.concat_flat([s[0] for s in segments] + [mx.zeros((size - used,), dtype=U32)])
    h = arrays.concat_flat([s[1] for s in segments] + [ext.zeros((size - used,))]).reshape(size, 4)
    return ext.from_base(p), ext.add(h, ext.constant(alpha))


# ------------------------------------------------------------------ layered circuit
@fused
def _add_fractions(p0: mx.array, q0: mx.array, p1: mx.array, q1: mx.array):
    return ext.add(ext.mul(p0, q1), ext.mul(p1, q0)), ext.mul(q0, q1)


def fraction_layers(p: mx.array, q: mx.array) -> List[Tuple[mx.array, mx.array]]:
    """All layers ``j = 0..G`` of the circuit (§5.3): ``layers[j] = (p_j, q_j)``, each
    ``(2^j, 4)`` uint32; ``layers[G]`` are the leaves, ``layers[0]`` the root."""
    kernel = custom_kernels.native("logup_gkr.fraction_layer")  # one launch per layer
    layers = [(p, q)]
    while layers[-1][0].shape[0] > 1:
        lp, lq = layers[-1]
        if kernel is not None:
            layers.append(kernel(lp, lq))
            continue
        half = lp.shape[0] // 2
        vp, vq = lp.reshape(half, 2, 4), lq.reshape(half, 2, 4)
        layers.append(_add_fractions(vp[:, 0], vq[:, 0], vp[:, 1], vq[:, 1]))
    layers.reverse()
    return layers


# ------------------------------------------------------------------ sumcheck
@fused
def _cubic_terms(t0: mx.array, t1: mx.array, lam: mx.array) -> mx.array:
    """Summands of ``g(1), g(2), g(3)``: ``t0, t1`` ``(M, 5, 4)`` are the even/odd rows of the
    tables ``P0, Q0, P1, Q1, E``; returns ``(3, M, 4)``."""
    d = ext.sub(t1, t0)
    t2 = ext.add(t1, d)
    t3 = ext.add(t2, d)
    tx = mx.stack([t1, t2, t3])  # (3, M, 5, 4)
    p0, q0, p1, q1, e = (tx[:, :, i] for i in range(5))
    cross = ext.add(ext.mul(p0, q1), ext.mul(p1, q0))
    return ext.mul(e, ext.add(cross, ext.mul(ext.mul(q0, q1), lam)))


def _ops_round_sums(tables: mx.array, lam: EF) -> mx.array:
    m = tables.shape[0] // 2
    v = tables.reshape(m, 2, 5, 4)
    return bb.sum(_cubic_terms(v[:, 0], v[:, 1], ext.constant(lam)), axis=1)


def layer_tables(lp: mx.array, lq: mx.array, xi: Sequence[EF]) -> mx.array:
    """The sumcheck tables of layer ``j`` (``lp, lq`` ``(2^j, 4)`` uint32, ``ξ`` ``j − 1`` host
    EF): ``(2^(j−1), 5, 4)`` uint32, row ``y`` = ``p[2y], q[2y], p[2y+1], q[2y+1], eq(ξ, y)``
    (``P0, Q0, P1, Q1, E``; every table folds on its row index)."""
    kernel = custom_kernels.native("logup_gkr.layer_tables")
    if kernel is not None:
        return kernel(lp, lq, xi)
    half = lp.shape[0] // 2
    vp, vq = lp.reshape(half, 2, 4), lq.reshape(half, 2, 4)
    return mx.stack([vp[:, 0], vq[:, 0], vp[:, 1], vq[:, 1], eq_table(xi)], axis=1)


def round_sums(tables: mx.array, lam: EF) -> mx.array:
    """``g(1), g(2), g(3)`` of a sub-round over ``tables`` ``(2M, 5, 4)`` uint32 (``M ≥ 1``):
    ``(3, 4)`` uint32."""
    kernel = custom_kernels.native("logup_gkr.round_sums")
    if kernel is not None:
        return kernel(tables, lam)
    return _ops_round_sums(tables, lam)


def fold_round_sums(tables: mx.array, r: EF, lam: EF) -> Tuple[mx.array, mx.array]:
    """``tables`` ``(4N, 5, 4)`` uint32 (``N ≥ 1``) folded at ``r`` (``(2N, 5, 4)``) and the
    next sub-round's :func:`round_sums` over them (``(3, 4)``)."""
    kernel = custom_kernels.native("logup_gkr.fold_round_sums")
    if kernel is not None:
        return kernel(tables, r, lam)
    folded = fold_lowest(tables, r)
    return folded, _ops_round_sums(folded, lam)


# values a sub-round observes: g(1), g(2), g(3), four coefficients each
_SUMS = 12


def round_sums_step(dt, tables: mx.array, lam) -> Tuple[mx.array, mx.array]:
    """A layer's first sub-round on the device transcript ``dt``: :func:`round_sums` observed,
    then the challenge sampled: ``(sums (3, 4), r (4,))``. With native kernels the sums'
    launch absorbs them itself (one launch for a layer of one block)."""
    kernel = custom_kernels.native("logup_gkr.round_sums_step")
    (sums,) = dt.observe_made(
        _SUMS, kernel and (lambda sponge, a, last: kernel(tables, lam, sponge, a, last)),
        lambda: (round_sums(tables, lam),))
    return sums, dt.sample_ext()


def fold_round_sums_step(dt, tables: mx.array, r, lam) -> Tuple[mx.array, mx.array, mx.array]:
    """A later sub-round: :func:`fold_round_sums` at the last challenge ``r``, the sums
    observed and the next challenge sampled: ``(folded, sums (3, 4), r' (4,))``. With native
    kernels the fold's launch absorbs the sums itself (one launch for tables of one block)."""
    kernel = custom_kernels.native("logup_gkr.fold_round_sums_step")
    folded, sums = dt.observe_made(
        _SUMS, kernel and (lambda sponge, a, last: kernel(tables, r, lam, sponge, a, last)),
        lambda: fold_round_sums(tables, r, lam))
    return folded, sums, dt.sample_ext()


# rows (a, b, c, d) -> (a, c, b, d): a layer's claims between the table order (p0, p1, q0, q1)
# and the observed order (p0, q0, p1, q1), either way
_INTERLEAVE = (0, 2, 1, 3)


def prove_fractional_sumcheck(transcript: Transcript, p: mx.array, q: mx.array):
    """§5.4 for the leaves ``p, q`` (``(2^G, 4)`` uint32, ``G ≥ 1``).

    Raises :class:`UnbalancedInteractions` if the root numerator ``P0`` is not zero (unbalanced
    buses), found at the segment's one read, so a balanced proof pays no read of its own for the
    check; the transcript is then left mid-proof. Returns ``(q0_claim, claims_per_layer, sumcheck_polys, ξ)``
    with ``ξ`` (``G`` host EF) the point of the leaf claims."""
    layers = fraction_layers(p, q)
    num_vars = len(layers) - 1
    if num_vars < 1:
        raise ProverError("the GKR circuit needs at least two leaves")
    # every layer on a device transcript: the root, the round polynomials, the layer claims and
    # the challenges come back in one read at the end
    def layers_rounds(dt, *flat):
        layers = [flat[2 * j:2 * j + 2] for j in range(num_vars + 1)]  # (p, q) per layer
        root = mx.concatenate([layers[0][0], layers[0][1]])  # P0, Q0
        dt.observe(root[1, ...])
        # every layer's claims in the observed order p0, q0, p1, q1 (reordered on the host)
        claims = [arrays.take(mx.concatenate([layers[1][0].reshape(2, 4), layers[1][1].reshape(2, 4)]),
                              _INTERLEAVE)]
        dt.observe(claims[0])
        xi = [dt.sample_ext()]
        polys = []
        for j in range(2, num_vars + 1):
            lam = dt.sample_ext()
            tables = layer_tables(*layers[j], xi)
            sums, r = round_sums_step(dt, tables, lam)  # g(1), g(2), g(3) observed
            rho = []
            for k in range(j - 1):
                polys.append(sums)
                rho.append(r)
                if k < j - 2:
                    tables, sums, r = fold_round_sums_step(dt, tables, r, lam)
                else:
                    tables = fold_lowest(tables, r)
            folded = tables.reshape(5, 4)  # p0, q0, p1, q1, eq
            dt.observe(folded[:4])
            claims.append(folded[:4])
            xi = [dt.sample_ext()] + rho
        return None, [root, Rows(claims, (4, 4)), Rows(polys, (3, 4)), Rows(xi, (4,))]

    _, (root, claims, polys, xi) = device_segment(transcript, layers_rounds,
                                                  [a for layer in layers for a in layer[:2]],
                                                  key=("logup_gkr", num_vars))
    p_root, q_root = ext.host_values(root)
    if not p_root.is_zero():
        raise UnbalancedInteractions("interactions do not balance: the LogUp root numerator "
                                     "is not zero")
    claims = [GkrLayerClaims(*ext.host_values(c[list(_INTERLEAVE)])) for c in claims]  # p0, p1, q0, q1
    rounds = [tuple(ext.host_values(g)) for g in polys]
    polys = [rounds[(j - 1) * (j - 2) // 2:j * (j - 1) // 2] for j in range(2, num_vars + 1)]
    xi = ext.host_values(xi)
    return q_root, claims, polys, xi
