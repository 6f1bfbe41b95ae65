"""Proof-shape checks (constraints.md §8.2, pcs.md §10.3), run before any transcript work.

Besides the lengths of §8.2 and §10.3 these checks validate what a decoded proof guarantees by
construction (canonical field elements, digests of 8 elements, integer arrays), so that a proof
object built in memory cannot make the later stages fail with anything but
:class:`~mlx_stark.errors.VerificationError`: ``VerificationError("ProofShape", detail)`` (or
``EmptyTraces``). One definition per kind of value: base and extension elements
(:func:`~mlx_stark.field.host.is_canonical_f`, :func:`~mlx_stark.field.host.is_canonical_ef`),
sequences (anything with a length), digests, integer arrays.

:func:`verify_proof_shape` also derives what the later stages need from the vk and the proof's
trace heights: the trace order and the commitment list (layouts, roots, rotation flags).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence

import numpy as np

from ..errors import VerificationError
from ..field.bb import P
from ..field.host import is_canonical_ef, is_canonical_f
from ..layout import (
    StackedLayout, commitment_list, n_logup_of, segment_offsets, stacked_layout, trace_order,
    trace_parts,
)
from ..params import SystemParams
from ..proof.codec import DecodeLimits
from ..proof.pcs import StackingProof, WhirProof

SHAPE = "ProofShape"


# ---------------------------------------------------------------- what a valid value is
def _fail(detail: str):
    raise VerificationError(SHAPE, detail)


def _require(ok: bool, detail: str) -> None:
    if not ok:
        _fail(detail)


def _length(seq) -> Optional[int]:
    """``len(seq)``, or ``None`` for something that is not a sequence."""
    try:
        return len(seq)
    except TypeError:
        return None


def _fs(values, n: Optional[int] = None) -> bool:
    """Whether ``values`` is a sequence (of length ``n`` if given) of canonical base elements."""
    length = _length(values)
    return length is not None and n in (None, length) and all(is_canonical_f(v) for v in values)


def _efs(values, n: Optional[int] = None) -> bool:
    """Whether ``values`` is a sequence (of length ``n`` if given) of canonical extension
    elements."""
    length = _length(values)
    return length is not None and n in (None, length) and all(is_canonical_ef(v) for v in values)


def _check_len(seq, expected: int, what: str) -> None:
    n = _length(seq)
    _require(n is not None, f"{what} is not a sequence")
    _require(n == expected, f"{what} has length {n}, expected {expected}")


def _check_efs(values, what: str) -> None:
    _require(_efs(values), f"{what} must hold canonical extension-field elements")


def _check_fs(values, what: str) -> None:
    _require(_fs(values), f"{what} must hold canonical base-field elements")


def _check_pairs(pairs, expected: int, what: str) -> None:
    _check_len(pairs, expected, what)
    for pair in pairs:
        _check_len(pair, 2, f"{what} entry")
        _check_efs(pair, what)


def _check_array(arr, shape: tuple, what: str) -> None:
    if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "ui":
        _fail(f"{what} must be an integer NumPy array")
    if arr.shape != shape:
        _fail(f"{what} has shape {arr.shape}, expected {shape}")
    if arr.size and (arr.min() < 0 or arr.max() >= P):
        _fail(f"{what} holds non-canonical field elements")


# ---------------------------------------------------------------- the whole proof
@dataclass
class ProofShape:
    """``order``: present AIR ids in trace order; ``heights``: their log heights; per
    commitment of the commitment list (pcs.md §6.1): ``layouts``, ``commits`` (roots),
    ``need_rot[c][matrix]``."""

    order: List[int]
    heights: List[int]
    layouts: List[StackedLayout]
    commits: List[tuple]
    need_rot: List[List[bool]]

    @property
    def widths(self) -> List[int]:
        return [lay.width for lay in self.layouts]


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
    _require(_length(proof.trace_vdata) == _length(proof.public_values) == len(per_air),
             "per-AIR data does not match the number of AIRs")
    present = [a for a, tv in enumerate(proof.trace_vdata) if tv is not None]
    if not present:
        raise VerificationError("EmptyTraces")
    for a, (avk, tv, pvs) in enumerate(zip(per_air, proof.trace_vdata, proof.public_values)):
        if tv is None:
            _require(not avk.is_required, f"required AIR {a} is absent")
            _require(not pvs, f"absent AIR {a} has public values")
            continue
        _require(_length(tv.cached_commitments) == avk.num_cached_mains,
                 f"AIR {a}: number of cached commitments")
        _require(type(tv.log_height) is int and 0 <= tv.log_height <= m,
                 f"AIR {a}: log_height {tv.log_height!r} is not an int in [0, {m}]")
        _require(_length(pvs) == avk.params.num_public_values, f"AIR {a}: number of public values")
        _require(_fs(pvs), f"AIR {a}: public values must be canonical field elements")
        _require(all(_fs(c, 8) for c in tv.cached_commitments),
                 f"AIR {a}: a cached commitment is not 8 field elements")
    _require(_fs(proof.common_main_commit, 8), "the common main commitment is not 8 field elements")
    _check_key_size(params, proof)

    order = trace_order({a: proof.trace_vdata[a].log_height for a in present})
    heights = [proof.trace_vdata[a].log_height for a in order]
    check_constraint_shape(params, per_air, proof.gkr_proof, proof.batch_constraint_proof,
                           order, heights)

    def parts(a: int) -> list:
        """AIR ``a``'s parts as ``(width, root)``."""
        width, prep = per_air[a].params.width, per_air[a].preprocessed_data
        return trace_parts((width.common_main, proof.common_main_commit),
                           None if prep is None else (width.preprocessed, prep.commit),
                           zip(width.cached_mains, proof.trace_vdata[a].cached_commitments))

    commits = commitment_list([parts(a) for a in order])
    shape = ProofShape(
        order, heights,
        layouts=[stacked_layout(l, m, [(w, heights[t]) for t, (w, _) in c]) for c in commits],
        commits=[tuple(c[0][1][1]) for c in commits],  # a commitment's first part holds its root
        need_rot=[[per_air[order[t]].params.need_rot for t, _ in c] for c in commits])
    check_pcs_shape(params, shape.widths, proof.stacking_proof, proof.whir_proof)
    return shape


