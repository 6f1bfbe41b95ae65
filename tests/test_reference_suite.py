"""The shared backend test suite of stark-backend v2.0.1 (crates/backend-tests/src/lib.rs,
``backend_test_suite!``), instantiated for this prover: one test per reference test, with the
reference's name, parameters and expected outcome. Positive tests prove and verify; negative
tests expect the prover to fail where the reference's prover fails (unbalanced interactions:
``NonZeroRootSum``) and the verifier to reject where it rejects. Random parameters and
matrices come from the reference's seeded RNGs (:class:`tests.reference_helpers.RustStdRng`). The
constraint-stage decomposition tests run the stage's own tests (test_batch_constraints.py,
test_logup_gkr.py) under the reference's names.

Then end-to-end tests beyond the reference: proof bytes round trip, determinism, malformed
proof shapes, tampering with public values, trace cells and proof bytes, and a KeccakfAir proof.
"""
from itertools import cycle, islice
from pathlib import Path

import mlx.core as mx
import numpy as np
import pytest

import mlx_stark as ms
from mlx_stark.verifier.proof_shape import decode_limits, verify_proof_shape
from mlx_stark.airs import (
    DummyInteractionAir,
    FibonacciAir,
    FibonacciSelectorAir,
    cached_fixture_11,
    fib_fixture,
    interactions_fixture_11,
    mixture_fixture_standard,
    preprocessed_and_cached_fixture,
    preprocessed_fib_fixture,
    self_interaction_fixture,
)
from mlx_stark.airs.keccakf import KeccakfAir, keccakf_trace, random_keccakf_inputs
from mlx_stark.airs.test_airs import dummy_interaction_trace
from mlx_stark.errors import InvalidInputError, ProverError, VerificationError
from mlx_stark.field.bb import P, two_adic_generator
from mlx_stark.field.host import EF, inv
from mlx_stark.keygen import LinearConstraint
from mlx_stark.params import (
    SplitUniqueList,
    SystemParams,
    UniqueDecoding,
    WhirConfig,
    WhirRoundConfig,
    default_test_params_small,
    log_up_security_params_baby_bear_100_bits,
    system_params_small,
    whir_config,
    whir_config_small,
)
from mlx_stark.prover.stacked_pcs import stacked_commit
from mlx_stark.verifier.whir import binary_k_fold
from . import test_batch_constraints as batch_tests
from . import test_logup_gkr as gkr_tests
from .reference_helpers import (
    RustStdRng,
    air_inputs,
    keygen_and_prove,
    prove_and_verify,
    random_z,
    rows,
    run_test,
    stacking_openings,
    whir_prove,
    whir_verify,
)

PROVER_FAILURE = (ProverError, InvalidInputError)


def alternating_sels(log_height: int) -> list:
    return [int(i % 2 == 0) for i in range(1 << log_height)]


def expect_prover_failure(airs, inputs, params) -> None:
    pk, _ = ms.keygen(airs, params)
    with pytest.raises(PROVER_FAILURE):
        ms.prove(pk, inputs)


def expect_rejection(pk, vk, inputs) -> None:
    """Either the prover refuses the inputs or the verifier rejects its proof."""
    try:
        proof = ms.prove(pk, inputs)
    except PROVER_FAILURE:
        return
    with pytest.raises(VerificationError):
        ms.verify(vk, proof)


# =========================================================================== 1. proof shape
def test_proof_shape_verifier():
    params = default_test_params_small()
    for fx in (fib_fixture(0, 1, 1 << 3), interactions_fixture_11(), cached_fixture_11(),
               preprocessed_fib_fixture(0, 1, alternating_sels(3))):
        _, vk, proof = keygen_and_prove(fx, params)
        verify_proof_shape(vk, proof)


def test_proof_shape_verifier_rng_system_params():
    rng = RustStdRng(bytes([228] * 32))
    for _ in range(10):
        l_skip = rng.random_range(1, 2)
        n_stack = rng.random_range(8, 9)
        k_whir = rng.random_range(1, 4)
        log_blowup = rng.random_range(1, 3)
        num_whir_rounds = rng.random_range(1, 2)
        rounds = [WhirRoundConfig(rng.random_range(1, 10)) for _ in range(num_whir_rounds)]
        whir = WhirConfig(k=k_whir, rounds=rounds, mu_pow_bits=1, query_phase_pow_bits=1,
                          folding_pow_bits=1, proximity=SplitUniqueList(m=3, list_start_round=1))
        params = SystemParams(l_skip=l_skip, n_stack=n_stack, w_stack=16, log_blowup=log_blowup,
                              whir=whir, logup=log_up_security_params_baby_bear_100_bits(0.0),
                              max_constraint_degree=3)
        _, vk, proof = keygen_and_prove(interactions_fixture_11(), params)
        verify_proof_shape(vk, proof)


