"""Verifier of the constraint stage (constraints.md §8.4): LogUp proof of work, ``α, β``, GKR
(:mod:`.gkr`), the sum claims, the batch constraint sumcheck, and the final evaluation of every
AIR's constraints and interactions at the opened column values (after the constraint-side
shape checks of §8.2, :func:`~mlx_stark.verifier.proof_shape.check_constraint_shape`). Host
arithmetic only; raises :class:`VerificationError`.
"""
from __future__ import annotations

from typing import List, Sequence

import numpy as np

from ..air.dag import SymbolicConstraintsDag
from ..air.evaluate import DagInputs, evaluate_dag_ef
from ..errors import VerificationError
from ..field.bb import P, two_adic_generator
from ..field.host import EF, horner, powers
from ..layout import n_logup_of, segment_offsets
from ..poly import host
from .gkr import verify_gkr
from .proof_shape import SHAPE, check_constraint_shape


def opening_pairs(values: List[EF], need_rot: bool) -> List[tuple]:
    """A part's flat openings as ``(value, rotated value or 0)`` pairs."""
    if need_rot:
        return [(values[2 * i], values[2 * i + 1]) for i in range(len(values) // 2)]
    return [(v, EF.zero()) for v in values]


def _eval_trace(avk, parts: List[List[tuple]], public_values, is_first: EF, is_last: EF):
    """Node values of the AIR's DAG at the opened point (§8.4 step 12)."""
    width = avk.params.width
    has_prep = width.preprocessed is not None
    cached = parts[1 + has_prep:]
    main_parts = list(cached) + [parts[0]]  # DAG numbering: cached parts, then the common main

    def split(pairs):
        return [v for v, _ in pairs], [rot for _, rot in pairs]

    inputs = DagInputs(
        main=[split(p) for p in main_parts],
        preprocessed=split(parts[1]) if has_prep else None,
        public_values=[int(v) for v in public_values],
        is_first_row=is_first,
        is_last_row=is_last,
        is_transition=1 - is_last,
    )
    dag: SymbolicConstraintsDag = avk.symbolic_constraints
    return dag, evaluate_dag_ef(dag, inputs)


def verify_zerocheck_and_logup(vk, transcript, gkr_proof, batch_proof,
                               trace_id_to_air_id: Sequence[int], log_heights: Sequence[int],
                               public_values: Sequence[Sequence[int]]) -> List[EF]:
    """§8.4 on ``transcript`` (the preamble already observed).

    ``vk``: a multi-AIR verifying key (``params``, ``per_air``); ``trace_id_to_air_id`` and
    ``log_heights``: per trace in sorted order; ``public_values``: per AIR id. Returns
    ``r = (r_0, …, r_{n_max})`` (host EF). The column openings of ``batch_proof`` are the
    claims the stacked reduction must then prove."""
    params = vk.params
    per_air = vk.per_air
    l_skip = params.l_skip
    n_dom = 1 << l_skip
    air_ids = [int(a) for a in trace_id_to_air_id]
    log_heights = [int(h) for h in log_heights]
    if not air_ids or len(air_ids) != len(log_heights):
        raise VerificationError("EmptyTraces" if not air_ids else SHAPE, "trace order")
    num_traces = len(air_ids)
    ns = [h - l_skip for h in log_heights]
    nts = [max(n, 0) for n in ns]
    n_max = max(nts)
    check_constraint_shape(params, per_air, gkr_proof, batch_proof, air_ids, log_heights)
    offsets, total = segment_offsets(l_skip, [(per_air[a].num_interactions, nt)
                                              for a, nt in zip(air_ids, nts)])
    n_logup = n_logup_of(l_skip, total)
    bp = batch_proof

    # 1-2. proof of work, LogUp challenges
    if not transcript.check_witness(params.logup.pow_bits, gkr_proof.logup_pow_witness):
        raise VerificationError("InvalidLogupPowWitness")
    alpha = transcript.sample_ext()
    beta = transcript.sample_ext()

    # 3. GKR
    if total:
        p_claim, q_claim, xi = verify_gkr(gkr_proof, transcript, l_skip + n_logup)
    else:
        if gkr_proof.q0_claim != EF.one():
            raise VerificationError("InvalidZeroRoundValue", f"q0_claim = {gkr_proof.q0_claim}")
        p_claim, q_claim, xi = EF.zero(), alpha, []

    # 4. ξ padding, λ
    while len(xi) < l_skip + max(n_max, n_logup):
        xi.append(transcript.sample_ext())
    lam = transcript.sample_ext()

    # 5. sum claims against the GKR claims
    for sp, sq in zip(bp.numerator_term_per_air, bp.denominator_term_per_air):
        p_claim = p_claim - sp
        q_claim = q_claim - sq
    transcript.observe_exts([v for pair in zip(bp.numerator_term_per_air, bp.denominator_term_per_air)
                             for v in pair])
    if not p_claim.is_zero():
        raise VerificationError("GkrNumeratorMismatch")
    if q_claim != alpha:
        raise VerificationError("GkrDenominatorMismatch")

    # 6. μ and the batched claim
    mu = transcript.sample_ext()
    mu_pows = powers(mu, 3 * num_traces)
    claim = EF.zero()
    for t, (sp, sq) in enumerate(zip(bp.numerator_term_per_air, bp.denominator_term_per_air)):
        claim = claim + mu_pows[2 * t] * sp + mu_pows[2 * t + 1] * sq

    # 7. univariate skip round
    transcript.observe_exts(bp.univariate_round_coeffs)
    r0 = transcript.sample_ext()
    on_domain = EF.zero()
    for c in bp.univariate_round_coeffs[::n_dom]:
        on_domain = on_domain + c
    if on_domain * n_dom != claim:
        raise VerificationError("SumClaimMismatch")
    cur = horner(bp.univariate_round_coeffs, r0)
    rs = [r0]

    # 8. multilinear rounds
    for values in bp.sumcheck_round_polys:
        transcript.observe_exts(values)
        r = transcript.sample_ext()
        cur = host.interpolate_at_integers([cur - values[0]] + list(values), r)
        rs.append(r)

    # 9. eq3b per trace and interaction, from its segment's offset
    eq3b = [host.eq3b_weights(l_skip, xi, n_logup, nt, offs) for offs, nt in zip(offsets, nts)]

    # 10. Ê[i], Ê#[i]
    e_zc = [host.eq_d(l_skip, xi[0], r0)]
    e_lu = [horner(host.eq_sharp_coeffs(l_skip, xi), r0)]
    for i in range(1, n_max + 1):
        x, r = xi[l_skip + i - 1], rs[i]
        eq = x * r + (1 - x) * (1 - r)
        e_zc.append(e_zc[-1] * eq)
        e_lu.append(e_lu[-1] * eq)
    tail = rs[n_max]
    for i in range(n_max - 1, -1, -1):
        e_zc[i] = e_zc[i] * tail
        e_lu[i] = e_lu[i] * tail
        tail = tail * rs[i]

    # 11. openings: common mains of all traces first, then the other parts per trace (each
    # pair as v, rot), observed as one run as the prover does (the evaluation below samples
    # nothing)
    pairs = [[opening_pairs(part, per_air[a].params.need_rot) for part in parts]
             for a, parts in zip(air_ids, bp.column_openings)]
    order = [tp[0] for tp in pairs] + [part for tp in pairs for part in tp[1:]]
    transcript.observe_many(np.array([c for part in order for v, rot in part
                                      for e in (v, rot) for c in EF.lift(e).c], dtype=np.uint32))

    # 12. per-trace evaluation
    evaluated = EF.zero()
    for t, (a, n, nt) in enumerate(zip(air_ids, ns, nts)):
        avk = per_air[a]
        if n >= 0:
            first, last = EF.one(), EF.one()
            for r in rs[1:nt + 1]:
                first = first * (1 - r)
                last = last * r
            is_first = host.lagrange_first(l_skip, r0) * first
            is_last = host.lagrange_last(l_skip, r0) * last
            norm = 1
        else:
            s = -n
            y = r0 ** (1 << s)
            is_first = host.eq1(l_skip - s, y)
            is_last = host.eq1(l_skip - s, y * two_adic_generator(l_skip - s))
            norm = pow(1 << s, P - 2, P)
        dag, values = _eval_trace(avk, pairs[t], public_values[a], is_first, is_last)
        expr = EF.zero()
        lam_pow = EF.one()
        for v in values.constraints:
            expr = expr + lam_pow * v
            lam_pow = lam_pow * lam
        num, den = EF.zero(), EF.zero()
        for it, (message, count), w in zip(dag.interactions, values.interactions, eq3b[t]):
            h, bpow = EF.zero(), EF.one()
            for m in message:
                h = h + bpow * m
                bpow = bpow * beta
            h = h + bpow * (it.bus_index + 1)
            num = num + w * count
            den = den + w * h
        evaluated = evaluated + mu_pows[2 * t] * (num * norm * e_lu[nt]) \
            + mu_pows[2 * t + 1] * (den * e_lu[nt]) \
            + mu_pows[2 * num_traces + t] * (e_zc[nt] * expr)

    # 13. final consistency
    if cur != evaluated:
        raise VerificationError("InconsistentClaims")
    return rs
