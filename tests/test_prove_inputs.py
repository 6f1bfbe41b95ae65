"""``ms.prove`` rejects bad inputs with a typed error before any proving work."""
import mlx.core as mx
import numpy as np
import pytest

import mlx_stark as ms
from mlx_stark.airs import FibonacciAir, fib_trace, interactions_fixture_11
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


def test_constraint_violation_never_verifies(fib_keys):
    # the prover need not detect it (the reference does not), but no proof can verify
    pk, vk = fib_keys
    trace, pv = fib_trace(0, 1, 8)
    bad = trace.copy()
    bad[4, 0] = (int(bad[4, 0]) + 1) % ms.P
    try:
        proof = ms.prove(pk, [None, ms.AirInput(bad, pv)])
    except ms.ProverError:
        return
    with pytest.raises(ms.VerificationError):
        ms.verify(vk, proof)
