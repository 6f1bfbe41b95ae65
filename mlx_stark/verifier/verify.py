"""The verifier's orchestration (constraints.md §8, pcs.md §7.3, §8.3, §10.3).

Independent of :mod:`mlx_stark.prover`: it reads the verifying key and the proof, replays the
transcript, and raises :class:`~mlx_stark.errors.VerificationError` on any failure — and
nothing else, whatever the proof bytes are.
"""
from __future__ import annotations

from ..errors import VerificationError
from ..layout import commitment_list, trace_height_violations
from ..params import SystemParams
from ..poly.host import u_cube
from ..proof.stark import Proof
from ..transcript import Transcript
from .batch_constraints import opening_pairs, verify_zerocheck_and_logup
from .proof_shape import decode_limits, verify_proof_shape
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
        proof = Proof.from_bytes(proof, decode_limits(vk))
    if params is not None and params != vk.params:
        raise VerificationError("SystemParamsMismatch")
    params = vk.params
    l = params.l_skip
    shape = verify_proof_shape(vk, proof)

    # ---- trace-height constraints (constraints.md §8.3)
    if trace_height_violations(vk.trace_height_constraints, l, dict(zip(shape.order, shape.heights))):
        raise VerificationError("TraceHeightsTooLarge")

    # ---- transcript preamble (constraints.md §4.2 steps 1-3)
    transcript = Transcript()
    transcript.observe_commit(vk.pre_hash)
    transcript.observe_commit(proof.common_main_commit)
    for a, avk in enumerate(vk.per_air):
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

    # ---- LogUp GKR + batch constraint sumcheck (constraints.md §8.4)
    r = verify_zerocheck_and_logup(vk, transcript, proof.gkr_proof, proof.batch_constraint_proof,
                                   shape.order, shape.heights, proof.public_values)

    # ---- column claims per commitment and slice, then the stacked reduction and WHIR
    rots = [vk.per_air[a].params.need_rot for a in shape.order]
    claims = [[pair for t, part in c for pair in opening_pairs(part, rots[t])]
              for c in commitment_list(proof.batch_constraint_proof.column_openings)]
    u_prism = verify_stacked_reduction(params, transcript, proof.stacking_proof, shape.layouts,
                                       shape.need_rot, r, claims)
    verify_whir(params, transcript, proof.whir_proof, shape.commits, shape.widths,
                proof.stacking_proof.stacking_openings, u_cube(l, u_prism))