# =========================================================================== 2. simple end to end
def test_interactions_single_sender_receiver_happy():
    prove_and_verify(interactions_fixture_11(), default_test_params_small())


def test_single_cached_trace_stark():
    prove_and_verify(cached_fixture_11(), default_test_params_small())


def single_preprocessed_trace_stark(log_trace_degree: int) -> None:
    fx = preprocessed_fib_fixture(0, 1, alternating_sels(log_trace_degree))
    prove_and_verify(fx, default_test_params_small())


def test_single_preprocessed_trace_stark():
    single_preprocessed_trace_stark(10)


def test_single_preprocessed_trace_stark_log_height_gt_l_skip():
    single_preprocessed_trace_stark(3)


def test_single_preprocessed_trace_stark_log_height_eq_l_skip():
    single_preprocessed_trace_stark(2)


def test_single_preprocessed_trace_stark_log_height_lt_l_skip():
    single_preprocessed_trace_stark(1)


def test_single_preprocessed_trace_stark_log_height_zero():
    single_preprocessed_trace_stark(0)


def multi_interaction_traces_stark(log_trace_degree: int) -> None:
    fx = self_interaction_fixture([4, 7, 8, 8, 10, 100], log_trace_degree, 4)
    prove_and_verify(fx, default_test_params_small())


def test_multi_interaction_traces_stark():
    multi_interaction_traces_stark(10)


def test_multi_interaction_traces_stark_log_height_gt_l_skip():
    multi_interaction_traces_stark(3)


def test_multi_interaction_traces_stark_log_height_eq_l_skip():
    multi_interaction_traces_stark(2)


def test_multi_interaction_traces_stark_log_height_lt_l_skip():
    multi_interaction_traces_stark(1)


def test_multi_interaction_traces_stark_log_height_zero():
    multi_interaction_traces_stark(0)


def mixture_traces_stark(log_trace_degree: int) -> None:
    prove_and_verify(mixture_fixture_standard(log_trace_degree), default_test_params_small())


def test_mixture_traces_stark():
    mixture_traces_stark(10)


def test_mixture_traces_stark_log_height_gt_l_skip():
    mixture_traces_stark(3)


def test_mixture_traces_stark_log_height_eq_l_skip():
    mixture_traces_stark(2)


def test_mixture_traces_stark_log_height_lt_l_skip():
    mixture_traces_stark(1)


def test_mixture_traces_stark_log_height_zero():
    mixture_traces_stark(0)


def test_matrix_stacking_overflow():
    fx = self_interaction_fixture([4, 7, 8, 8, 10], 1, 4)
    prove_and_verify(fx, system_params_small(3, 5, 3))


# =========================================================================== 3. round trips
def fib_air_roundtrip(l_skip: int, log_trace_degree: int) -> None:
    n_stack, log_blowup = 8, 1
    whir = whir_config(log_blowup, l_skip + n_stack, k=4, log_final_poly_len=4,
                       query_phase_pow_bits=1, folding_pow_bits=11, mu_pow_bits=10,
                       proximity=UniqueDecoding(), security_bits=80)
    params = SystemParams(l_skip=l_skip, n_stack=n_stack, w_stack=8, log_blowup=log_blowup,
                          whir=whir, logup=log_up_security_params_baby_bear_100_bits(0.0),
                          max_constraint_degree=3)
    prove_and_verify(fib_fixture(0, 1, 1 << log_trace_degree), params)


def test_fib_air_roundtrip():
    fib_air_roundtrip(2, 10)


def test_fib_air_roundtrip_log_trace_degree_1_lt_l_skip_2():
    fib_air_roundtrip(2, 1)


def test_fib_air_roundtrip_log_trace_degree_0_lt_l_skip_2():
    fib_air_roundtrip(2, 0)


def test_fib_air_roundtrip_log_trace_degree_2_lt_l_skip_3():
    fib_air_roundtrip(3, 2)


def test_fib_air_roundtrip_large_l_skip():
    fib_air_roundtrip(6, 10)


def test_dummy_interactions_roundtrip_2_8_3():
    prove_and_verify(interactions_fixture_11(), system_params_small(2, 8, 3))


def test_dummy_interactions_roundtrip_5_5_4():
    prove_and_verify(interactions_fixture_11(), system_params_small(5, 5, 4))


