"""The constraint stage of the prover (constraints.md §4.2 steps 4–15): LogUp proof of work,
``α, β``, LogUp GKR (§5), ``ξ``, ``λ``, the sum claims, and the batch constraint sumcheck with
univariate skip (§6): round 0, the multilinear rounds, and the column openings.

:func:`prove_zerocheck_and_logup` is the driver; its numbered steps are those of the verifier
(:func:`mlx_stark.verifier.batch_constraints.verify_zerocheck_and_logup`). The work lives in:

* :mod:`.traces` — a present trace's table ``(H, W_tot)`` (trace, rotated and selector
  columns), its layout, leaves and linear forms, and the GKR leaves;
* :mod:`.round0` — round 0 (§6.3–§6.4): the per-trace round-0 polynomials on cosets of ``D``
  and the sum claims, ``s_0``, and the error for unsatisfied constraints;
* :mod:`.mle_rounds` — the multilinear rounds (§6.6) on the folded tables and the openings
  (§6.7), on a device transcript segment.

Variables are little-endian everywhere (row ``k + N·x`` is the point ``(ω^k, bits(x))``).
"""
from __future__ import annotations

from typing import Sequence

from ...errors import InvalidInputError
from ...field.host import EF, horner, powers
from ...poly import host, interpolate_cosets
from ...proof.constraints import BatchConstraintProof, GkrProof
from ...tracing import span
from ...transcript import Transcript
from ...layout import n_logup_of, segment_offsets
from ..logup_gkr import fraction_leaves, logup_challenges, prove_fractional_sumcheck
from .mle_rounds import fold_tables, prove_mle_rounds
from .round0 import (
    Round0,
    explain_violation,
    read_round0_sums,
    round0_trace,
    s0_coefficients,
)
from .traces import TraceData, gkr_segments, prepare_trace

# the stage's public names (interpolate_cosets: round 0's, owned by mlx_stark.poly)
__all__ = [
    "prove_zerocheck_and_logup", "TraceData", "prepare_trace", "gkr_segments",
    "Round0", "round0_trace", "read_round0_sums", "s0_coefficients", "explain_violation",
    "fold_tables", "prove_mle_rounds", "interpolate_cosets",
]


def prove_zerocheck_and_logup(pk, transcript: Transcript, traces: Sequence):
    """constraints.md §4.2 steps 4–15 on ``transcript`` (the preamble already observed).

    ``pk``: :class:`~mlx_stark.keygen.MultiStarkProvingKey`. ``traces``: the present traces in
    sorted order (§0.4), each with ``air_id``, ``common_main`` ``(H, w_c)`` and
    ``cached_mains`` (``(H, w_k)`` uint32 MLX arrays), ``public_values`` and ``log_height``
    (the preprocessed trace comes from ``pk``).

    Returns ``(GkrProof, BatchConstraintProof, r)`` with ``r = (r_0, …, r_{n_max})`` (host EF)
    for the stacked opening reduction. Raises :class:`ProverError` when the interactions do not
    balance or the round-0 polynomial cannot exist (unsatisfied constraints)."""
    params = pk.params
    l_skip, degree = params.l_skip, params.max_constraint_degree
    if not traces:
        raise InvalidInputError("the constraint stage needs at least one trace")
    heights = [int(t.log_height) for t in traces]
    if any(a < b for a, b in zip(heights, heights[1:])):
        raise InvalidInputError("traces must be sorted by descending height")
    with span("prover.prepare_traces") as sp:
        trs = [prepare_trace(pk, l_skip, t) for t in traces]
        sp.produced(*[tr.table for tr in trs])
    num_traces = len(trs)
    n_max = trs[0].nt
    offsets, total = segment_offsets(l_skip, [(tr.num_interactions, tr.nt) for tr in trs])
    n_logup = n_logup_of(l_skip, total)

    with span("prover.rap_constraints"):
        with span("prover.rap_constraints.logup_gkr"):
            # 1-2. proof of work, LogUp challenges
            witness, alpha, beta = logup_challenges(transcript, params.logup.pow_bits)
            # 3. GKR on the interactions' fractions
            if total:
                with span("prover.rap_constraints.logup_gkr.leaves") as sp:
                    segments = [s for tr in trs if tr.num_interactions
                                for s in gkr_segments(tr, l_skip, beta)]
                    p, q = fraction_leaves(segments, alpha, l_skip + n_logup)
                    sp.produced(p, q)
                q0, claims, polys, xi = prove_fractional_sumcheck(transcript, p, q)
            else:
                q0, claims, polys, xi = EF.one(), [], [], []
        gkr_proof = GkrProof(witness, q0, claims, polys)

        # 4. ξ padding, λ; and eq3b per trace and interaction (the verifier's step 9: round 0
        # needs it here)
        while len(xi) < l_skip + max(n_max, n_logup):
            xi.append(transcript.sample_ext())
        lam = transcript.sample_ext()
        lam_powers = powers(lam, max(len(tr.dag.constraint_idx) for tr in trs))
        eq3b = [host.eq3b_weights(l_skip, xi, n_logup, tr.nt, offs) for tr, offs in zip(trs, offsets)]

        with span("prover.rap_constraints.round0"):
            # 5. sum claims, from round 0 of every trace
            with span("prover.rap_constraints.round0.traces"):
                rounds0 = [round0_trace(tr, l_skip, xi, lam_powers, beta, e3)
                           for tr, e3 in zip(trs, eq3b)]
                if total:
                    read_round0_sums(rounds0)
            transcript.observe_exts([v for rd in rounds0 for v in (rd.sum_p, rd.sum_q)])
            # 6. μ
            mu = transcript.sample_ext()
            mu_pows = powers(mu, 3 * num_traces)
            # 7. univariate skip round: s_0 (and the witness check riding on its read), r_0,
            # the tables folded at r_0
            with span("prover.rap_constraints.round0.s0"):
                s0, violated = s0_coefficients(l_skip, degree, xi, mu_pows, rounds0)
            if violated:
                raise explain_violation(pk, trs[violated[0]])
            transcript.observe_exts(s0)
            r0 = transcript.sample_ext()
            with span("prover.rap_constraints.round0.fold_skip") as sp_fold:
                tables = fold_tables(trs, l_skip, r0)
                sp_fold.produced(*tables)

        # 8. multilinear rounds, and 11. the openings (observed in the rounds' segment)
        with span("prover.rap_constraints.mle_rounds"):
            claim = horner(s0, r0)
            forms = [tr.round_forms(lam_powers, e3, beta) for tr, e3 in zip(trs, eq3b)]
            round_polys, rs, openings = prove_mle_rounds(transcript, trs, tables, forms, l_skip,
                                                         degree, xi, mu_pows, claim, r0)

    batch_proof = BatchConstraintProof(
        numerator_term_per_air=[rd.sum_p for rd in rounds0],
        denominator_term_per_air=[rd.sum_q for rd in rounds0],
        univariate_round_coeffs=s0,
        sumcheck_round_polys=round_polys,
        column_openings=openings,
    )
    return gkr_proof, batch_proof, [r0] + rs
