"""Hostile proof bytes: random flips, truncations and extensions of a serialized proof make
``verify`` / ``Proof.from_bytes`` raise only ``VerificationError`` (or its codec subclass)."""
import dataclasses

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mlx_stark as ms
from mlx_stark.airs import interactions_fixture_11
from mlx_stark.params import default_test_params_small


@pytest.fixture(scope="module")
def honest():
    # proof-of-work bits raised to 10 so that a flipped witness is valid only with prob. 2^-10
    # (test parameters use 1-3 bits, where a flipped witness is often still valid)
    base = default_test_params_small()
    params = dataclasses.replace(
        base,
        whir=dataclasses.replace(base.whir, mu_pow_bits=10, folding_pow_bits=10,
                                 query_phase_pow_bits=10),
        logup=dataclasses.replace(base.logup, pow_bits=10),
    )
    fx = interactions_fixture_11()
    pk, vk = ms.keygen(fx.airs, params)
    proof = ms.prove(pk, [ms.AirInput(t.common_main, t.public_values, t.cached_mains)
                          for t in fx.traces])
    blob = proof.to_bytes()
    ms.verify(vk, blob)
    return vk, blob


SETTINGS = settings(max_examples=60, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


def _rejected(vk, data: bytes) -> None:
    with pytest.raises(ms.VerificationError):
        ms.verify(vk, data)


@SETTINGS
@given(st.data())
def test_byte_flips_rejected(honest, data):
    vk, blob = honest
    pos = data.draw(st.integers(0, len(blob) - 1))
    mask = data.draw(st.integers(1, 255))
    forged = bytearray(blob)
    forged[pos] ^= mask
    _rejected(vk, bytes(forged))


@SETTINGS
@given(st.data())
def test_truncations_and_extensions_rejected(honest, data):
    vk, blob = honest
    cut = data.draw(st.integers(0, len(blob) - 1))
    _rejected(vk, blob[:cut])
    extra = data.draw(st.binary(min_size=1, max_size=64))
    _rejected(vk, blob + extra)
    with pytest.raises(ms.ProofDecodeError):
        ms.Proof.from_bytes(blob + extra)


@SETTINGS
@given(st.binary(max_size=256))
def test_garbage_rejected(honest, junk):
    vk, _ = honest
    _rejected(vk, junk)