def test_cached_trace_roundtrip_2_8_3():
    prove_and_verify(cached_fixture_11(), system_params_small(2, 8, 3))


def test_cached_trace_roundtrip_5_5_4():
    prove_and_verify(cached_fixture_11(), system_params_small(5, 5, 4))


def test_cached_trace_roundtrip_5_8_3():
    prove_and_verify(cached_fixture_11(), system_params_small(5, 8, 3))


def test_cached_trace_roundtrip_6_7_3():
    prove_and_verify(cached_fixture_11(), system_params_small(6, 7, 3))


def preprocessed_trace_roundtrip(l_skip: int, n_stack: int, k_whir: int) -> None:
    fx = preprocessed_fib_fixture(0, 1, alternating_sels(8))
    prove_and_verify(fx, system_params_small(l_skip, n_stack, k_whir))


def test_preprocessed_trace_roundtrip_2_8_3():
    preprocessed_trace_roundtrip(2, 8, 3)


def test_preprocessed_trace_roundtrip_5_5_4():
    preprocessed_trace_roundtrip(5, 5, 4)


def preprocessed_and_cached_trace_roundtrip(l_skip, n_stack, k_whir, num_cached_parts) -> None:
    fx = preprocessed_and_cached_fixture(alternating_sels(8), num_cached_parts)
    prove_and_verify(fx, system_params_small(l_skip, n_stack, k_whir))


def test_preprocessed_and_cached_trace_roundtrip_2_8_3_1():
    preprocessed_and_cached_trace_roundtrip(2, 8, 3, 1)


def test_preprocessed_and_cached_trace_roundtrip_2_8_3_2():
    preprocessed_and_cached_trace_roundtrip(2, 8, 3, 2)


def test_preprocessed_and_cached_trace_roundtrip_2_8_3_3():
    preprocessed_and_cached_trace_roundtrip(2, 8, 3, 3)


def test_preprocessed_and_cached_trace_roundtrip_5_5_4_1():
    preprocessed_and_cached_trace_roundtrip(5, 5, 4, 1)


def test_preprocessed_and_cached_trace_roundtrip_5_5_4_2():
    preprocessed_and_cached_trace_roundtrip(5, 5, 4, 2)


def test_preprocessed_and_cached_trace_roundtrip_5_5_4_3():
    preprocessed_and_cached_trace_roundtrip(5, 5, 4, 3)


# =========================================================================== 4. decomposition
# The constraint-stage decomposition tests live with the stage's own tests; these run them
# under the reference's names.
def test_batch_sumcheck_zero_interactions():
    batch_tests.test_batch_sumcheck_zero_interactions()


def test_batch_sumcheck_zero_interactions_log_height_eq_l_skip():
    batch_tests.test_batch_sumcheck_zero_interactions_log_height_eq_l_skip()


def test_batch_sumcheck_zero_interactions_log_height_lt_l_skip():
    batch_tests.test_batch_sumcheck_zero_interactions_log_height_lt_l_skip()


def test_batch_sumcheck_zero_interactions_log_height_zero():
    batch_tests.test_batch_sumcheck_zero_interactions_log_height_zero()


def test_batch_sumcheck_zero_interactions_malleable_q0():
    batch_tests.test_batch_sumcheck_zero_interactions_malleable_q0()


def test_gkr_verify_zero_interactions():
    gkr_tests.test_gkr_verify_zero_interactions()


def test_batch_constraints_with_interactions():
    batch_tests.test_batch_constraints_with_interactions()


# =========================================================================== 5. custom contexts
def single_fib_and_dummy_trace_stark(log_trace_degree: int) -> None:
    """The InteractionsFixture11 AIRs with their rows repeated 4 times (heights 16 and 32),
    plus a Fibonacci AIR of height ``2^(log_trace_degree + 1)``."""
    sender_height = 2 * (1 << 3)
    sender = rows(islice(cycle([0, 1, 3, 5, 7, 4, 546, 889]), 2 * sender_height), 2)
    receiver = rows(islice(cycle([1, 5, 3, 4, 4, 4, 2, 5, 0, 123, 545, 889, 1, 889, 0, 456]),
                           4 * sender_height), 2)
    fib = fib_fixture(0, 1, 2 * (1 << log_trace_degree))
    airs = interactions_fixture_11().airs + fib.airs
    pk, _ = ms.keygen(airs, default_test_params_small())
    proof = ms.prove(pk, [ms.AirInput(sender), ms.AirInput(receiver)] + air_inputs(fib))
    ms.verify(pk.get_vk(), proof)


def test_single_fib_and_dummy_trace_stark():
    single_fib_and_dummy_trace_stark(3)


