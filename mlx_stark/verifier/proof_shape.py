"""Proof-shape checks (constraints.md §8.2, pcs.md §10.3), run before any transcript work.

:func:`verify_proof_shape` also derives what the later stages need from the vk and the proof's
trace heights: the sorted trace order and the commitment list (layouts, roots, rotation flags).
"""
from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import List

from ..errors import VerificationError
from ..field.bb import P
from ..layout import StackedLayout, stacked_layout
from ..proof.codec import DecodeLimits
from .batch_constraints import check_constraint_shape
from .pcs_shape import check_pcs_shape

SHAPE = "ProofShape"


@dataclass
class ProofShape:
    """``order``: present AIR ids in trace order (height descending, id ascending);
    ``heights``: their log heights; per commitment of the commitment list (pcs.md §6.1):
    ``layouts``, ``commits`` (roots), ``need_rot[c][matrix]``."""

    order: List[int]
    heights: List[int]
    layouts: List[StackedLayout]
    commits: List[tuple]
    need_rot: List[List[bool]]

    @property
    def widths(self) -> List[int]:
        return [lay.width for lay in self.layouts]


def _element(v) -> bool:
    """Whether ``v`` is a canonical field element (an integer in ``[0, p)``, not a bool)."""
    if isinstance(v, bool):
        return False
    try:
        return 0 <= operator.index(v) < P
    except TypeError:
        return False


def _digest(d) -> bool:
    """Whether ``d`` is a commitment: 8 canonical field elements."""
    try:
        return len(d) == 8 and all(_element(v) for v in d)
    except TypeError:
        return False


def decode_limits(vk) -> DecodeLimits:
    """The largest length each prefix of a proof for ``vk`` may have (upper bounds over every
    trace height up to the stacked height; the exact lengths are checked by
    :func:`verify_proof_shape`)."""
    params, per_air = vk.params, vk.per_air
    l, m, k = params.l_skip, params.log_stacked_height, params.k_whir
    widths = [avk.params.width for avk in per_air]
    interactions = sum(avk.num_interactions for avk in per_air)
    return DecodeLimits(
        airs=len(per_air),
        log_height=m,
        cached_commitments=max(len(w.cached_mains) for w in widths),
        public_values=max(avk.params.num_public_values for avk in per_air),
        gkr_layers=(interactions << max(m, l)).bit_length(),  # l_skip + n_logup at most
        batch_coeffs=(params.max_constraint_degree + 1) * ((1 << l) - 1) + 1,
        batch_rounds=params.n_stack,
        batch_round_len=params.max_constraint_degree + 1,
        parts=max(avk.num_parts for avk in per_air),
        part_openings=2 * max(max(w.common_main, w.preprocessed or 0, *w.cached_mains)
                              for w in widths),
        stacking_coeffs=2 * ((1 << l) - 1) + 1,
        stacking_rounds=params.n_stack,
        commits=1 + sum(avk.num_parts - 1 for avk in per_air),
        stacked_width=params.w_stack,
        whir_steps=k * params.num_whir_rounds,
        whir_rounds=params.num_whir_rounds,
        queries=max(params.whir_num_queries()),
        merkle_depth=max(0, m + params.log_blowup - k),
        final_poly=1 << params.log_final_poly_len(),
    )


def _check_key_size(params, proof) -> None:
    """A proof made for another stacked height (a key of another size) is named as such."""
    try:
        n_stack = len(proof.stacking_proof.sumcheck_round_polys)
        heights = sorted({tv.log_height for tv in proof.trace_vdata if tv is not None}, reverse=True)
    except (AttributeError, TypeError):
        return  # left to the shape checks below
    if n_stack != params.n_stack:
        raise VerificationError(SHAPE, (
            f"the proof is for n_stack = {n_stack}, stacked height 2^{params.l_skip + n_stack} "
            f"(trace heights {', '.join(f'2^{h}' for h in heights)}); this verifying key has "
            f"n_stack = {params.n_stack} (2^{params.log_stacked_height}): a key of another size"))


def verify_proof_shape(vk, proof) -> ProofShape:
    """Check every length of ``proof`` against ``vk``; raises ``VerificationError("ProofShape")``
    (or ``EmptyTraces``) on a mismatch."""
    params, per_air = vk.params, vk.per_air
    l, m = params.l_skip, params.log_stacked_height
    if len(proof.trace_vdata) != len(per_air) or len(proof.public_values) != len(per_air):
        raise VerificationError(SHAPE, "per-AIR data does not match the number of AIRs")
    present = [a for a, tv in enumerate(proof.trace_vdata) if tv is not None]
    if not present:
        raise VerificationError("EmptyTraces")
    for a, (avk, tv, pvs) in enumerate(zip(per_air, proof.trace_vdata, proof.public_values)):
        if tv is None:
            if avk.is_required:
                raise VerificationError(SHAPE, f"required AIR {a} is absent")
            if pvs:
                raise VerificationError(SHAPE, f"absent AIR {a} has public values")
            continue
        if len(tv.cached_commitments) != avk.num_cached_mains:
            raise VerificationError(SHAPE, f"AIR {a}: number of cached commitments")
        if type(tv.log_height) is not int or not 0 <= tv.log_height <= m:
            raise VerificationError(SHAPE, f"AIR {a}: log_height {tv.log_height!r} is not an int in [0, {m}]")
        if len(pvs) != avk.params.num_public_values:
            raise VerificationError(SHAPE, f"AIR {a}: number of public values")
        if not all(_element(v) for v in pvs):
            raise VerificationError(SHAPE, f"AIR {a}: public values must be canonical field elements")
        if not all(_digest(c) for c in tv.cached_commitments):
            raise VerificationError(SHAPE, f"AIR {a}: a cached commitment is not 8 field elements")
    if not _digest(proof.common_main_commit):
        raise VerificationError(SHAPE, "the common main commitment is not 8 field elements")
    _check_key_size(params, proof)

    order = sorted(present, key=lambda a: (-proof.trace_vdata[a].log_height, a))
    heights = [proof.trace_vdata[a].log_height for a in order]
    check_constraint_shape(params, per_air, proof.gkr_proof, proof.batch_constraint_proof,
                           order, heights)

    # the commitment list: common main, then per trace: preprocessed?, cached...
    layouts = [stacked_layout(l, m, [(per_air[a].params.width.common_main, h)
                                     for a, h in zip(order, heights)])]
    commits = [tuple(proof.common_main_commit)]
    need_rot = [[per_air[a].params.need_rot for a in order]]
    for a, h in zip(order, heights):
        avk = per_air[a]
        width, rot = avk.params.width, avk.params.need_rot
        if avk.preprocessed_data is not None:
            layouts.append(stacked_layout(l, m, [(width.preprocessed, h)]))
            commits.append(tuple(avk.preprocessed_data.commit))
            need_rot.append([rot])
        for w, c in zip(width.cached_mains, proof.trace_vdata[a].cached_commitments):
            layouts.append(stacked_layout(l, m, [(w, h)]))
            commits.append(tuple(c))
            need_rot.append([rot])
    shape = ProofShape(order, heights, layouts, commits, need_rot)
    check_pcs_shape(params, shape.widths, proof.stacking_proof, proof.whir_proof)
    return shape
