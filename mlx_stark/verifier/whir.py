"""WHIR verifier (pcs.md §8.3).

Host arithmetic on :class:`~mlx_stark.field.host.EF`, except the per-query work, batched over
the queries of a round: Merkle openings (:func:`~mlx_stark.hash.merkle.merkle_verify_batch`),
round 0's ``μ``-combination of opened rows, the ``k``-fold of every query's values, and the
final polynomial and ``eq`` factors at the (base-field) query points, as NumPy EF arrays
(:mod:`mlx_stark.field.host`; every product is reduced before it is summed, so sums of fewer
than ``2^33`` terms are exact).
"""
from __future__ import annotations

import numpy as np

from ..errors import VerificationError
from ..field.bb import HALF, P, two_adic_generator
from ..field.host import (EF, ef_array, ef_mul_np, ef_powers_np, ef_scale_np, ef_sum_np,
                          ef_values, horner, inv, powers)
from ..hash.merkle import merkle_verify_batch
from ..params import SystemParams
from ..poly import host
from ..proof.pcs import WhirProof
from ..transcript import Transcript
from .proof_shape import check_whir_shape


def _combine_columns(rows: np.ndarray, coeffs: np.ndarray) -> np.ndarray:
    """``Σ_col rows[..., col]·coeffs[col]``: rows ``(q, g, w)`` base, coeffs ``(w, 4)`` ->
    ``(q, g, 4)`` uint64 canonical."""
    prod = (rows.astype(np.uint64)[..., None] * coeffs[None, None]) % P
    return prod.sum(axis=2) % P


def _eval_at_base_points(coeffs: np.ndarray, points) -> np.ndarray:
    """``Σ_j coeffs[j]·z^j`` for each base-field ``z``: coeffs ``(N, 4)`` uint64 -> ``(q, 4)``."""
    z = np.asarray(points, dtype=np.uint64)
    n = coeffs.shape[0]
    pows = np.empty((len(points), n), dtype=np.uint64)
    pows[:, 0] = 1
    for j in range(1, n):
        pows[:, j] = pows[:, j - 1] * z % P
    acc = np.zeros((len(points), 4), dtype=np.uint64)
    for c in range(4):
        acc[:, c] = ((pows * coeffs[None, :, c]) % P).sum(axis=1) % P
    return acc


def binary_k_fold_batch(values: np.ndarray, alphas: list, xs) -> np.ndarray:
    """``Fold_k(v, α, x)`` of pcs.md §8.3 for every query at once: ``values[q, s] =
    f(x_q·ω_k^s)`` (``(q, 2^k, 4)``), ``xs`` base elements; returns ``ĝ(x_q^{2^k})`` ``(q, 4)``
    with ``ĝ`` the polynomial after binding ``k`` variables to ``alphas``."""
    k = len(alphas)
    v = values.astype(np.uint64)
    x_j = np.array([int(x) for x in xs], dtype=np.uint64)
    x_inv_j = np.array([inv(int(x)) for x in xs], dtype=np.uint64)
    for j in range(k):
        h = 1 << (k - j - 1)
        w, w_inv = two_adic_generator(k - j), inv(two_adic_generator(k - j))  # ω_k^{2^j} = ω_{k−j}
        w_pows = np.array([pow(w, s, P) for s in range(h)], dtype=np.uint64)
        w_inv_pows = np.array([pow(w_inv, s, P) for s in range(h)], dtype=np.uint64)
        big_x = x_j[:, None] * w_pows[None] % P  # X = x·ω^s
        half_inv = x_inv_j[:, None] * HALF % P * w_inv_pows[None] % P  # 1/(2X)
        alpha_minus_x = np.broadcast_to(ef_array([alphas[j]]), big_x.shape + (4,)).copy()
        alpha_minus_x[..., 0] = (alpha_minus_x[..., 0] + P - big_x) % P
        diff = (v[:, :h] + P - v[:, h:2 * h]) % P
        step = ef_scale_np(ef_mul_np(alpha_minus_x, diff), half_inv)
        v = (v[:, :h] + step) % P
        x_j, x_inv_j = x_j * x_j % P, x_inv_j * x_inv_j % P
    return v[:, 0]


def binary_k_fold(values: list, alphas: list, x: int) -> EF:
    """:func:`binary_k_fold_batch` of one query: ``2^k`` EF values at ``x·ω_k^s``."""
    return ef_values(binary_k_fold_batch(ef_array(values)[None], alphas, [x]))[0]


def _pow_chain(z: EF, count: int) -> list:
    """``(z, z^2, z^4, …)`` (``count`` entries) and, last, ``z^{2^count}``."""
    out = []
    for _ in range(count):
        out.append(z)
        z = z * z
    return out + [z]


def _eq_at_base_chains(a: list, zs: np.ndarray) -> np.ndarray:
    """``eq(a, (z, z^2, z^4, …))`` for every base ``z`` in ``zs`` ``(q,)``: ``(q, 4)``.
    Factor ``j``: ``1 − a_j − y + 2·a_j·y = (1 − a_j) + (2a_j − 1)·y`` with ``y = z^{2^j}``."""
    acc = np.zeros((zs.size, 4), dtype=np.uint64)
    acc[:, 0] = 1
    y = zs.astype(np.uint64) % P
    for aj in a:
        const, slope = ef_array([1 - aj]), ef_array([aj * 2 - 1])
        acc = ef_mul_np(acc, (const + ef_scale_np(slope, y)) % P)
        y = y * y % P
    return acc


def _check_pow(transcript: Transcript, bits: int, witness, reason: str) -> None:
    if not transcript.check_witness(bits, witness):
        raise VerificationError(reason, "proof-of-work witness rejected")