def test_single_fib_and_dummy_trace_stark_log_height_eq_l_skip():
    single_fib_and_dummy_trace_stark(2)


def test_single_fib_and_dummy_trace_stark_log_height_lt_l_skip():
    single_fib_and_dummy_trace_stark(1)


def test_single_fib_and_dummy_trace_stark_log_height_zero():
    single_fib_and_dummy_trace_stark(0)


# =========================================================================== 6. interactions
def dummy_input(count, fields, partitioned=False):
    """``DummyInteractionChip::load_data`` + ``generate_proving_ctx``."""
    common, cached = dummy_interaction_trace(count, fields, partitioned=partitioned)
    return ms.AirInput(common, (), cached)


def test_optional_air():
    params = default_test_params_small()
    airs = [FibonacciAir(), DummyInteractionAir(1, True, 0),
            DummyInteractionAir(1, True, 0, partitioned=True), DummyInteractionAir(1, False, 0)]
    pk, vk = ms.keygen(airs, params)
    fields = [[1], [2], [3]]

    # Case 1: all AIRs present
    (fib,) = air_inputs(fib_fixture(0, 1, 8))
    proof = ms.prove(pk, [fib, dummy_input([1, 2, 4], fields), dummy_input([1, 2, 8], fields, True),
                          dummy_input([2, 4, 12], fields)])
    ms.verify(vk, proof)

    # Case 2: only send_chip1 and recv_chip1 present (fib and send_chip2 omitted)
    proof = ms.prove(pk, [None, dummy_input([1, 2, 4], fields), None, dummy_input([1, 2, 4], fields)])
    ms.verify(vk, proof)

    # Case 3: unbalanced interactions, the prover must fail
    with pytest.raises(PROVER_FAILURE):
        ms.prove(pk, [None, None, None, dummy_input([1, 2, 4], fields)])


def test_vkey_methods():
    airs = [FibonacciAir(), DummyInteractionAir(1, True, 0), DummyInteractionAir(1, False, 0)]
    _, vk = ms.keygen(airs, default_test_params_small())
    assert len(vk.per_air) == 3
    assert [a.params.width.main_width for a in vk.per_air] == [2, 2, 2]
    assert [a.num_interactions for a in vk.per_air] == [0, 1, 1]


def test_interaction_trace_height_constraints():
    params = default_test_params_small()
    airs = [FibonacciSelectorAir(alternating_sels(3), enable_interactions=True),
            DummyInteractionAir(1, True, 0, count_weight=3),
            DummyInteractionAir(1, True, 0, count_weight=1),
            DummyInteractionAir(1, True, 1, count_weight=7)]
    _, vk = ms.keygen(airs, params)
    assert vk.trace_height_constraints == [
        LinearConstraint((0, 3, 1, 0), P),
        LinearConstraint((0, 0, 0, 7), P),
        LinearConstraint((1, 1, 1, 1), params.logup.max_interaction_count),
    ]


def test_trace_height_constraints_implied_removal():
    params = default_test_params_small()
    airs = [FibonacciSelectorAir(alternating_sels(3), enable_interactions=True),
            DummyInteractionAir(1, True, 0), DummyInteractionAir(1, True, 1)]
    _, vk = ms.keygen(airs, params)
    assert vk.trace_height_constraints == [
        LinearConstraint((1, 1, 1), params.logup.max_interaction_count)]


SEND = DummyInteractionAir(1, True, 0)
RECEIVE = DummyInteractionAir(1, False, 0)
RECEIVER_ROWS = [1, 5, 3, 4, 4, 4, 2, 5, 0, 123, 545, 889, 1, 889, 0, 456]


def test_interaction_multi_rows_neg():
    sender = rows([0, 1, 3, 5, 7, 4, 546, 0], 2)
    # count of field 0 is 545 != 546 in the sender
    receiver = rows([1, 5, 3, 4, 4, 4, 2, 5, 0, 123, 545, 0, 0, 0, 0, 456], 2)
    expect_prover_failure([SEND, RECEIVE], [ms.AirInput(sender), ms.AirInput(receiver)],
                          default_test_params_small())


def test_interaction_all_zero_sender():
    run_test([SEND], [rows([0, 1, 0, 5, 0, 4, 0, 889], 2)], default_test_params_small())


def test_interaction_multi_senders():
    run_test([SEND, SEND, RECEIVE],
             [rows([0, 1, 3, 5, 6, 4, 333, 889], 2), rows([1, 4, 213, 889], 2),
              rows(RECEIVER_ROWS, 2)],
             default_test_params_small())


