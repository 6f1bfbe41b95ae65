"""The verifier's orchestration (CONSTRAINTS.md §8, PCS.md §7.3, §8.3, §10.3).

Independent of :mod:`mlx_stark.prover`: it reads the verifying key and the proof, replays the
transcript, and raises :class:`~mlx_stark.errors.VerificationError` on any failure — and
nothing else, whatever the proof bytes are.
"""
from __future__ import annotations

from ..errors import VerificationError
from ..field.host import EF
from ..layout import stacked_layout
from ..params import SystemParams
from ..poly.kernels import u_cube
from ..proof.stark import Proof
from ..transcript import Transcript
from .batch_constraints import verify_zerocheck_and_logup
from .pcs_shape import check_pcs_shape
from .stacked_reduction import verify_stacked_reduction
from .whir import verify_whir


def verify(vk, proof, params: SystemParams | None = None) -> None:
    """Verify ``proof`` (a :class:`Proof` or its bytes) against ``vk``.

    ``params``, if given, are the verifier's configured parameters; they must equal the vk's.
    Returns None; raises :class:`VerificationError` (``.reason`` names the failed check).
    """
    try:
        _verify(vk, proof, params)
    except VerificationError:
        raise
    except Exception as e:  # hostile input must only ever produce a verification error
        raise VerificationError("MalformedProof", f"{type(e).__name__}: {e}") from None


def _verify(vk, proof, params) -> None:
    if not isinstance(proof, Proof):
        proof = Proof.from_bytes(proof)
    if params is not None and params != vk.params:
        raise VerificationError("SystemParamsMismatch")
    params = vk.params
    l, m = params.l_skip, params.log_stacked_height
    per_air = vk.per_air
    num_airs = len(per_air)

    # ---- shape of the per-AIR data (CONSTRAINTS §8.2)
    if len(proof.trace_vdata) != num_airs or len(proof.public_values) != num_airs:
        raise VerificationError("InvalidProofShape", "per-AIR data does not match the vk")
    present = [a for a, tv in enumerate(proof.trace_vdata) if tv is not None]
    if not present:
        raise VerificationError("EmptyTraces")
    for a, (avk, tv, pvs) in enumerate(zip(per_air, proof.trace_vdata, proof.public_values)):
        if tv is None:
            if avk.is_required:
                raise VerificationError("InvalidProofShape", f"required AIR {a} is absent")
            if pvs:
                raise VerificationError("InvalidProofShape", f"absent AIR {a} has public values")
            continue
        if len(tv.cached_commitments) != avk.num_cached_mains:
            raise VerificationError("InvalidProofShape", f"AIR {a}: cached commitment count")
        if tv.log_height > m:
            raise VerificationError("InvalidProofShape", f"AIR {a}: log_height above l + n_stack")
        if len(pvs) != avk.params.num_public_values:
            raise VerificationError("InvalidProofShape", f"AIR {a}: public value count")

    # ---- sorted trace order and the commitment list (PCS §6.1)
    order = sorted(present, key=lambda a: (-proof.trace_vdata[a].log_height, a))
    heights = [proof.trace_vdata[a].log_height for a in order]
    layouts = [stacked_layout(l, m, [(per_air[a].params.width.common_main, h)
                                     for a, h in zip(order, heights)])]
    commits = [proof.common_main_commit]
    need_rot = [[per_air[a].params.need_rot for a in order]]
    for a, h in zip(order, heights):
        avk, rot = per_air[a], per_air[a].params.need_rot
        prep = avk.preprocessed_data
        if prep is not None:
            layouts.append(stacked_layout(l, m, [(avk.params.width.preprocessed, h)]))
            commits.append(tuple(prep.commit))
            need_rot.append([rot])
        for w, c in zip(avk.params.width.cached_mains, proof.trace_vdata[a].cached_commitments):
            layouts.append(stacked_layout(l, m, [(w, h)]))
            commits.append(tuple(c))
            need_rot.append([rot])
    widths = [lay.width for lay in layouts]
    check_pcs_shape(params, widths, proof.stacking_proof, proof.whir_proof)

    # ---- trace-height constraints (CONSTRAINTS §8.3)
    for c in vk.trace_height_constraints:
        total = sum(c.coefficients[a] << max(proof.trace_vdata[a].log_height, l) for a in present)
        if total >= c.threshold:
            raise VerificationError("TraceHeightsTooLarge")

    # ---- transcript preamble (CONSTRAINTS §4.2 steps 1-3)
    transcript = Transcript()
    transcript.observe_commit(vk.pre_hash)
    transcript.observe_commit(proof.common_main_commit)
    for a, avk in enumerate(per_air):
        tv = proof.trace_vdata[a]
        if not avk.is_required:
            transcript.observe(1 if tv is not None else 0)
        if tv is None:
            continue
        prep = avk.preprocessed_data
        if prep is not None:
            if l + prep.hypercube_dim != tv.log_height:
                raise VerificationError("PreprocessedTraceHeightMismatch", f"AIR {a}")
            transcript.observe_commit(prep.commit)
        else:
            transcript.observe(tv.log_height)
        for c in tv.cached_commitments:
            transcript.observe_commit(c)
        transcript.observe_many(proof.public_values[a])

    # ---- LogUp GKR + batch constraint sumcheck (CONSTRAINTS §8.4)
    r = verify_zerocheck_and_logup(vk, transcript, proof.gkr_proof, proof.batch_constraint_proof,
                                   order, heights, proof.public_values)

    # ---- column claims per commitment and slice, then the stacked reduction and WHIR
    openings = proof.batch_constraint_proof.column_openings
    claims = [[]]
    for t, a in enumerate(order):
        claims[0] += _pairs(openings[t][0], per_air[a].params.need_rot)
    for t, a in enumerate(order):
        for part in openings[t][1:]:
            claims.append(_pairs(part, per_air[a].params.need_rot))
    u_prism = verify_stacked_reduction(params, transcript, proof.stacking_proof, layouts,
                                       need_rot, r, claims)
    verify_whir(params, transcript, proof.whir_proof, commits, widths,
                proof.stacking_proof.stacking_openings, u_cube(l, u_prism))


def _pairs(values: list, need_rot: bool) -> list:
    """A part's flat opening list as ``(value, rotated value or 0)`` pairs."""
    if need_rot:
        return [(values[2 * i], values[2 * i + 1]) for i in range(len(values) // 2)]
    return [(v, EF.zero()) for v in values]
