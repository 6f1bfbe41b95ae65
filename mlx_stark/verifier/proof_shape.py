"""Proof-shape checks (CONSTRAINTS.md §8.2, PCS.md §10.3), run before any transcript work.

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
from .batch_constraints import check_constraint_shape
from .pcs_shape import check_pcs_shape

SHAPE = "ProofShape"


@dataclass
class ProofShape:
    """``order``: present AIR ids in trace order (height descending, id ascending);
    ``heights``: their log heights; per commitment of the commitment list (PCS.md §6.1):
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