def test_interaction_multi_senders_neg():
    # sender 1 sends field 4 with count 5 instead of 6, so the sums do not balance
    inputs = [ms.AirInput(rows([0, 1, 3, 5, 5, 4, 333, 889], 2)), ms.AirInput(rows([1, 4, 213, 889], 2)),
              ms.AirInput(rows(RECEIVER_ROWS, 2))]
    expect_prover_failure([SEND, SEND, RECEIVE], inputs, default_test_params_small())


def test_interaction_multi_sender_receiver():
    run_test([SEND, SEND, RECEIVE, RECEIVE],
             [rows([0, 1, 3, 5, 6, 4, 333, 889], 2), rows([1, 4, 213, 889], 2),
              rows([1, 5, 3, 4, 4, 4, 2, 5, 0, 123, 545, 889, 0, 289, 0, 456], 2),
              rows([1, 889], 2)],
             default_test_params_small())


def test_interaction_cached_trace_neg():
    params = default_test_params_small()
    sender = DummyInteractionAir(2, True, 0)
    receiver = DummyInteractionAir(2, False, 0, partitioned=True)
    sender_input = dummy_input([0, 7, 3, 546], [[1, 1], [4, 2], [5, 1], [889, 4]])
    # field [889, 4] has count 545 != 546 in the sender ([889, 10] replaces [889, 4])
    receiver_input = dummy_input(
        [1, 3, 4, 2, 0, 545, 1, 0],
        [[5, 1], [4, 2], [4, 2], [5, 1], [123, 3], [889, 4], [889, 10], [456, 5]], partitioned=True)
    pk, vk = ms.keygen([receiver, sender], params)
    expect_rejection(pk, vk, [receiver_input, sender_input])


# =========================================================================== 7. WHIR (PCS level)
def test_fold_single():
    rng = RustStdRng.seed_from_u64(0)
    a0, a1, alpha = (EF.lift(rng.next_u32() % P) for _ in range(3))
    x = rng.next_u32() % P
    result = binary_k_fold([a0, a1], [alpha], x)
    assert result == a0 + (alpha - x) * (a0 - a1) * inv(2 * x % P)


def test_fold_double():
    rng = RustStdRng.seed_from_u64(0)
    a0, a1, a2, a3, alpha0, alpha1 = (EF.lift(rng.next_u32() % P) for _ in range(6))
    x = rng.next_u32() % P
    result = binary_k_fold([a0, a1, a2, a3], [alpha0, alpha1], x)
    tw = two_adic_generator(2)
    twx = tw * x % P
    b0 = a0 + (alpha0 - x) * (a0 - a2) * inv(2 * x % P)
    b1 = a1 + (alpha0 - twx) * (a1 - a3) * inv(2 * twx % P)
    x2 = x * x % P
    assert result == b0 + (alpha1 - x2) * (b0 - b1) * inv(2 * x2 % P)


def whir_single_fib(n_stack: int, log_blowup: int, k_whir: int, log_final_poly_len: int) -> None:
    """``run_whir_fib_test``: commit a Fibonacci trace of the full stacked height, open every
    stacked column at a random point with WHIR and verify."""
    l_skip = 2
    whir = whir_config_small(log_blowup, l_skip + n_stack, k_whir, log_final_poly_len)
    params = SystemParams(l_skip=l_skip, n_stack=n_stack, w_stack=8, log_blowup=log_blowup,
                          whir=whir, logup=log_up_security_params_baby_bear_100_bits(0.0),
                          max_constraint_degree=3)
    fib = fib_fixture(0, 1, 1 << params.log_stacked_height)
    pcs = [stacked_commit(params, [mx.array(fib.traces[0].common_main)])]
    z_prism, z_cube = random_z(params, RustStdRng.seed_from_u64(0))
    proof = whir_prove(params, pcs, z_cube)
    openings = [stacking_openings(params, z_prism, p.matrix) for p in pcs]
    whir_verify(params, proof, pcs, openings, z_cube)


def test_whir_single_fib_0_1_1_0():
    whir_single_fib(0, 1, 1, 0)


def test_whir_single_fib_2_1_1_2():
    whir_single_fib(2, 1, 1, 2)


def test_whir_single_fib_2_1_2_0():
    whir_single_fib(2, 1, 2, 0)


def test_whir_single_fib_2_1_3_1():
    whir_single_fib(2, 1, 3, 1)


def test_whir_single_fib_2_1_4_0():
    whir_single_fib(2, 1, 4, 0)


def test_whir_single_fib_2_2_4_0():
    whir_single_fib(2, 2, 4, 0)


