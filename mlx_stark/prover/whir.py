"""WHIR prover (pcs.md §8.2): prove the stacking openings of every stacked column of every
commitment at ``u_cube`` with one batched WHIR run.

Tables on device (``(2^d, 4)`` uint32, little-endian index): ``f`` the hypercube values of
``Σ_κ μ^κ F_κ``, ``w`` the weights (initially ``MobEq(u_cube, ·)``). Each round folds ``k``
variables by sumcheck, commits the next Reed–Solomon codeword (natural order, no coset) with
one extension value per Merkle row, samples one out-of-domain point and the queries, opens the
previous codeword at the queries and adds the eq tables of the queried points to ``w``.
"""
from __future__ import annotations

import mlx.core as mx

from .. import custom_kernels
from ..errors import InvalidInputError
from ..field import bb, ext
from ..field.bb import P, U32, two_adic_generator
from ..field.host import EF
from ..hash.merkle import MerkleTree
from ..params import SystemParams
from ..poly import (dft, eq_table_squares, eval_univariate, ext_powers, fold_lowest, mobeq_table, mobius,
                    zeta)
from ..proof.pcs import WhirProof
from ..tracing import Rows, span
from ..transcript import Transcript, device_segment
from .stacked_pcs import rs_messages
from .stacked_reduction import weighted_sum
from .sumcheck import fold_product_round_step, product_round_step

# Queries whose base-field eq tables are built at once in the weight update (memory bound).
_QUERY_TABLE_ELEMS = 1 << 22


def _query_weights(points: mx.array, coeffs: mx.array, d: int) -> mx.array:
    """``Σ_q coeffs[q]·E(z_q)`` with ``E(z)[b] = eq((z, z^2, …, z^{2^{d−1}}), bits(b))``.

    ``points``: ``(Q,)`` uint32 base-field ``z_q`` on the device; ``coeffs``: ``(Q, 4)`` uint32.
    Returns ``(2^d, 4)``. The tables are base-field (the points are), built by doubling for a
    chunk of queries at once and contracted with the coefficients by :func:`weighted_sum`."""
    chunk = max(1, _QUERY_TABLE_ELEMS >> d)
    out = ext.zeros((1 << d,))
    for lo in range(0, points.shape[0], chunk):
        z = points[lo:lo + chunk, None]
        table = mx.ones((z.shape[0], 1), dtype=U32)
        for _ in range(d):
            table = mx.concatenate([bb.mul(table, bb.sub(mx.ones_like(z), z)), bb.mul(table, z)], axis=1)
            z = bb.mul(z, z)
        part = weighted_sum(table[None], coeffs[lo:lo + chunk])  # (1, 2^d, 4)
        out = ext.add(out, part[0, ...])
        if points.shape[0] > chunk:
            mx.async_eval(out)  # free this chunk's tables before building the next ones
    return out


def _update_weights(w: mx.array, z0: mx.array, gamma: mx.array, points: mx.array) -> mx.array:
    """WHIR's weights for the next round (pcs.md §8.2): ``w + γ·eq(z_0^(2^i), ·) + Σ_q
    γ^(q+2)·E(z_q)``, the out-of-domain point's eq table at its squares and the query points'
    (:func:`_query_weights`). ``w`` ``(2^d, 4)``, ``z0``, ``gamma`` ``(4,)``, ``points``
    ``(Q,)`` uint32 on the device -> ``(2^d, 4)``. The native kernel
    (:func:`mlx_stark.custom_kernels.sumcheck.update_weights`, one launch) runs instead where
    the device has one."""
    kernel = custom_kernels.native("whir.update_weights")
    if kernel is not None:
        return kernel(w, z0, gamma, points)
    d = w.shape[0].bit_length() - 1
    gamma_pows = ext_powers(gamma, points.shape[0] + 2)
    return ext.add(w, ext.add(ext.mul(eq_table_squares(z0, d), gamma),
                              _query_weights(points, gamma_pows[2:], d)))