# ---------------------------------------------------------------- the constraint side
def check_constraint_shape(params, per_air, gkr_proof, batch_proof, air_ids: Sequence[int],
                           log_heights: Sequence[int]) -> None:
    """constraints.md §8.2, constraint side: GKR and batch proof lengths against the vk and the
    heights of the traces in trace order."""
    l_skip, d = params.l_skip, params.max_constraint_degree
    nts = [max(h - l_skip, 0) for h in log_heights]
    _, total = segment_offsets(l_skip, [(per_air[a].num_interactions, nt)
                                        for a, nt in zip(air_ids, nts)])
    rounds = l_skip + n_logup_of(l_skip, total) if total else 0
    num_traces = len(air_ids)
    _require(is_canonical_f(gkr_proof.logup_pow_witness), "LogUp witness is not a field element")
    _require(is_canonical_ef(gkr_proof.q0_claim), "q0_claim is not a canonical extension element")
    claims = gkr_proof.claims_per_layer
    _require(_length(claims) == rounds, f"GKR layer claim count, expected {rounds}")
    _require(all(_efs([c.p_xi_0, c.p_xi_1, c.q_xi_0, c.q_xi_1]) for c in claims),
             "GKR layer claims must be extension elements")
    polys = gkr_proof.sumcheck_polys
    _require(_length(polys) == max(rounds - 1, 0), "GKR sumcheck polynomial count")
    for i, rnd in enumerate(polys):
        _require(_length(rnd) == i + 1 and all(_efs(t, 3) for t in rnd),
                 f"GKR round {i + 1} sub-round count")

    bp = batch_proof
    _require(_efs(bp.numerator_term_per_air, num_traces), "numerator terms per trace")
    _require(_efs(bp.denominator_term_per_air, num_traces), "denominator terms per trace")
    _require(_efs(bp.univariate_round_coeffs, (d + 1) * ((1 << l_skip) - 1) + 1),
             "univariate round coefficient count")
    _require(_length(bp.sumcheck_round_polys) == max(nts), "sumcheck round count")
    _require(all(_efs(p, d + 1) for p in bp.sumcheck_round_polys), "sumcheck round polynomial length")
    _require(_length(bp.column_openings) == num_traces, "column openings per trace")
    for a, parts in zip(air_ids, bp.column_openings):
        width = per_air[a].params.width
        k = 2 if per_air[a].params.need_rot else 1
        expected = [w * k for w in trace_parts(width.common_main, width.preprocessed,
                                               width.cached_mains)]
        _require(_length(parts) == len(expected), f"AIR {a}: number of opened parts")
        for part, n in zip(parts, expected):
            _require(_efs(part, n), f"AIR {a}: opened part length")