def whir_multiple_commitments_setup():
    """Five random full-height matrices of 3..12 columns (RNG seed 42, as the reference
    draws them), each committed alone, a WHIR proof of all their stacked columns at a random
    point, and the honest openings."""
    params = SystemParams(
        l_skip=3, n_stack=3, w_stack=64, log_blowup=1,
        whir=WhirConfig(k=2, rounds=[WhirRoundConfig(6), WhirRoundConfig(5)], mu_pow_bits=1,
                        query_phase_pow_bits=1, folding_pow_bits=1, proximity=UniqueDecoding()),
        logup=log_up_security_params_baby_bear_100_bits(0.0), max_constraint_degree=3)
    rng = RustStdRng.seed_from_u64(42)
    n_rows = 1 << params.log_stacked_height
    pcs = []
    for _ in range(5):
        n_cols = rng.next_u64() % 10 + 3
        data = [rng.next_u64() % P for _ in range(n_rows * n_cols)]
        matrix = np.array(data, dtype=np.uint32).reshape(n_cols, n_rows).T  # column-major data
        pcs.append(stacked_commit(params, [mx.array(matrix)]))
    z_prism, z_cube = random_z(params, rng)
    proof = whir_prove(params, pcs, z_cube)
    openings = [stacking_openings(params, z_prism, p.matrix) for p in pcs]
    return params, pcs, z_cube, proof, openings


def test_whir_multiple_commitments():
    params, pcs, z_cube, proof, openings = whir_multiple_commitments_setup()
    whir_verify(params, proof, pcs, openings, z_cube)


def test_whir_multiple_commitments_negative():
    params, pcs, z_cube, proof, openings = whir_multiple_commitments_setup()
    openings[1][2] = EF.one()
    with pytest.raises(VerificationError) as err:
        whir_verify(params, proof, pcs, openings, z_cube)
    assert err.value.reason == "WhirFinalMismatch"  # the reference's FinalPolyConstraint


# =========================================================================== beyond the reference
def test_reference_names_all_present():
    """Every test of the reference suite has a test of the same name here."""
    listing = Path(__file__).resolve().parents[1] / "docs" / "protocol" / "reference_suite.txt"
    names = [n.strip() for n in listing.read_text().split() if n.strip()]
    assert len(names) == 70
    missing = [n for n in names if not callable(globals().get(n))]
    assert not missing, missing


def test_proof_bytes_round_trip():
    _, vk, proof = keygen_and_prove(mixture_fixture_standard(2), default_test_params_small())
    blob = proof.to_bytes()
    decoded = ms.Proof.from_bytes(blob)
    assert decoded.to_bytes() == blob
    ms.verify(vk, decoded)
    ms.verify(vk, blob)


def test_proving_is_deterministic():
    fx = mixture_fixture_standard(1)
    params = default_test_params_small()
    pk1, vk1, proof1 = keygen_and_prove(fx, params)
    pk2, vk2, proof2 = keygen_and_prove(fx, params)
    assert vk1.pre_hash == vk2.pre_hash
    assert proof1.to_bytes() == proof2.to_bytes()
    assert ms.prove(pk1, air_inputs(fx)).to_bytes() == proof1.to_bytes()


def test_tampered_public_values_rejected():
    fx = fib_fixture(0, 1, 1 << 4)
    pk, vk, proof = keygen_and_prove(fx, default_test_params_small())
    blob = proof.to_bytes()
    for j in range(3):
        forged = ms.Proof.from_bytes(blob)
        forged.public_values[0][j] = (forged.public_values[0][j] + 1) % P
        with pytest.raises(VerificationError):
            ms.verify(vk, forged)
    # a prover given a wrong public value cannot make an accepted proof either
    for j in range(3):
        pvs = list(fx.traces[0].public_values)
        pvs[j] = (pvs[j] + 1) % P
        expect_rejection(pk, vk, [ms.AirInput(fx.traces[0].common_main, pvs)])


@pytest.mark.parametrize("row,col", [(0, 0), (0, 1), (5, 0), (9, 1), (15, 1)])
def test_tampered_fib_trace_cell_rejected(row, col):
    fx = fib_fixture(0, 1, 1 << 4)
    pk, vk = ms.keygen(fx.airs, default_test_params_small())
    trace = fx.traces[0].common_main.copy()
    trace[row, col] = (int(trace[row, col]) + 1) % P
    expect_rejection(pk, vk, [ms.AirInput(trace, fx.traces[0].public_values)])