def verify_whir(params: SystemParams, transcript: Transcript, proof: WhirProof, commits: list,
                widths: list, openings: list, u_cube: list) -> None:
    """Check a WHIR opening proof (pcs.md §8.3); raises :class:`VerificationError` on failure.

    - ``commits``: the commitment list's roots (tuples of 8 ints), commit-list order;
    - ``widths``: their stacked widths ``W_c``;
    - ``openings[c][col]``: the stacking openings (EF) observed by the stacked reduction;
    - ``u_cube``: the point of length ``m`` (:func:`mlx_stark.poly.host.u_cube`).
    """
    widths = [int(w) for w in widths]
    check_whir_shape(params, widths, proof)
    m, k, num_rounds = params.log_stacked_height, params.k_whir, params.num_whir_rounds
    if (len(commits) != len(widths) or len(openings) != len(widths) or len(u_cube) != m
            or any(len(o) != w for o, w in zip(openings, widths))):
        raise VerificationError("WhirStatement", "commitments, widths, openings or point mismatch")
    if not all(isinstance(x, EF) for x in u_cube) or not all(
            isinstance(o, EF) for col in openings for o in col):
        raise VerificationError("WhirStatement", "openings and point must be extension elements")
    queries = params.whir_num_queries()
    t = k * num_rounds
    total_width = sum(widths)

    # 1. μ and the initial claim
    _check_pow(transcript, params.whir.mu_pow_bits, proof.mu_pow_witness, "InvalidMuPowWitness")
    mu = transcript.sample_ext()
    mu_pows = powers(mu, total_width)
    flat_openings = [o for col in openings for o in col]
    claim = EF.zero()
    for p_, o in zip(mu_pows, flat_openings):
        claim = claim + p_ * o
    mu_np = ef_array(mu_pows)

    alphas, gammas, z0s, query_points = [], [], [], []
    for i in range(num_rounds):
        log_size = m + params.log_blowup - i  # L_i
        # a. k sumcheck / fold steps
        for step in range(k * i, k * (i + 1)):
            e1, e2 = proof.whir_sumcheck_polys[step]
            transcript.observe_ext(e1)
            transcript.observe_ext(e2)
            _check_pow(transcript, params.whir.folding_pow_bits, proof.folding_pow_witnesses[step],
                       "InvalidFoldingPowWitness")
            alpha = transcript.sample_ext()
            claim = host.quad(claim - e1, e1, e2, alpha)
            alphas.append(alpha)
        round_alphas = alphas[k * i:]
        # b. next codeword commitment and OOD sample, or the final polynomial
        if i == num_rounds - 1:
            for coeff in proof.final_poly:
                transcript.observe_ext(coeff)
        else:
            transcript.observe_commit(proof.codeword_commits[i])
            z0s.append(transcript.sample_ext())
            transcript.observe_ext(proof.ood_values[i])
        # c-d. query PoW and indices
        _check_pow(transcript, params.whir.query_phase_pow_bits, proof.query_phase_pow_witnesses[i],
                   "InvalidQueryPowWitness")
        idxs = [transcript.sample_bits(log_size - k) for _ in range(queries[i])]
        # e. openings
        if i == 0:
            values = np.zeros((queries[0], 1 << k, 4), dtype=np.uint64)
            offset = 0
            for c, width in enumerate(widths):
                rows = proof.initial_round_opened_rows[c]
                if not merkle_verify_batch(commits[c], idxs, rows,
                                           proof.initial_round_merkle_proofs[c]).all():
                    raise VerificationError("InvalidMerkleProof", f"round 0, commit {c}")
                if width:
                    values = (values + _combine_columns(rows, mu_np[offset:offset + width])) % P
                offset += width
        else:
            values = proof.codeword_opened_values[i - 1]
            if not merkle_verify_batch(proof.codeword_commits[i - 1], idxs, values,
                                       proof.codeword_merkle_proofs[i - 1]).all():
                raise VerificationError("InvalidMerkleProof", f"round {i}")
        omega = two_adic_generator(log_size)
        xs = [pow(omega, idx, P) for idx in idxs]
        ys = binary_k_fold_batch(values, round_alphas, xs)
        query_points.append(np.array([pow(x, 1 << k, P) for x in xs], dtype=np.uint64))
        # f. γ and the claim update: + γ·ood + Σ_q γ^{q+2}·y_q
        gamma = transcript.sample_ext()
        gammas.append(gamma)
        if i < num_rounds - 1:
            claim = claim + gamma * proof.ood_values[i]
        claim = claim + gamma * gamma * ef_sum_np(ef_mul_np(ef_powers_np(gamma, len(xs)), ys))

    # 4. the final equation
    table = list(proof.final_poly)
    for v in u_cube[t:]:
        half = len(table) // 2
        table = [table[2 * y] + v * (table[2 * y + 1] - table[2 * y]) for y in range(half)]
    expected = host.mobeq(u_cube[:t], alphas) * table[0]
    final_np = ef_array(proof.final_poly)
    for i in range(num_rounds):
        a = alphas[k * (i + 1):]
        e = len(a)
        gamma = gammas[i]
        if i < num_rounds - 1:
            chain = _pow_chain(z0s[i], e)
            expected = expected + gamma * host.eq(a, chain[:-1]) * horner(proof.final_poly, chain[-1])
        zs = query_points[i]
        z_last = zs  # z^{2^e}
        for _ in range(e):
            z_last = z_last * z_last % P
        evals = _eval_at_base_points(final_np, z_last)
        terms = ef_mul_np(_eq_at_base_chains(a, zs), evals)
        expected = expected + gamma * gamma * ef_sum_np(ef_mul_np(ef_powers_np(gamma, zs.size), terms))
    if expected != claim:
        raise VerificationError("WhirFinalMismatch", "the final polynomial does not match the claim")