# ---------------------------------------------------------------- the commitment side
def check_stacking_shape(params: SystemParams, widths, proof: StackingProof) -> None:
    """``proof`` against ``l``, ``n`` and the stacked widths ``W_c`` of the commitment list."""
    if not isinstance(proof, StackingProof):
        _fail("not a StackingProof")
    l, n = params.l_skip, params.n_stack
    _check_len(proof.univariate_round_coeffs, 2 * ((1 << l) - 1) + 1, "univariate_round_coeffs")
    _check_efs(proof.univariate_round_coeffs, "univariate_round_coeffs")
    _check_pairs(proof.sumcheck_round_polys, n, "stacking sumcheck_round_polys")
    _check_len(proof.stacking_openings, len(widths), "stacking_openings")
    for c, (openings, width) in enumerate(zip(proof.stacking_openings, widths)):
        _check_len(openings, width, f"stacking_openings[{c}]")
        _check_efs(openings, f"stacking_openings[{c}]")


def check_whir_shape(params: SystemParams, widths, proof: WhirProof) -> None:
    """``proof`` against the WHIR configuration and the stacked widths ``W_c``."""
    if not isinstance(proof, WhirProof):
        _fail("not a WhirProof")
    k, num_rounds = params.k_whir, params.num_whir_rounds
    steps = k * num_rounds
    queries = params.whir_num_queries()
    _check_fs([proof.mu_pow_witness], "mu_pow_witness")
    _check_pairs(proof.whir_sumcheck_polys, steps, "whir_sumcheck_polys")
    _check_len(proof.folding_pow_witnesses, steps, "folding_pow_witnesses")
    _check_fs(proof.folding_pow_witnesses, "folding_pow_witnesses")
    _check_len(proof.codeword_commits, num_rounds - 1, "codeword_commits")
    for d in proof.codeword_commits:
        _check_len(d, 8, "codeword commit")
        _check_fs(d, "codeword commit")
    _check_len(proof.ood_values, num_rounds - 1, "ood_values")
    _check_efs(proof.ood_values, "ood_values")
    _check_len(proof.query_phase_pow_witnesses, num_rounds, "query_phase_pow_witnesses")
    _check_fs(proof.query_phase_pow_witnesses, "query_phase_pow_witnesses")
    _check_len(proof.final_poly, 1 << params.log_final_poly_len(), "final_poly")
    _check_efs(proof.final_poly, "final_poly")

    depth0 = max(0, params.log_stacked_height + params.log_blowup - k)
    _check_len(proof.initial_round_opened_rows, len(widths), "initial_round_opened_rows")
    _check_len(proof.initial_round_merkle_proofs, len(widths), "initial_round_merkle_proofs")
    for c, width in enumerate(widths):
        _check_array(proof.initial_round_opened_rows[c], (queries[0], 1 << k, width),
                     f"initial_round_opened_rows[{c}]")
        _check_array(proof.initial_round_merkle_proofs[c], (queries[0], depth0, 8),
                     f"initial_round_merkle_proofs[{c}]")
    _check_len(proof.codeword_opened_values, num_rounds - 1, "codeword_opened_values")
    _check_len(proof.codeword_merkle_proofs, num_rounds - 1, "codeword_merkle_proofs")
    for r in range(1, num_rounds):
        _check_array(proof.codeword_opened_values[r - 1], (queries[r], 1 << k, 4),
                     f"codeword_opened_values[{r - 1}]")
        _check_array(proof.codeword_merkle_proofs[r - 1], (queries[r], depth0 - r, 8),
                     f"codeword_merkle_proofs[{r - 1}]")


def check_pcs_shape(params: SystemParams, widths, stacking: StackingProof,
                    whir: WhirProof) -> None:
    """All PCS-side checks of pcs.md §10.3 for a commitment list with stacked widths
    ``widths`` (``W_c`` per commitment, recomputed by the caller from the layouts)."""
    widths = [int(w) for w in widths]
    if sum(widths) > params.w_stack:
        _fail(f"total stacked width {sum(widths)} exceeds w_stack = {params.w_stack}")
    check_stacking_shape(params, widths, stacking)
    check_whir_shape(params, widths, whir)