@pytest.mark.parametrize("part", [0, 1, 2])
def test_tampered_cached_and_common_cells_rejected(part):
    """One cell of the common main (part 0) or of cached main 0 or 1 (parts 1, 2) of
    PreprocessedCachedAir."""
    fx = preprocessed_and_cached_fixture(alternating_sels(3), 2)
    pk, vk = ms.keygen(fx.airs, default_test_params_small())
    t = fx.traces[0]
    mats = [t.common_main.copy()] + [c.copy() for c in t.cached_mains]
    mats[part][3, 0] = (int(mats[part][3, 0]) + 1) % P
    expect_rejection(pk, vk, [ms.AirInput(mats[0], (), mats[1:])])


def test_tampered_proof_bytes_rejected():
    _, vk, proof = keygen_and_prove(cached_fixture_11(), default_test_params_small())
    blob = proof.to_bytes()
    for pos in list(range(0, len(blob), max(1, len(blob) // 40))) + [len(blob) - 1]:
        forged = bytearray(blob)
        forged[pos] ^= 0x01
        with pytest.raises(VerificationError):
            ms.verify(vk, bytes(forged))
    for cut in (blob[:-1], blob + b"\x00", b""):
        with pytest.raises(VerificationError):
            ms.verify(vk, cut)


SHAPE_MUTATIONS = {
    "final_poly": lambda p: p.whir_proof.final_poly.pop(),
    "stacking_opening": lambda p: p.stacking_proof.stacking_openings[0].pop(),
    "whir_initial_query": lambda p: setattr(p.whir_proof, "initial_round_opened_rows", [
        rows_c[:-1] for rows_c in p.whir_proof.initial_round_opened_rows]),
    "gkr_layer": lambda p: p.gkr_proof.claims_per_layer.pop(),
    "batch_round": lambda p: p.batch_constraint_proof.sumcheck_round_polys.append(
        list(p.batch_constraint_proof.sumcheck_round_polys[-1])),
    "column_opening": lambda p: p.batch_constraint_proof.column_openings[0][0].pop(),
    "public_value": lambda p: p.public_values[0].append(0),
    "cached_commitment": lambda p: p.trace_vdata[0].cached_commitments.pop(),
    "log_height": lambda p: setattr(p.trace_vdata[0], "log_height", 11),
}


@pytest.mark.parametrize("mutation", sorted(SHAPE_MUTATIONS))
def test_malformed_proof_shapes_rejected(mutation):
    """Shapes the reference's ``verify_proof_shape`` rejects: the shape rules flag them and the
    verifier rejects the proof."""
    _, vk, proof = keygen_and_prove(cached_fixture_11(), default_test_params_small())
    verify_proof_shape(vk, proof)
    forged = ms.Proof.from_bytes(proof.to_bytes())
    SHAPE_MUTATIONS[mutation](forged)
    with pytest.raises(VerificationError):
        verify_proof_shape(vk, forged)
    with pytest.raises(VerificationError):
        ms.verify(vk, forged)


def _set_first(seq, value):
    """``seq`` (a tuple or list) with its first entry replaced, same type."""
    return type(seq)([value, *list(seq)[1:]])


def _ef_above_p() -> EF:
    """An EF whose first coefficient is p: no decoder builds it, code in memory can."""
    e = EF(0, 1, 2, 3)
    e.c = (P, 1, 2, 3)
    return e


IN_MEMORY_MUTATIONS = {
    "log_height_none": (lambda: fib_fixture(0, 1, 1 << 3), lambda p: setattr(p.trace_vdata[0], "log_height", None)),
    "log_height_float": (lambda: fib_fixture(0, 1, 1 << 3), lambda p: setattr(p.trace_vdata[0], "log_height", 3.0)),
    "whir_final_poly_ef_above_p": (lambda: fib_fixture(0, 1, 1 << 3), lambda p: p.whir_proof.final_poly.__setitem__(0, _ef_above_p())),
    "gkr_q0_claim_ef_above_p": (lambda: fib_fixture(0, 1, 1 << 3), lambda p: setattr(p.gkr_proof, "q0_claim", _ef_above_p())),
    "batch_round_ef_above_p": (lambda: fib_fixture(0, 1, 1 << 3), lambda p: p.batch_constraint_proof.univariate_round_coeffs.__setitem__(0, _ef_above_p())),
    "stacking_opening_ef_above_p": (lambda: fib_fixture(0, 1, 1 << 3), lambda p: p.stacking_proof.stacking_openings[0].__setitem__(0, _ef_above_p())),
    "public_value_above_p": (lambda: fib_fixture(0, 1, 1 << 3), lambda p: p.public_values[0].__setitem__(0, P)),
    "public_value_not_int": (lambda: fib_fixture(0, 1, 1 << 3), lambda p: p.public_values[0].__setitem__(0, "1")),
    "common_commit_short": (cached_fixture_11, lambda p: setattr(p, "common_main_commit", p.common_main_commit[:7])),
    "common_commit_above_p": (cached_fixture_11, lambda p: setattr(
        p, "common_main_commit", _set_first(p.common_main_commit, P))),
    "cached_commit_above_p": (cached_fixture_11, lambda p: p.trace_vdata[0].cached_commitments.__setitem__(
        0, _set_first(p.trace_vdata[0].cached_commitments[0], P + 5))),
}


@pytest.mark.parametrize("mutation", sorted(IN_MEMORY_MUTATIONS))
def test_malformed_in_memory_proofs_rejected(mutation):
    """Values no byte encoding can carry (they would not decode), in a Proof object built in
    memory: the shape check names them, and the verifier rejects the proof."""
    make, mutate = IN_MEMORY_MUTATIONS[mutation]
    _, vk, proof = keygen_and_prove(make(), default_test_params_small())
    forged = ms.Proof.from_bytes(proof.to_bytes())
    mutate(forged)
    with pytest.raises(VerificationError) as err:
        verify_proof_shape(vk, forged)
    assert err.value.reason == "ProofShape"
    with pytest.raises(VerificationError):
        ms.verify(vk, forged)


def test_proof_rejected_under_another_key():
    fx = fib_fixture(0, 1, 1 << 3)
    _, _, proof = keygen_and_prove(fx, default_test_params_small())
    _, other_params_vk = ms.keygen(fx.airs, system_params_small(2, 8, 4))
    with pytest.raises(VerificationError):
        ms.verify(other_params_vk, proof)
    _, two_air_vk = ms.keygen(fx.airs + fx.airs, default_test_params_small())
    with pytest.raises(VerificationError):
        ms.verify(two_air_vk, proof)


def test_proof_for_another_stacked_height_names_its_size():
    fx = fib_fixture(0, 1, 1 << 3)
    _, vk, proof = keygen_and_prove(fx, default_test_params_small())  # stacked height 2^10
    _, smaller_vk = ms.keygen(fx.airs, system_params_small(2, 6, 3))
    _, larger_vk = ms.keygen(fx.airs, system_params_small(2, 9, 3))
    with pytest.raises(VerificationError, match="the proof has 8, the verifying key allows at most 6"):
        ms.verify(smaller_vk, proof.to_bytes())
    with pytest.raises(VerificationError, match="the proof is for n_stack = 8, stacked height 2\\^10"):
        ms.verify(larger_vk, proof.to_bytes())


def test_oversized_well_formed_proof_rejected_while_decoding():
    """A length above what the key allows fails as the decoder reads it, before the values
    behind it are decoded."""
    fx = fib_fixture(0, 1, 1 << 3)
    _, vk, proof = keygen_and_prove(fx, default_test_params_small())
    forged = ms.Proof.from_bytes(proof.to_bytes())
    forged.whir_proof.final_poly += [EF(1)] * 50_000
    blob = forged.to_bytes()
    assert ms.Proof.from_bytes(blob) == forged  # well-formed without the key's limits
    with pytest.raises(ms.ProofDecodeError, match="final polynomial.*allows at most"):
        ms.Proof.from_bytes(blob, decode_limits(vk))
    with pytest.raises(ms.ProofDecodeError, match="allows at most"):
        ms.verify(vk, blob)
    forged = ms.Proof.from_bytes(proof.to_bytes())
    forged.public_values[0] += [0] * 10
    with pytest.raises(ms.ProofDecodeError, match="public values of an AIR: the proof has 13"):
        ms.verify(vk, forged.to_bytes())


@pytest.mark.slow
def test_keccakf_eight_permutations():
    """KeccakfAir (2633 columns, 3182 constraints of degree 3) on 8 permutations: 192 rows padded
    to 256, within ``SystemParams.new_for_testing(14)`` (``l = 4``, stacked height 2^14)."""
    trace = keccakf_trace(random_keccakf_inputs(8, seed=7))
    assert trace.shape == (256, 2633)
    params = SystemParams.new_for_testing(14)
    pk, vk = ms.keygen([KeccakfAir()], params)
    proof = ms.prove(pk, [ms.AirInput(trace)])
    ms.verify(vk, proof.to_bytes())
    tampered = trace.copy()
    tampered[30, 100] ^= 1
    expect_rejection(pk, vk, [ms.AirInput(tampered)])
