"""Verifier of the LogUp GKR fractional sumcheck (constraints.md §8.5), host arithmetic only.

Reduces "the fractions of the ``2^G`` leaves sum to zero" to claims ``p̂(ξ)``, ``q̂(ξ)`` on the
leaves' multilinear extensions at the point ``ξ`` built from the transcript.
"""
from __future__ import annotations

from ..errors import VerificationError
from ..field.host import EF
from ..poly.host import interpolate_at_integers


def _cross_terms(c):
    """``(p0·q1 + p1·q0, q0·q1)``: the parent fraction of the two claimed children."""
    return c.p_xi_0 * c.q_xi_1 + c.p_xi_1 * c.q_xi_0, c.q_xi_0 * c.q_xi_1


def _observe_layer(transcript, c) -> None:
    for v in (c.p_xi_0, c.q_xi_0, c.p_xi_1, c.q_xi_1):
        transcript.observe_ext(v)


def _reduce(c, mu: EF):
    """Linear interpolation of both claim pairs at ``μ``."""
    return c.p_xi_0 + mu * (c.p_xi_1 - c.p_xi_0), c.q_xi_0 + mu * (c.q_xi_1 - c.q_xi_0)


def verify_gkr(proof, transcript, total_rounds: int):
    """§8.5 with ``G = total_rounds ≥ 1``. Returns ``(p̂(ξ), q̂(ξ), ξ)`` (host EF, ``ξ`` of
    length ``G``). Raises :class:`VerificationError` with reasons ``IncorrectLayerCount``,
    ``IncorrectSumcheckPolyCount``, ``IncorrectSubroundCount``, ``ZeroCheckFailed``,
    ``RootConsistencyCheckFailed``, ``LayerConsistencyCheckFailed``."""
    if total_rounds < 1:
        raise VerificationError("IncorrectLayerCount", "GKR needs at least one layer")
    if len(proof.claims_per_layer) != total_rounds:
        raise VerificationError("IncorrectLayerCount",
                                f"expected {total_rounds}, got {len(proof.claims_per_layer)}")
    if len(proof.sumcheck_polys) != total_rounds - 1:
        raise VerificationError("IncorrectSumcheckPolyCount",
                                f"expected {total_rounds - 1}, got {len(proof.sumcheck_polys)}")
    for i, rnd in enumerate(proof.sumcheck_polys):
        if len(rnd) != i + 1 or any(len(triple) != 3 for triple in rnd):
            raise VerificationError("IncorrectSubroundCount", f"GKR round {i + 1}")

    transcript.observe_ext(proof.q0_claim)
    first = proof.claims_per_layer[0]
    _observe_layer(transcript, first)
    p_cross, q_cross = _cross_terms(first)
    if not p_cross.is_zero():
        raise VerificationError("ZeroCheckFailed", "the root numerator is not zero")
    if q_cross != proof.q0_claim:
        raise VerificationError("RootConsistencyCheckFailed")
    mu = transcript.sample_ext()
    numer, denom = _reduce(first, mu)
    xi = [mu]

    for rnd in range(1, total_rounds):
        lam = transcript.sample_ext()
        claim = numer + lam * denom
        eq = EF.one()
        rho = []
        for s, (g1, g2, g3) in enumerate(proof.sumcheck_polys[rnd - 1]):
            for v in (g1, g2, g3):
                transcript.observe_ext(v)
            r = transcript.sample_ext()
            rho.append(r)
            claim = interpolate_at_integers([claim - g1, g1, g2, g3], r)
            x = xi[s]
            eq = eq * (x * r + (1 - x) * (1 - r))
        layer = proof.claims_per_layer[rnd]
        _observe_layer(transcript, layer)
        p_cross, q_cross = _cross_terms(layer)
        if (p_cross + lam * q_cross) * eq != claim:
            raise VerificationError("LayerConsistencyCheckFailed", f"GKR round {rnd}")
        mu = transcript.sample_ext()
        numer, denom = _reduce(layer, mu)
        xi = [mu] + rho
    return numer, denom, xi
