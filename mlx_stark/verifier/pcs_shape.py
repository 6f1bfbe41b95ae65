"""Proof-shape checks of the commitment side (pcs.md §10.3), run before any transcript work.

Besides the lengths of §10.3 these checks also validate what a decoded proof guarantees by
construction (canonical field elements, digests of 8 elements, integer arrays), so that a proof
object built in memory cannot make the later stages fail with anything but
:class:`~mlx_stark.errors.VerificationError`.
"""
from __future__ import annotations

import numpy as np

from ..errors import VerificationError
from ..field.bb import P
from ..field.host import is_canonical_ef
from ..params import SystemParams
from ..proof.pcs import StackingProof, WhirProof

REASON = "ProofShape"


def _fail(detail: str):
    raise VerificationError(REASON, detail)


def _check_len(seq, expected: int, what: str) -> None:
    try:
        n = len(seq)
    except TypeError:
        _fail(f"{what} is not a sequence")
    if n != expected:
        _fail(f"{what} has length {n}, expected {expected}")


def _check_ef(values, what: str) -> None:
    if not all(is_canonical_ef(v) for v in values):
        _fail(f"{what} must hold canonical extension-field elements")


def _check_f(values, what: str) -> None:
    if not all(type(v) is int and 0 <= v < P for v in values):
        _fail(f"{what} must hold canonical base-field elements")


def _check_pairs(pairs, expected: int, what: str) -> None:
    _check_len(pairs, expected, what)
    for pair in pairs:
        _check_len(pair, 2, f"{what} entry")
        _check_ef(pair, what)


def _check_array(arr, shape: tuple, what: str) -> None:
    if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "ui":
        _fail(f"{what} must be an integer NumPy array")
    if arr.shape != shape:
        _fail(f"{what} has shape {arr.shape}, expected {shape}")
    if arr.size and (arr.min() < 0 or arr.max() >= P):
        _fail(f"{what} holds non-canonical field elements")


def check_stacking_shape(params: SystemParams, widths, proof: StackingProof) -> None:
    """``proof`` against ``l``, ``n`` and the stacked widths ``W_c`` of the commitment list."""
    if not isinstance(proof, StackingProof):
        _fail("not a StackingProof")
    l, n = params.l_skip, params.n_stack
    _check_len(proof.univariate_round_coeffs, 2 * ((1 << l) - 1) + 1, "univariate_round_coeffs")
    _check_ef(proof.univariate_round_coeffs, "univariate_round_coeffs")
    _check_pairs(proof.sumcheck_round_polys, n, "stacking sumcheck_round_polys")
    _check_len(proof.stacking_openings, len(widths), "stacking_openings")
    for c, (openings, width) in enumerate(zip(proof.stacking_openings, widths)):
        _check_len(openings, width, f"stacking_openings[{c}]")
        _check_ef(openings, f"stacking_openings[{c}]")


def check_whir_shape(params: SystemParams, widths, proof: WhirProof) -> None:
    """``proof`` against the WHIR configuration and the stacked widths ``W_c``."""
    if not isinstance(proof, WhirProof):
        _fail("not a WhirProof")
    k, num_rounds = params.k_whir, params.num_whir_rounds
    steps = k * num_rounds
    queries = params.whir_num_queries()
    _check_f([proof.mu_pow_witness], "mu_pow_witness")
    _check_pairs(proof.whir_sumcheck_polys, steps, "whir_sumcheck_polys")
    _check_len(proof.folding_pow_witnesses, steps, "folding_pow_witnesses")
    _check_f(proof.folding_pow_witnesses, "folding_pow_witnesses")
    _check_len(proof.codeword_commits, num_rounds - 1, "codeword_commits")
    for d in proof.codeword_commits:
        _check_len(d, 8, "codeword commit")
        _check_f(d, "codeword commit")
    _check_len(proof.ood_values, num_rounds - 1, "ood_values")
    _check_ef(proof.ood_values, "ood_values")
    _check_len(proof.query_phase_pow_witnesses, num_rounds, "query_phase_pow_witnesses")
    _check_f(proof.query_phase_pow_witnesses, "query_phase_pow_witnesses")
    _check_len(proof.final_poly, 1 << params.log_final_poly_len(), "final_poly")
    _check_ef(proof.final_poly, "final_poly")

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


def check_pcs_shape(params: SystemParams, widths, stacking: StackingProof, whir: WhirProof) -> None:
    """All PCS-side checks of pcs.md §10.3 for a commitment list with stacked widths
    ``widths`` (``W_c`` per commitment, recomputed by the caller from the layouts)."""
    widths = [int(w) for w in widths]
    if sum(widths) > params.w_stack:
        _fail(f"total stacked width {sum(widths)} exceeds w_stack = {params.w_stack}")
    check_stacking_shape(params, widths, stacking)
    check_whir_shape(params, widths, whir)
