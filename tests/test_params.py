"""SystemParams builders against pcs.md §9.2/§9.3 and constraints.md §9.7."""
import dataclasses
import math

import pytest

from mlx_stark.errors import InvalidInputError
from mlx_stark.params import (
    ListDecoding, LogUpSecurityParameters, SplitUniqueList, SystemParams, UniqueDecoding,
    WhirConfig, WhirRoundConfig, app_params_with_100_bits_security, default_test_params_small,
    hook_params_with_100_bits_security, internal_params_with_100_bits_security,
    leaf_params_with_100_bits_security, log2_pcs_list_size,
    log_up_security_params_baby_bear_100_bits, num_queries, root_params_with_100_bits_security,
    system_params_small,
)


def test_keccakf_app_params_table():
    p = app_params_with_100_bits_security(21)
    assert p.l_skip == 4
    assert p.n_stack == 17
    assert p.log_stacked_height == 21
    assert p.w_stack == 2048
    assert p.log_blowup == 1
    assert p.whir.k == 4 and p.k_whir == 4
    assert p.whir_num_queries() == [193, 88, 81]
    assert p.whir.rounds == (WhirRoundConfig(193), WhirRoundConfig(88), WhirRoundConfig(81))
    assert p.num_whir_rounds == 3
    assert p.num_whir_sumcheck_rounds == 12
    assert p.log_final_poly_len() == 9
    assert p.whir.mu_pow_bits == 15
    assert p.whir.folding_pow_bits == 5
    assert p.whir.query_phase_pow_bits == 20
    assert p.whir.proximity == UniqueDecoding()
    assert p.logup == LogUpSecurityParameters(2013265921, 7, 18)
    assert p.max_constraint_degree == 3


def test_query_arithmetic_of_section_9_3():
    u = UniqueDecoding()
    assert u.max_agreement(1) == 0.75
    assert u.per_query_security_bits(1) == pytest.approx(0.4150374992788438, rel=1e-15)
    assert u.max_agreement(4) == 17 / 32
    assert u.per_query_security_bits(4) == pytest.approx(0.9125371587496606, rel=1e-15)
    assert u.max_agreement(7) == 129 / 256
    assert [num_queries(u, 80, r) for r in (1, 4, 7)] == [193, 88, 81]
    no_pow = log_up_security_params_baby_bear_100_bits(0.0)
    assert no_pow == LogUpSecurityParameters(2013265921, 7, 18)


def test_other_sdk_presets():
    leaf = leaf_params_with_100_bits_security()
    assert leaf.whir_num_queries() == [118, 84, 81] and leaf.logup.pow_bits == 18
    assert (leaf.l_skip, leaf.n_stack, leaf.log_blowup, leaf.w_stack) == (4, 17, 2, 2048)
    internal = internal_params_with_100_bits_security()
    assert internal.whir_num_queries() == [68, 30, 20] and internal.logup.pow_bits == 19
    assert log2_pcs_list_size(ListDecoding(2), 3) == pytest.approx(2.8219, abs=1e-4)
    root = root_params_with_100_bits_security()
    assert root.whir_num_queries() == [61, 30, 20] and root.logup.pow_bits == 18
    assert root.whir.query_phase_pow_bits == 15
    hook = hook_params_with_100_bits_security()
    assert hook.whir_num_queries() == [193, 42, 24] and hook.logup.pow_bits == 18
    for p in (leaf, internal, root, hook):
        assert p.num_whir_rounds == 3 and p.max_constraint_degree == 4


def test_app_params_range():
    for m in range(11, 25):
        p = app_params_with_100_bits_security(m)
        assert p.num_whir_rounds == math.ceil((m - 10) / 4)
        assert 0 <= p.log_final_poly_len() <= 10
    for m in (4, 10):
        with pytest.raises(InvalidInputError):
            app_params_with_100_bits_security(m)  # zero WHIR rounds
    with pytest.raises(InvalidInputError):
        app_params_with_100_bits_security(25)


def test_default_test_params_small():
    p = default_test_params_small()
    assert (p.l_skip, p.n_stack, p.w_stack, p.log_blowup, p.max_constraint_degree) == (2, 8, 4096, 1, 3)
    assert p.logup == LogUpSecurityParameters(1 << 30, 7, 2)
    assert p.whir.k == 3
    assert p.log_final_poly_len() == 10 % 3 == 1
    assert p.num_whir_rounds == 3
    assert (p.whir.query_phase_pow_bits, p.whir.folding_pow_bits, p.whir.mu_pow_bits) == (1, 2, 3)
    assert p.whir.proximity == SplitUniqueList(m=3, list_start_round=1)
    # security 5 − query PoW 1 = 4 bits: round 0 unique at rate 1/2, then list decoding (m = 3).
    expect = [math.ceil(4 / -math.log2(0.75))]
    for log_inv_rate in (3, 5):
        expect.append(math.ceil(4 / -math.log2(math.sqrt(2.0 ** -log_inv_rate) * (1 + 1 / 6))))
    assert p.whir_num_queries() == expect == [10, 4, 2]


def test_new_for_testing():
    p = SystemParams.new_for_testing(10)
    assert (p.l_skip, p.n_stack, p.whir.k, p.max_constraint_degree) == (4, 6, 4, 4)
    assert p.log_final_poly_len() == 2 and p.num_whir_rounds == 2
    assert p == dataclasses.replace(system_params_small(4, 6, 4), max_constraint_degree=4)


def test_params_are_comparable_and_hashable():
    assert app_params_with_100_bits_security(21) == app_params_with_100_bits_security(21)
    assert app_params_with_100_bits_security(21) != app_params_with_100_bits_security(22)
    assert len({default_test_params_small(), default_test_params_small()}) == 1
    assert ListDecoding(1) != ListDecoding(2) and UniqueDecoding() != ListDecoding(1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        default_test_params_small().l_skip = 3


def test_invalid_configurations():
    base = default_test_params_small()
    with pytest.raises(InvalidInputError):  # R = 0
        dataclasses.replace(base, whir=dataclasses.replace(base.whir, rounds=()))
    with pytest.raises(InvalidInputError):  # k·R = 12 > m = 10
        dataclasses.replace(base, whir=dataclasses.replace(base.whir, k=4))
    with pytest.raises(InvalidInputError):
        WhirConfig(k=0, rounds=(WhirRoundConfig(1),), mu_pow_bits=0, query_phase_pow_bits=0,
                   folding_pow_bits=0, proximity=UniqueDecoding())
    with pytest.raises(InvalidInputError):  # list decoding with m = 1 at rate 1/2: no bound
        log2_pcs_list_size(ListDecoding(1), 1)
