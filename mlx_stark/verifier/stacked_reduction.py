"""Verifier of the stacked opening reduction (pcs.md §7.3, verifier steps 1–6).

Host arithmetic (:class:`~mlx_stark.field.host.EF`); the sums over all column slices (one
per stacked column of a trace, 2633 for KeccakfAir) run as NumPy EF arrays. The slice metadata
(commit, stacked column, start row, log height) comes from the commitments'
:class:`~mlx_stark.layout.StackedLayout` s, recomputed by the caller from the vk widths and the
proof's log heights.
"""
from __future__ import annotations

from ..errors import VerificationError
from ..field.bb import P
from ..field.host import EF, ef_array, ef_mul_np, ef_powers_np, ef_sum_np, horner
from ..layout import StackedLayout
from ..params import SystemParams
from ..poly import host
from ..proof.pcs import StackingProof
from ..transcript import Transcript
from .proof_shape import check_stacking_shape


def _slice_kernels(l: int, h: int, u_prism: list, r: list) -> tuple:
    """``(ind·eqP_b, ind·κ_b)`` at ``(u_0; u_1..u_ñ)`` against ``ρ`` for a slice of log height
    ``h`` (pcs.md §7.2); the factor on the stacked-row bits above the slice is separate."""
    n_i = h - l
    nt = max(n_i, 0)
    if n_i >= 0:
        b, rho = l, [r[0]] + list(r[1:1 + nt])
    else:
        b, rho = h, [r[0] ** (1 << -n_i)]
    x = [u_prism[0]] + list(u_prism[1:1 + nt])
    ind = host.ind(l, n_i, u_prism[0])
    return ind * host.eq_prism(b, x, rho), ind * host.kappa(b, x, rho)


def _above_bits_eq(u_prism: list, l: int, nt: int, n: int, row: int) -> EF:
    """``eq((u_{ñ+1}..u_n), bits)`` with ``bits_j = (row >> (l + ñ + j)) & 1``."""
    acc = EF.one()
    for j in range(n - nt):
        u = u_prism[1 + nt + j]
        acc = acc * (u if (row >> (l + nt + j)) & 1 else 1 - u)
    return acc


def verify_stacked_reduction(params: SystemParams, transcript: Transcript, proof: StackingProof,
                             layouts: list, need_rot: list, r: list, claims: list) -> list:
    """Run pcs.md §7.3 on the verifier side; returns ``u_prism = [u_0, u_1, …, u_n]`` (EF).

    - ``layouts``: one :class:`StackedLayout` per commitment, in commitment-list order (6.1);
    - ``need_rot[c][a]``: the ``need_rot`` flag of the trace owning matrix ``a`` of commit ``c``;
    - ``r``: the batch-constraint point ``(r_0, …, r_{n_max})`` (EF), at least
      ``1 + max_i ñ_i`` long;
    - ``claims[c][s]``: ``(v, v_rot)`` (EF) for slice ``s`` of commit ``c`` in layout order
      (``v_rot`` is ignored, i.e. taken as 0, when the slice's trace has no rotation claims).

    The openings ``proof.stacking_openings`` are observed here; WHIR then proves them at
    ``u_cube``. Raises :class:`VerificationError` on any failed check.
    """
    l, n = params.l_skip, params.n_stack
    if not all(isinstance(lay, StackedLayout) and lay.l_skip == l
               and lay.log_stacked_height == params.log_stacked_height for lay in layouts):
        raise VerificationError("StackedLayout", "layouts do not match the parameters")
    widths = [lay.width for lay in layouts]
    check_stacking_shape(params, widths, proof)
    if len(claims) != len(layouts) or len(need_rot) != len(layouts):
        raise VerificationError("StackedClaims", "one claim list and rotation list per commitment")
    slices = []  # (commit, col, row, log_height, rot, v, v_rot) in global slice order
    for c, lay in enumerate(layouts):
        if len(claims[c]) != len(lay.slices) or len(need_rot[c]) != len(lay.matrix_dims):
            raise VerificationError("StackedClaims", f"commit {c}: claims do not match the layout")
        for s, pair in zip(lay.slices, claims[c]):
            rot = bool(need_rot[c][s.matrix])
            if not (isinstance(pair, (tuple, list)) and len(pair) == 2
                    and all(isinstance(x, EF) for x in pair)):
                raise VerificationError("StackedClaims", "a claim is a pair of extension-field elements")
            v, v_rot = pair
            slices.append((c, s.col, s.row, s.log_height, rot, v, v_rot if rot else EF.zero()))
    max_nt = max((max(h - l, 0) for _, _, _, h, _, _, _ in slices), default=0)
    if len(r) < 1 + max_nt or not all(isinstance(x, EF) for x in r):
        raise VerificationError("StackedClaims", f"the point r needs at least {1 + max_nt} EF coordinates")

    # 1-2: batching challenge and the round-0 sum check
    lam = transcript.sample_ext()
    lam_pows = ef_powers_np(lam * lam, len(slices))  # λ^{2i}
    v = ef_array([s[5] for s in slices])
    v_rot = ef_array([s[6] for s in slices])
    lam_np = ef_array([lam])
    expected = ef_sum_np(ef_mul_np(lam_pows, (v + ef_mul_np(lam_np, v_rot)) % P))
    coeffs = proof.univariate_round_coeffs
    domain_sum = EF.zero()
    for j in range(0, len(coeffs), 1 << l):
        domain_sum = domain_sum + coeffs[j]
    if domain_sum * ((1 << l) % P) != expected:
        raise VerificationError("StackedSumMismatch", "round-0 polynomial does not sum to the claims")
    transcript.observe_exts(coeffs)

    # 3-4: evaluation at u_0, then n degree-2 rounds
    u_prism = [transcript.sample_ext()]
    claim = horner(coeffs, u_prism[0])
    for e1, e2 in proof.sumcheck_round_polys:
        transcript.observe_ext(e1)
        transcript.observe_ext(e2)
        u = transcript.sample_ext()
        claim = host.quad(claim - e1, e1, e2, u)
        u_prism.append(u)

    # 5-6: openings and the final weight check
    transcript.observe_exts(o for openings in proof.stacking_openings for o in openings)
    # per slice: (eqP + [rot]·λ·κ) at its height times eq on the row bits above the slice;
    # slices share these factors by (height, rotation, row bits), so each is computed once
    by_height: dict = {}
    factors: dict = {}
    weights = []
    for (_, _, row, h, rot, _, _) in slices:
        nt = max(h - l, 0)
        key = (h, rot, row >> (l + nt))
        if key not in factors:
            if h not in by_height:
                by_height[h] = _slice_kernels(l, h, u_prism, r)
            e_pref, rot_pref = by_height[h]
            prefix = e_pref + lam * rot_pref if rot else e_pref
            factors[key] = prefix * _above_bits_eq(u_prism, l, nt, n, row)
        weights.append(factors[key])
    openings = ef_array([proof.stacking_openings[c][col] for (c, col, *_) in slices])
    total = ef_sum_np(ef_mul_np(ef_mul_np(lam_pows, ef_array(weights)), openings))
    if total != claim:
        raise VerificationError("StackedFinalMismatch", "openings do not match the reduced claim")
    return u_prism

