"""``ms.prove`` rejects bad inputs with a typed error before any proving work."""
import mlx.core as mx
import numpy as np
import pytest

import mlx_stark as ms
from mlx_stark.airs import (
    FibonacciAir, fib_trace, interactions_fixture_11, mixture_fixture_standard,
    preprocessed_and_cached_fixture, preprocessed_fib_fixture, sum_fixture,
)

SELS8 = [int(i % 2 == 0) for i in range(8)]
from mlx_stark.params import default_test_params_small


class RequiredFib(FibonacciAir):
    is_required = True


@pytest.fixture(scope="module")
def fib_keys():
    return ms.keygen([FibonacciAir(), RequiredFib()], default_test_params_small())


def _fib(n=8):
    trace, pv = fib_trace(0, 1, n)
    return ms.AirInput(trace, public_values=pv)


def _prove_fails(pk, inputs, match):
    with pytest.raises(ms.InvalidInputError, match=match):
        ms.prove(pk, inputs)


def test_valid_input_proves(fib_keys):
    pk, vk = fib_keys
    ms.verify(vk, ms.prove(pk, [None, _fib()]))
    ms.verify(vk, ms.prove(pk, [_fib(4), ms.AirInput(mx.array(fib_trace(0, 1, 8)[0]),
                                                      public_values=fib_trace(0, 1, 8)[1])]))


def test_wrong_number_of_inputs(fib_keys):
    _prove_fails(fib_keys[0], [_fib()], "inputs for 2 AIRs")


def test_required_air_missing(fib_keys):
    _prove_fails(fib_keys[0], [_fib(), None], "required")


def test_width_mismatch(fib_keys):
    trace, pv = fib_trace(0, 1, 8)
    _prove_fails(fib_keys[0], [None, ms.AirInput(np.hstack([trace, trace]), pv)], "width")


def test_height_not_power_of_two(fib_keys):
    trace, pv = fib_trace(0, 1, 8)
    _prove_fails(fib_keys[0], [None, ms.AirInput(trace[:6], pv)], "power of two")


def test_height_above_stacked_height(fib_keys):
    trace, pv = fib_trace(0, 1, 1 << 11)  # stacked height of the small params is 2^10
    _prove_fails(fib_keys[0], [None, ms.AirInput(trace, pv)], "exceeds the stacked height")


def test_non_canonical_values(fib_keys):
    trace, pv = fib_trace(0, 1, 8)
    bad = trace.copy()
    bad[3, 1] = ms.P
    _prove_fails(fib_keys[0], [None, ms.AirInput(bad, pv)], "canonical")


def test_wrong_dtype(fib_keys):
    trace, pv = fib_trace(0, 1, 8)
    _prove_fails(fib_keys[0], [None, ms.AirInput(trace.astype(np.float32), pv)], "dtype")
    _prove_fails(fib_keys[0], [None, ms.AirInput(trace.tolist(), pv)], "array required")


def test_wrong_public_values(fib_keys):
    trace, pv = fib_trace(0, 1, 8)
    _prove_fails(fib_keys[0], [None, ms.AirInput(trace, pv[:2])], "public values")
    _prove_fails(fib_keys[0], [None, ms.AirInput(trace, [0, 1, ms.P])], "canonical")


@pytest.mark.parametrize("pv", [[0, 1, 987.5], [0, 1, "987"], [0, 1, None], [0, 1, True],
                                None, "012", 5])
def test_public_values_must_be_integers(fib_keys, pv):
    trace, _ = fib_trace(0, 1, 8)
    _prove_fails(fib_keys[0], [None, ms.AirInput(trace, pv)], "sequence of integers")


def test_numpy_integer_public_values_prove(fib_keys):
    pk, vk = fib_keys
    trace, pv = fib_trace(0, 1, 8)
    ms.verify(vk, ms.prove(pk, [None, ms.AirInput(trace, np.asarray(pv, dtype=np.uint64))]))


def test_inputs_none(fib_keys):
    _prove_fails(fib_keys[0], None, "one AirInput or None per AIR")


def test_unbalanced_interactions():
    fx = interactions_fixture_11()
    pk, _ = ms.keygen(fx.airs, default_test_params_small())
    inputs = [ms.AirInput(t.common_main.copy(), t.public_values) for t in fx.traces]
    inputs[0].common_main[1, 0] += 1  # sender count 3 -> 4
    _prove_fails(pk, inputs, "unbalanced")


def _expected_violation(air, main, pv, cached=()):
    """What ``check_constraints`` reports: (constraint, row), the reference for the prover."""
    with pytest.raises(ms.ConstraintNotSatisfied) as err:
        ms.check_constraints(air, main, pv, cached=cached)
    return err.value.constraint, err.value.row


@pytest.mark.parametrize("row,col", [(4, 0), (0, 1), (7, 1), (3, 1)])
def test_constraint_violation_is_reported_by_prove(fib_keys, row, col):
    # the prover finds it from round 0's quotient (no extra pass) and names AIR, constraint, row
    pk, _ = fib_keys
    trace, pv = fib_trace(0, 1, 8)
    bad = trace.copy()
    bad[row, col] = (int(bad[row, col]) + 1) % ms.P
    with pytest.raises(ms.ConstraintNotSatisfied) as err:
        ms.prove(pk, [None, ms.AirInput(bad, pv)])
    assert isinstance(err.value, ms.ProverError) and isinstance(err.value, ms.InvalidInputError)
    assert (err.value.constraint, err.value.row) == _expected_violation(FibonacciAir(), bad, pv)
    assert err.value.air_name in str(err.value) and f"row {err.value.row}" in str(err.value)
    assert "Main{0," in err.value.expression


def test_wrong_public_output_is_reported_by_prove(fib_keys):
    pk, _ = fib_keys
    trace, pv = fib_trace(0, 1, 8)
    pv = [pv[0], pv[1], (pv[2] + 1) % ms.P]
    with pytest.raises(ms.ConstraintNotSatisfied) as err:
        ms.prove(pk, [None, ms.AirInput(trace, pv)])
    assert (err.value.constraint, err.value.row) == _expected_violation(FibonacciAir(), trace, pv)


@pytest.mark.parametrize("name", ["sum", "preprocessed_fib", "preprocessed_cached", "mixture"])
def test_constraint_violation_in_other_airs(name):
    # degree 1 (sum: checked on D), preprocessed and cached parts, and an AIR of lower degree
    # than the system's maximum (mixture: fib beside the interaction AIRs)
    fx = {"sum": lambda: sum_fixture(5, 8), "preprocessed_fib": lambda: preprocessed_fib_fixture(7, 3, SELS8),
          "preprocessed_cached": lambda: preprocessed_and_cached_fixture(SELS8, 2),
          "mixture": lambda: mixture_fixture_standard(3)}[name]()
    pk, _ = ms.keygen(fx.airs, default_test_params_small())
    t = fx.traces[0]
    cached = [c.copy() for c in t.cached_mains]
    main = t.common_main.copy()
    if cached:
        cached[-1][2, 0] = (int(cached[-1][2, 0]) + 5) % ms.P
    else:
        main[2, 0] = (int(main[2, 0]) + 5) % ms.P
    inputs = [ms.AirInput(main, t.public_values, cached)] + [
        ms.AirInput(u.common_main, u.public_values, u.cached_mains) for u in fx.traces[1:]]
    with pytest.raises(ms.ConstraintNotSatisfied) as err:
        ms.prove(pk, inputs)
    assert err.value.air_name == t.air.name
    assert (err.value.constraint, err.value.row) == _expected_violation(t.air, main, t.public_values, cached)

