"""Proof objects of the constraint side: :class:`GkrLayerClaims`, :class:`GkrProof` (LogUp GKR,
constraints.md §5) and :class:`BatchConstraintProof` (batch constraint sumcheck, §6), with their
byte encoding (§7.2).

Host representation: ``F`` values are ints, ``EF`` values :class:`~mlx_stark.field.host.EF`.
Lengths are not checked against the parameters here (that is the verifier's proof-shape check);
the encoder only refuses objects the format cannot represent.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List

from ..errors import InvalidInputError
from ..field.host import EF
from .codec import EF_BYTES, Encodable, Reader, Writer


@dataclass
class GkrLayerClaims:
    """Claims of one GKR layer ``j``: the MLE of layer ``j`` at ``(b, ρ)`` for child selector
    ``b ∈ {0, 1}`` (field order = encoding order; the transcript order is p0, q0, p1, q1)."""

    p_xi_0: EF
    p_xi_1: EF
    q_xi_0: EF
    q_xi_1: EF

    def observe(self, transcript) -> None:
        """Observe in transcript order ``p_xi_0, q_xi_0, p_xi_1, q_xi_1`` (§5.4)."""
        transcript.observe_exts((self.p_xi_0, self.q_xi_0, self.p_xi_1, self.q_xi_1))


@dataclass
class GkrProof(Encodable):
    """LogUp GKR proof (§5.4).

    - ``logup_pow_witness``: F (the LogUp proof of work, §5.0);
    - ``q0_claim``: EF, the root denominator (1 when there are no interactions);
    - ``claims_per_layer``: ``G`` :class:`GkrLayerClaims` (layers ``1..G``; empty without
      interactions);
    - ``sumcheck_polys``: ``G − 1`` entries, entry ``i`` holding ``i + 1`` triples
      ``(g(1), g(2), g(3))`` of EF.
    """

    logup_pow_witness: int
    q0_claim: EF
    claims_per_layer: List[GkrLayerClaims] = field(default_factory=list)
    sumcheck_polys: List[List[tuple]] = field(default_factory=list)

    def encode(self, w: Writer) -> None:
        layers = len(self.claims_per_layer)
        if len(self.sumcheck_polys) != max(layers - 1, 0) or any(
                len(rnd) != i + 1 or any(len(t) != 3 for t in rnd)
                for i, rnd in enumerate(self.sumcheck_polys)):
            raise InvalidInputError("GKR sumcheck polynomials do not match the number of layers")
        w.f(self.logup_pow_witness)
        w.ef(self.q0_claim)
        w.usize(layers)
        for c in self.claims_per_layer:
            w.ef_iter((c.p_xi_0, c.p_xi_1, c.q_xi_0, c.q_xi_1))
        for rnd in self.sumcheck_polys:
            for triple in rnd:
                w.ef_iter(triple)

    @classmethod
    def decode(cls, r: Reader) -> "GkrProof":
        witness = r.f()
        q0_claim = r.ef()
        layers = r.length(r.limits.gkr_layers, "GKR layers")
        r.require(layers, 4 * EF_BYTES, "GKR layer claims")
        claims = [GkrLayerClaims(*r.ef_n(4)) for _ in range(layers)]
        # round i has i + 1 triples: (G − 1)·G / 2 triples in all
        r.require(layers * max(layers - 1, 0) // 2, 3 * EF_BYTES, "GKR sumcheck polynomials")
        polys = [[tuple(r.ef_n(3)) for _ in range(i + 1)] for i in range(max(layers - 1, 0))]
        return cls(witness, q0_claim, claims, polys)



@dataclass
class BatchConstraintProof(Encodable):
    """Batch constraint sumcheck proof (§6), per trace in sorted trace order (§0.4).

    - ``numerator_term_per_air``, ``denominator_term_per_air``: ``T`` EF each (``S^p_t``,
      ``S^q_t``, §6.3);
    - ``univariate_round_coeffs``: ``(d+1)(2^l − 1) + 1`` EF, coefficients of ``s_0``
      (constant term first);
    - ``sumcheck_round_polys``: ``n_max`` lists of ``d + 1`` EF (``s_j(1..d+1)``);
    - ``column_openings[t][part]``: flat EF lists per part in proof order ``[common,
      preprocessed?, cached…]``, ``[v_0, rot_0, v_1, rot_1, …]`` when the AIR needs rotations,
      else ``[v_0, v_1, …]``.
    """

    numerator_term_per_air: List[EF]
    denominator_term_per_air: List[EF]
    univariate_round_coeffs: List[EF]
    sumcheck_round_polys: List[List[EF]]
    column_openings: List[List[List[EF]]]

    def encode(self, w: Writer) -> None:
        num_traces = len(self.numerator_term_per_air)
        if len(self.denominator_term_per_air) != num_traces or len(self.column_openings) != num_traces:
            raise InvalidInputError("batch constraint proof: per-trace lists differ in length")
        rounds = self.sumcheck_round_polys
        if rounds and any(len(p) != len(rounds[0]) for p in rounds):
            raise InvalidInputError("batch constraint proof: rounds of different lengths")
        w.ef_slice(self.numerator_term_per_air)
        w.ef_iter(self.denominator_term_per_air)
        w.ef_slice(self.univariate_round_coeffs)
        w.usize(len(rounds))
        if rounds:
            w.usize(len(rounds[0]))
            for p in rounds:
                w.ef_iter(p)
        for parts in self.column_openings:
            w.usize(len(parts))
            for values in parts:
                w.ef_slice(values)

    @classmethod
    def decode(cls, r: Reader) -> "BatchConstraintProof":
        lim = r.limits
        numer = r.ef_vec(lim.airs, "traces")
        num_traces = len(numer)
        denom = r.ef_n(num_traces)
        coeffs = r.ef_vec(lim.batch_coeffs, "batch constraint univariate coefficients")
        n_max = r.length(lim.batch_rounds, "batch constraint sumcheck rounds")
        rounds = []
        if n_max > 0:
            per_round = r.length(lim.batch_round_len, "batch constraint round polynomial length")
            r.require(n_max * per_round, EF_BYTES, "sumcheck round polynomials")
            if per_round == 0:
                # zero-length rounds consume no bytes; bound their count by the input size
                r.require(n_max, 1, "sumcheck rounds")
            rounds = [r.ef_n(per_round) for _ in range(n_max)]
        openings = []
        for _ in range(num_traces):
            num_parts = r.length(lim.parts, "opened parts of a trace")
            r.require(num_parts, 4, "column opening parts")
            openings.append([r.ef_vec(lim.part_openings, "column openings of a part")
                             for _ in range(num_parts)])
        return cls(numer, denom, coeffs, rounds, openings)

