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
from ..poly import dft, eq_table, eval_univariate, ext_powers, fold_lowest, mobeq_table, mobius, zeta
from ..proof.pcs import WhirProof
from ..tracing import span
from ..transcript import Transcript, device_segment
from .stacked_reduction import fold_product_round, product_round_values, weighted_sum

# Queries whose base-field eq tables are built at once in the weight update (memory bound).
_QUERY_TABLE_ELEMS = 1 << 22


def _query_weights(points: list, coeffs: mx.array, d: int) -> mx.array:
    """``Σ_q coeffs[q]·E(z_q)`` with ``E(z)[b] = eq((z, z^2, …, z^{2^{d−1}}), bits(b))``.

    ``points``: base-field ints ``z_q``; ``coeffs``: ``(Q, 4)`` uint32. Returns ``(2^d, 4)``.
    The tables are base-field (the points are), built by doubling for a chunk of queries at
    once and contracted with the coefficients by :func:`weighted_sum`. The native kernel
    (``sumcheck.query_weights``, one launch) runs instead where the device has one."""
    kernel = custom_kernels.native("sumcheck.query_weights")
    if kernel is not None:
        return kernel(points, coeffs, d)
    chunk = max(1, _QUERY_TABLE_ELEMS >> d)
    out = ext.zeros((1 << d,))
    for lo in range(0, len(points), chunk):
        zs = points[lo:lo + chunk]
        table = mx.ones((len(zs), 1), dtype=U32)
        for _ in range(d):
            z = mx.array(zs, dtype=U32)[:, None]
            one_minus = mx.array([(1 - x) % P for x in zs], dtype=U32)[:, None]
            table = mx.concatenate([bb.mul(table, one_minus), bb.mul(table, z)], axis=1)
            zs = [x * x % P for x in zs]
        part = weighted_sum(table[None], coeffs[lo:lo + chunk])  # (1, 2^d, 4)
        out = ext.add(out, part[0])
        if len(points) > chunk:
            mx.async_eval(out)  # free this chunk's tables before building the next ones
    return out


def prove_whir(params: SystemParams, transcript: Transcript, pcs_datas: list, u_cube: list) -> WhirProof:
    """pcs.md §8.2, starting right after the stacking openings were observed.

    - ``pcs_datas``: the commitment list's
      :class:`~mlx_stark.prover.stacked_pcs.StackedPcsData` (``msgs`` ``(2^m, W_c)`` uint32 —
      the multilinear coefficient tables of the stacked columns — and ``tree`` are read);
    - ``u_cube``: ``m`` host EF (:func:`mlx_stark.poly.kernels.u_cube` of the stacked
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

    with span("prover.openings.whir") as sp:
        with span("prover.openings.whir.grind"):
            mu_pow_witness = transcript.grind(whir.mu_pow_bits)
        mu = transcript.sample_ext()
        widths = [pcs.msgs.shape[1] for pcs in pcs_datas]
        mu_pows = ext_powers(mu, sum(widths))
        with span("prover.openings.whir.combine") as sp_comb:
            coeffs, offset = ext.zeros((1 << m,)), 0
            for pcs, width in zip(pcs_datas, widths):
                part = weighted_sum(pcs.msgs[:, :, None], mu_pows[offset:offset + width])  # (2^m, 1, 4)
                coeffs = ext.add(coeffs, part[:, 0])
                offset += width
            sp_comb.produced(coeffs)
        with span("prover.openings.whir.init") as sp_init:
            f = zeta(coeffs)
            w = mobeq_table(u_cube)
            sp_init.produced(f, w)

        sumcheck, folding_pow, query_pow = [], [], []
        commits, ood_values, final_poly = [], [], []
        init_rows, init_paths, round_values, round_paths = [], [], [], []
        prev_tree = None
        for i in range(num_rounds):
            log_size = m + params.log_blowup - i  # L_i

            # k sumcheck rounds (each with its folding proof of work) on a device transcript:
            # no read-back until the messages and witnesses come back together
            def sumcheck_rounds(dt):
                g, v = f, w
                sums = product_round_values(g, v)
                messages, witnesses = [], []
                for j in range(k):
                    dt.observe(sums)  # s(1) then s(2), c0..c3 each
                    witnesses.append(dt.grind(whir.folding_pow_bits))
                    alpha = dt.sample_ext()
                    messages.append(sums)
                    if j + 1 < k:  # the next round's sums in the same pass
                        g, v, sums = fold_product_round(g, v, alpha)
                    else:
                        g, v = fold_lowest(g, alpha), fold_lowest(v, alpha)
                return (g, v), [*messages, *witnesses]

            with span("prover.openings.whir.sumcheck") as sp_sc:
                (f, w), host = device_segment(transcript, sumcheck_rounds)
                sp_sc.produced(f, w)
            sumcheck += [tuple(ext.host_values(m)) for m in host[:k]]
            folding_pow += [int(x[0]) for x in host[k:]]
            d = m - k * (i + 1)
            with span("prover.openings.whir.mobius") as sp_mob:
                g_hat = mobius(f)
                sp_mob.produced(g_hat)
            if i < num_rounds - 1:
                with span("prover.openings.whir.commit"):
                    size = 1 << (log_size - 1)
                    padded = mx.concatenate([g_hat, ext.zeros((size - (1 << d),))], axis=0)
                    tree = MerkleTree.commit(dft(padded, axis=0), k)
                commits.append(tree.root)
                transcript.observe_commit(tree.root)
                z0 = transcript.sample_ext()
                with span("prover.openings.whir.ood"):
                    (y0,) = ext.to_host(eval_univariate(g_hat, z0))
                ood_values.append(y0)
                transcript.observe_ext(y0)
            else:
                tree = None
                final_poly = ext.to_host(g_hat)
                transcript.observe_array(g_hat.reshape(-1))  # 2^d coefficients, c0..c3 each
            with span("prover.openings.whir.grind"):
                query_pow.append(transcript.grind(whir.query_phase_pow_bits))
            idxs = [transcript.sample_bits(log_size - k) for _ in range(queries[i])]
            with span("prover.openings.whir.open"):
                if i == 0:
                    for pcs in pcs_datas:
                        rows, paths = pcs.tree.open_many(idxs)
                        init_rows.append(rows)
                        init_paths.append(paths)
                else:
                    values, paths = prev_tree.open_many(idxs)
                    round_values.append(values)
                    round_paths.append(paths)
            gamma = transcript.sample_ext()
            if i < num_rounds - 1:
                omega = two_adic_generator(log_size - k)
                points = [pow(omega, idx, P) for idx in idxs]
                gamma_pows = ext_powers(gamma, len(points) + 2)
                ood_pows = []
                x = z0
                for _ in range(d):
                    ood_pows.append(x)
                    x = x * x
                with span("prover.openings.whir.weights") as sp_w:
                    w = ext.add(w, ext.add(ext.mul(eq_table(ood_pows), ext.constant(gamma)),
                                           _query_weights(points, gamma_pows[2:], d)))
                    sp_w.produced(w)
            prev_tree = tree
        sp.produced(f, w)
    return WhirProof(
        mu_pow_witness=mu_pow_witness, whir_sumcheck_polys=sumcheck, codeword_commits=commits,
        ood_values=ood_values, folding_pow_witnesses=folding_pow, query_phase_pow_witnesses=query_pow,
        initial_round_opened_rows=init_rows, initial_round_merkle_proofs=init_paths,
        codeword_opened_values=round_values, codeword_merkle_proofs=round_paths,
        final_poly=final_poly)
