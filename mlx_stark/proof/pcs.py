"""Proof objects of the commitment side: :class:`StackingProof` (pcs.md §7) and
:class:`WhirProof` (pcs.md §8), with their byte encoding (pcs.md §10.2).

Host representation: ``F`` values are ints, ``EF`` values :class:`~mlx_stark.field.host.EF`,
digests tuples of 8 ints. The bulky WHIR openings are NumPy ``uint32`` arrays:

- ``initial_round_opened_rows[c]``: ``(Q0, 2^k, W_c)`` — per commit, query, row of the leaf
  group, stacked column;
- ``initial_round_merkle_proofs[c]``: ``(Q0, L0 − k, 8)``;
- ``codeword_opened_values[r − 1]``: ``(Q_r, 2^k, 4)`` (extension values) for rounds
  ``r = 1..R−1``;
- ``codeword_merkle_proofs[r − 1]``: ``(Q_r, L0 − k − r, 8)``.

Decoding follows the reference decoder and additionally rejects the inputs it mishandles
(pcs.md §12): no commitment, zero queries in any round, and Merkle depths that would
underflow. Shapes against the parameters are checked later (``verifier.proof_shape``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InvalidInputError, ProofDecodeError
from ..field.bb import TWO_ADICITY
from .codec import DIGEST_BYTES, DIGEST_LEN, EF_BYTES, Encodable, F_BYTES, Reader, Writer


def _arrays_equal(a: list, b: list) -> bool:
    return len(a) == len(b) and all(
        x.shape == y.shape and np.array_equal(x, y) for x, y in zip(a, b))


@dataclass
class StackingProof(Encodable):
    """Stacked opening reduction proof (pcs.md §10.1).

    - ``univariate_round_coeffs``: ``2·(2^l − 1) + 1`` EF, coefficients of ``s_0`` (constant first);
    - ``sumcheck_round_polys``: ``n_stack`` pairs ``(s_j(1), s_j(2))``;
    - ``stacking_openings``: per commitment, one EF per stacked column.
    """

    univariate_round_coeffs: list
    sumcheck_round_polys: list
    stacking_openings: list

    def encode(self, w: Writer) -> None:
        w.ef_slice(self.univariate_round_coeffs)
        w.usize(len(self.sumcheck_round_polys))
        for pair in self.sumcheck_round_polys:
            if len(pair) != 2:
                raise InvalidInputError("a stacked sumcheck round has exactly 2 values")
            w.ef_iter(pair)
        w.usize(len(self.stacking_openings))
        for openings in self.stacking_openings:
            w.ef_slice(openings)

    @classmethod
    def decode(cls, r: Reader) -> "StackingProof":
        lim = r.limits
        coeffs = r.ef_vec(lim.stacking_coeffs, "stacked univariate coefficients")
        num_rounds = r.length(lim.stacking_rounds, "stacked sumcheck rounds, n_stack (a key of another size?)")
        r.require(num_rounds, 2 * EF_BYTES, "stacked sumcheck rounds")
        rounds = [(r.ef(), r.ef()) for _ in range(num_rounds)]
        num_commits = r.length(lim.commits, "stacking commitments")
        r.require(num_commits, 4, "stacking openings")
        openings = [r.ef_vec(lim.stacked_width, "stacking openings of a commitment")
                    for _ in range(num_commits)]
        return cls(coeffs, rounds, openings)



@dataclass(eq=False)
class WhirProof(Encodable):
    """WHIR opening proof (pcs.md §10.1); array layouts in the module docstring.

    - ``mu_pow_witness``: F;
    - ``whir_sumcheck_polys``: ``k·R`` pairs ``(s(1), s(2))``, all rounds flattened;
    - ``codeword_commits``: ``R − 1`` digests (roots of ``G_1..G_{R−1}``);
    - ``ood_values``: ``R − 1`` EF;
    - ``folding_pow_witnesses``: ``k·R`` F; ``query_phase_pow_witnesses``: ``R`` F;
    - ``final_poly``: ``2^{m − k·R}`` EF coefficients.
    """

    mu_pow_witness: int
    whir_sumcheck_polys: list
    codeword_commits: list
    ood_values: list
    folding_pow_witnesses: list
    query_phase_pow_witnesses: list
    initial_round_opened_rows: list
    initial_round_merkle_proofs: list
    codeword_opened_values: list
    codeword_merkle_proofs: list
    final_poly: list

    def __eq__(self, other) -> bool:
        if not isinstance(other, WhirProof):
            return NotImplemented
        return (self.mu_pow_witness == other.mu_pow_witness
                and list(self.whir_sumcheck_polys) == list(other.whir_sumcheck_polys)
                and [tuple(d) for d in self.codeword_commits] == [tuple(d) for d in other.codeword_commits]
                and list(self.ood_values) == list(other.ood_values)
                and list(self.folding_pow_witnesses) == list(other.folding_pow_witnesses)
                and list(self.query_phase_pow_witnesses) == list(other.query_phase_pow_witnesses)
                and _arrays_equal(self.initial_round_opened_rows, other.initial_round_opened_rows)
                and _arrays_equal(self.initial_round_merkle_proofs, other.initial_round_merkle_proofs)
                and _arrays_equal(self.codeword_opened_values, other.codeword_opened_values)
                and _arrays_equal(self.codeword_merkle_proofs, other.codeword_merkle_proofs)
                and list(self.final_poly) == list(other.final_poly))

    # ------------------------------------------------------------------ encoding
    def encode(self, w: Writer) -> None:
        """pcs.md §10.2 items 1–11. Raises :class:`InvalidInputError` for an object the format
        cannot represent (inconsistent shapes, no commitment, a round without queries)."""
        num_steps = len(self.whir_sumcheck_polys)
        num_rounds = len(self.codeword_commits) + 1
        if num_steps % num_rounds:
            raise InvalidInputError("the number of WHIR sumcheck steps must be a multiple of R")
        k = num_steps // num_rounds
        if (len(self.ood_values) != num_rounds - 1 or len(self.folding_pow_witnesses) != num_steps
                or len(self.query_phase_pow_witnesses) != num_rounds
                or len(self.codeword_opened_values) != num_rounds - 1
                or len(self.codeword_merkle_proofs) != num_rounds - 1):
            raise InvalidInputError("WHIR proof lists have inconsistent lengths")
        rows, paths = self.initial_round_opened_rows, self.initial_round_merkle_proofs
        if not rows or len(paths) != len(rows):
            raise InvalidInputError("a WHIR proof opens at least one commitment")
        rows = [np.asarray(a) for a in rows]
        paths = [np.asarray(a) for a in paths]
        q0 = rows[0].shape[0] if rows[0].ndim == 3 else -1
        depth0 = paths[0].shape[1] if paths[0].ndim == 3 else -1
        for a, b in zip(rows, paths):
            if (a.ndim != 3 or a.shape[:2] != (q0, 1 << k) or b.shape != (q0, depth0, DIGEST_LEN)):
                raise InvalidInputError("initial-round openings have inconsistent shapes")
        if q0 == 0:
            raise InvalidInputError("a WHIR round without queries cannot be encoded")

        w.f(self.mu_pow_witness)
        w.usize(num_steps)
        for pair in self.whir_sumcheck_polys:
            if len(pair) != 2:
                raise InvalidInputError("a WHIR sumcheck step has exactly 2 values")
            w.ef_iter(pair)
        w.digest_slice(self.codeword_commits)
        w.ef_iter(self.ood_values)
        w.f_iter(self.folding_pow_witnesses)
        w.f_iter(self.query_phase_pow_witnesses)
        w.usize(len(rows))
        w.usize(q0)
        w.usize(depth0)
        for a in rows:
            w.usize(a.shape[2])
        for a in rows:
            w.f_array(a)
        for b in paths:
            w.f_array(b)
        values = [np.asarray(v) for v in self.codeword_opened_values]
        for v in values:
            if v.ndim != 3 or v.shape[0] == 0 or v.shape[1:] != (1 << k, 4):
                raise InvalidInputError("codeword openings must be (Q > 0, 2^k, 4) arrays")
            w.usize(v.shape[0])
            w.f_array(v)
        round_paths = [np.asarray(p) for p in self.codeword_merkle_proofs]
        depth1 = round_paths[0].shape[1] if round_paths and round_paths[0].ndim == 3 else 0
        w.usize(depth1)
        for r, (v, p) in enumerate(zip(values, round_paths)):
            if p.shape != (v.shape[0], depth1 - r, DIGEST_LEN):
                raise InvalidInputError("codeword Merkle paths have inconsistent shapes")
            w.f_array(p)
        w.ef_slice(self.final_poly)

    @classmethod
    def decode(cls, r: Reader) -> "WhirProof":
        lim = r.limits
        mu_pow_witness = r.f()
        num_steps = r.length(lim.whir_steps, "WHIR sumcheck steps")
        r.require(num_steps, 2 * EF_BYTES, "WHIR sumcheck steps")
        sumcheck = [(r.ef(), r.ef()) for _ in range(num_steps)]
        commits = r.digest_vec(None if lim.whir_rounds is None else lim.whir_rounds - 1,
                               "WHIR codeword commitments")
        num_rounds = len(commits) + 1
        if num_steps % num_rounds:
            raise ProofDecodeError("the number of WHIR sumcheck steps is not a multiple of R")
        k = num_steps // num_rounds
        if k > TWO_ADICITY:
            raise ProofDecodeError(f"WHIR folding factor {k} exceeds the two-adicity")
        rows_per_query = 1 << k
        ood_values = r.ef_n(num_rounds - 1)
        folding_pow = r.f_n(num_steps)
        query_pow = r.f_n(num_rounds)

        num_commits = r.length(lim.commits, "WHIR opened commitments")
        if num_commits == 0:
            raise ProofDecodeError("a WHIR proof opens at least one commitment")
        q0 = r.length(lim.queries, "WHIR round-0 queries")
        if q0 == 0:
            raise ProofDecodeError("WHIR round 0 has no queries")
        depth0 = r.length(lim.merkle_depth, "WHIR round-0 Merkle depth")
        r.require(num_commits, 4, "stacked widths")
        widths = [r.length(lim.stacked_width, "stacked width") for _ in range(num_commits)]
        per_query = sum(rows_per_query * wc * F_BYTES + depth0 * DIGEST_BYTES for wc in widths)
        if per_query == 0:
            raise ProofDecodeError("round-0 openings carry no data (zero widths and depth)")
        r.require(q0, per_query, "round-0 openings")
        rows = [r.f_array((q0, rows_per_query, wc)) for wc in widths]
        paths = [r.f_array((q0, depth0, DIGEST_LEN)) for _ in widths]

        values = []
        for _ in range(num_rounds - 1):
            q = r.length(lim.queries, "WHIR queries")
            if q == 0:
                raise ProofDecodeError("a WHIR round has no queries")
            values.append(r.f_array((q, rows_per_query, 4)))
        depth1 = r.length(lim.merkle_depth, "WHIR round-1 Merkle depth")
        if num_rounds == 1 and depth1 != 0:
            # no later round reads it: any other value would make the proof malleable
            raise ProofDecodeError(f"single-round WHIR proof with Merkle depth {depth1}, expected 0")
        if num_rounds > 1 and depth1 < num_rounds - 2:
            raise ProofDecodeError(f"round-1 Merkle depth {depth1} underflows over {num_rounds} rounds")
        round_paths = [r.f_array((v.shape[0], depth1 - i, DIGEST_LEN)) for i, v in enumerate(values)]
        final_poly = r.ef_vec(lim.final_poly, "WHIR final polynomial coefficients")
        return cls(mu_pow_witness, sumcheck, commits, ood_values, folding_pow, query_pow,
                   rows, paths, values, round_paths, final_poly)