def _powers_at(g: int, idx: mx.array, bits: int) -> mx.array:
    """``g^idx`` for the ``(Q,)`` uint32 exponents ``idx < 2^bits`` (base field, on the device):
    the product of ``g^(2^b)`` over the set bits ``b`` (with native kernels: one launch,
    ``whir.powers_at``)."""
    kernel = custom_kernels.native("whir.powers_at")
    if kernel is not None:
        return kernel(g, idx, bits)
    out = mx.ones(idx.shape, dtype=U32)
    step = g
    for b in range(bits):
        out = mx.where(((idx >> b) & 1) == 1, bb.mul(out, mx.array(step, dtype=U32)), out)
        step = step * step % P
    return out


def prove_whir(params: SystemParams, transcript: Transcript, pcs_datas: list, u_cube: list) -> WhirProof:
    """pcs.md §8.2, starting right after the stacking openings were observed.

    - ``pcs_datas``: the commitment list's
      :class:`~mlx_stark.prover.stacked_pcs.StackedPcsData` (the stacked matrix ``Q``
      ``(2^m, W_c)`` uint32, whose μ-combination's RS messages are WHIR's coefficient table,
      and ``tree`` are read);
    - ``u_cube``: ``m`` host EF (:func:`mlx_stark.poly.host.u_cube` of the stacked
      reduction's ``u_prism``).
    """
    m, k, num_rounds = params.log_stacked_height, params.k_whir, params.num_whir_rounds
    if len(u_cube) != m:
        raise InvalidInputError(f"u_cube must have {m} coordinates, got {len(u_cube)}")
    if not pcs_datas:
        raise InvalidInputError("WHIR needs at least one commitment")
    u_cube = [EF.lift(x) for x in u_cube]
    queries = params.whir_num_queries()
    whir = params.whir
    widths = [pcs.width for pcs in pcs_datas]
    # the segment's per-proof arrays, as inputs (it may run as a compiled graph): the initial
    # weights, then per commitment its stacked matrix, codewords and Merkle blocks
    shapes = [(pcs.tree.log_rows_per_query, [count for _, count in pcs.tree.blocks]) for pcs in pcs_datas]
    with span("prover.openings.whir.init"):
        inputs = [mobeq_table(u_cube)]
    for pcs in pcs_datas:
        inputs += [pcs.matrix, pcs.tree.matrix, *(array for array, _ in pcs.tree.blocks)]

    # the whole of WHIR on a device transcript: commitments, out-of-domain values, proofs of
    # work, query indices and openings stay on the device until one read at the end
    def rounds(dt, w, *arrays):
        arrays = iter(arrays)
        matrices, trees = [], []
        for log_rows, counts in shapes:
            matrices.append(next(arrays))
            codewords = next(arrays)
            trees.append(MerkleTree(codewords, log_rows, [(next(arrays), c) for c in counts]))
        mu_witness = dt.grind(whir.mu_pow_bits)
        mu = dt.sample_ext()
        mu_pows = ext_powers(mu, sum(widths))
        with span("prover.openings.whir.combine"):
            # Σ_κ μ^κ msg(Q_κ) = msg(Σ_κ μ^κ Q_κ), coefficient by coefficient of EF: the RS
            # messages of one combined column instead of every column's, kept since the commit
            combined, offset = None, 0
            for matrix, width in zip(matrices, widths):
                part = weighted_sum(matrix[:, :, None], mu_pows[offset:offset + width])  # (2^m, 1, 4)
                combined = ext.accumulate(combined, part[:, 0])
                offset += width
            coeffs = rs_messages(combined, params.l_skip)  # (2^m, 4): four base columns
        with span("prover.openings.whir.init"):
            f = zeta(coeffs)
        out = {"sumcheck": [], "folding": [], "roots": [], "ood": [], "query": [],
               "init": [], "rounds": [], "final": None}
        prev_tree = None
        for i in range(num_rounds):
            log_size = m + params.log_blowup - i  # L_i
            with span("prover.openings.whir.sumcheck"):
                # s(1) then s(2), c0..c3 each, observed, then the folding proof of work (in the
                # same launch where it fits)
                bits = whir.folding_pow_bits
                sums, witness = product_round_step(dt, f, w, bits)
                for j in range(k):
                    out["folding"].append(witness)
                    alpha = dt.sample_ext()
                    out["sumcheck"].append(sums)
                    if j + 1 < k:  # the next round's sums in the same pass, observed
                        f, w, sums, witness = fold_product_round_step(dt, f, w, alpha, bits)
                    else:
                        f, w = fold_lowest(f, alpha), fold_lowest(w, alpha)
            with span("prover.openings.whir.mobius"):
                g_hat = mobius(f)
            if i < num_rounds - 1:
                with span("prover.openings.whir.commit"):
                    # g_hat zero-padded to 2^(L_i − 1) rows (the transform reads the padding)
                    tree = MerkleTree.commit(dft(g_hat, axis=0, size=1 << (log_size - 1)), k,
                                             check_values=False)
                out["roots"].append(tree.root_array)
                dt.observe(tree.root_array)
                z0 = dt.sample_ext()
                with span("prover.openings.whir.ood"):
                    y0 = eval_univariate(g_hat, z0)
                out["ood"].append(y0)
                dt.observe(y0)
            else:
                tree = None
                out["final"] = g_hat
                dt.observe(g_hat)  # 2^(m − k·(i+1)) coefficients, c0..c3 each
            out["query"].append(dt.grind(whir.query_phase_pow_bits))
            idxs = dt.sample_bits(log_size - k, queries[i])
            with span("prover.openings.whir.open"):
                if i == 0:
                    out["init"] = [tree.open_device(idxs) for tree in trees]
                else:
                    out["rounds"].append(prev_tree.open_device(idxs))
            gamma = dt.sample_ext()
            if i < num_rounds - 1:
                points = _powers_at(two_adic_generator(log_size - k), idxs, log_size - k)
                with span("prover.openings.whir.weights"):
                    w = _update_weights(w, z0, gamma, points)
            prev_tree = tree
        opened = [a for pair in out["init"] + out["rounds"] for a in pair]
        return (len(out["init"]), len(out["rounds"])), [
            mu_witness, Rows(out["sumcheck"], (2, 4)), Rows(out["folding"], (1,)),
            Rows(out["roots"], (8,)), Rows(out["ood"], (4,)), Rows(out["query"], (1,)),
            out["final"], *opened]

    with span("prover.openings.whir"):
        (n_init, n_rounds), (mu_witness, sums, folding, roots, ood, query, final, *opened) = \
            device_segment(transcript, rounds, inputs,
                           key=("whir", params, tuple(widths), tuple((k, tuple(c)) for k, c in shapes)))
    pairs = [opened[2 * t:2 * t + 2] for t in range(n_init + n_rounds)]
    return WhirProof(
        mu_pow_witness=int(mu_witness[0]),
        whir_sumcheck_polys=[tuple(ext.host_values(s)) for s in sums],
        codeword_commits=[tuple(int(v) for v in r) for r in roots],
        ood_values=ext.host_values(ood),
        folding_pow_witnesses=[int(x) for x in folding.reshape(-1)],
        query_phase_pow_witnesses=[int(x) for x in query.reshape(-1)],
        initial_round_opened_rows=[rows for rows, _ in pairs[:n_init]],
        initial_round_merkle_proofs=[paths for _, paths in pairs[:n_init]],
        codeword_opened_values=[rows for rows, _ in pairs[n_init:]],
        codeword_merkle_proofs=[paths for _, paths in pairs[n_init:]],
        final_poly=ext.host_values(final))
