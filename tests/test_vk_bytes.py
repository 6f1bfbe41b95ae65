"""Verifying keys as bytes (``to_bytes`` / ``from_bytes``) and the proving key rebuilt from the
AIRs plus a verifying key."""
import struct
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mlx_stark as ms
from mlx_stark.air.dag import DagNode, NodeKind, SymbolicConstraintsDag, TraceWidth
from mlx_stark.airs import (cached_fixture_11, fib_fixture, interactions_fixture_11,
                            preprocessed_and_cached_fixture)
from mlx_stark.airs.test_airs import FibonacciAir
from mlx_stark.errors import InvalidInputError, KeyDecodeError
from mlx_stark.keygen import (VK_MAGIC, MultiStarkProvingKey, MultiStarkVerifyingKey,
                              MultiStarkVerifyingKey0)
from mlx_stark.params import (app_params_with_100_bits_security, default_test_params_small,
                              internal_params_with_100_bits_security)

FIXTURES = {
    "fib": lambda: fib_fixture(0, 1, 8),
    "interactions": interactions_fixture_11,
    "cached": cached_fixture_11,
    "preprocessed_and_cached": lambda: preprocessed_and_cached_fixture([1, 0, 1, 1, 0, 0, 1, 0], 2),
}


def _inputs(fx):
    return [None if t is None else ms.AirInput(t.common_main, t.public_values, t.cached_mains)
            for t in fx.traces]


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_round_trip_and_proving_from_decoded_keys(name):
    fx = FIXTURES[name]()
    pk, vk = ms.keygen(fx.airs, default_test_params_small())
    blob = vk.to_bytes()
    assert blob.startswith(VK_MAGIC)
    vk2 = MultiStarkVerifyingKey.from_bytes(blob)
    assert vk2.pre_hash == vk.pre_hash and vk2.to_bytes() == blob and vk2.inner == vk.inner
    pk2 = MultiStarkProvingKey.from_vk(fx.airs, vk2)
    proof = ms.prove(pk2, _inputs(fx))
    assert proof.to_bytes() == ms.prove(pk, _inputs(fx)).to_bytes()
    ms.verify(vk2, proof.to_bytes())


@pytest.mark.parametrize("params", [app_params_with_100_bits_security(12),
                                    internal_params_with_100_bits_security()],
                         ids=["unique_decoding", "list_decoding"])
def test_round_trip_other_params(params):
    _, vk = ms.keygen(fib_fixture(0, 1, 8).airs, params)
    vk2 = MultiStarkVerifyingKey.from_bytes(vk.to_bytes())
    assert vk2.params == params and vk2.pre_hash == vk.pre_hash


@pytest.fixture(scope="module")
def key_bytes():
    _, vk = ms.keygen(interactions_fixture_11().airs, default_test_params_small())
    return vk.to_bytes(), vk.pre_hash


def test_every_byte_flip_is_rejected_or_another_key(key_bytes):
    """Strict decoding: a flipped bit either fails with KeyDecodeError or (a field whose every
    value is meaningful, e.g. a count weight) decodes to a key with another prehash."""
    blob, pre_hash = key_bytes
    rejected = 0
    for pos in range(len(blob)):
        for bit in (0, 7):
            forged = bytearray(blob)
            forged[pos] ^= 1 << bit
            try:
                other = MultiStarkVerifyingKey.from_bytes(bytes(forged))
            except KeyDecodeError:
                rejected += 1
                continue
            assert other.pre_hash != pre_hash and other.to_bytes() == bytes(forged)
    assert rejected > len(blob)  # most flips break the encoding


def test_header_truncation_and_trailing_bytes(key_bytes):
    blob, _ = key_bytes
    head = len(VK_MAGIC)
    version = blob[:head] + struct.pack("<I", 2) + blob[head + 4:]
    codec = blob[:head + 4] + struct.pack("<I", 4) + blob[head + 8:]
    for bad, match in [(b"", "magic"), (b"garbage" * 4, "magic"), (blob[:head + 6], "truncated"),
                       (version, "format version 2"), (codec, "codec version 4"),
                       (blob[:-1], "length field"), (blob + b"\x00", "length field")]:
        with pytest.raises(KeyDecodeError, match=match):
            MultiStarkVerifyingKey.from_bytes(bad)
    # a consistent length field over a truncated or extended body still fails
    body = blob[head + 16:]
    for new_body in (body[:-1], body + b"\x00"):
        forged = blob[:head + 8] + struct.pack("<Q", len(new_body)) + new_body
        with pytest.raises(KeyDecodeError):
            MultiStarkVerifyingKey.from_bytes(forged)
    with pytest.raises(KeyDecodeError):
        MultiStarkVerifyingKey.from_bytes("not bytes")


def test_non_minimal_varint_rejected(key_bytes):
    blob, _ = key_bytes
    head = len(VK_MAGIC)
    body = blob[head + 16:]
    assert body[0] < 0x80  # l_skip, one byte: re-encode it with a redundant continuation byte
    new_body = bytes([body[0] | 0x80, 0]) + body[1:]
    forged = blob[:head + 8] + struct.pack("<Q", len(new_body)) + new_body
    with pytest.raises(KeyDecodeError, match="non-minimal varint"):
        MultiStarkVerifyingKey.from_bytes(forged)


def test_proving_key_from_mismatched_airs():
    fx = fib_fixture(0, 1, 8)
    _, vk = ms.keygen(fx.airs, default_test_params_small())
    with pytest.raises(InvalidInputError, match="AIRs for a verifying key"):
        MultiStarkProvingKey.from_vk(fx.airs + fx.airs, vk)
    other = interactions_fixture_11().airs[:1]
    with pytest.raises(InvalidInputError, match="does not match the verifying key"):
        MultiStarkProvingKey.from_vk(other, vk)
    assert MultiStarkProvingKey.from_vk([FibonacciAir()], vk).vk_pre_hash == vk.pre_hash


def _with_body(blob: bytes, body: bytes) -> bytes:
    head = len(VK_MAGIC)
    return blob[:head + 8] + struct.pack("<Q", len(body)) + body


def test_hostile_widths_rejected_before_enumerating_variables(key_bytes):
    """A key declaring a huge common-main width must fail by counting, not by listing 2^60
    unused variables."""
    blob, _ = key_bytes
    vk = MultiStarkVerifyingKey.from_bytes(blob)
    avk = vk.per_air[0]
    huge = replace(avk.params, width=TraceWidth(None, avk.params.width.cached_mains, 1 << 60))
    with pytest.raises(KeyDecodeError, match="unused variables"):
        MultiStarkVerifyingKey.from_bytes(_forged(blob, vk, replace(avk, params=huge)))


def _forged(blob: bytes, vk, first_air) -> bytes:
    """``blob`` with the first AIR's key replaced (re-encoded, length field updated)."""
    inner = MultiStarkVerifyingKey0(vk.params, [first_air] + vk.per_air[1:],
                                    vk.trace_height_constraints)
    return _with_body(blob, inner.to_postcard())


def test_dag_variable_outside_widths_rejected(key_bytes):
    blob, _ = key_bytes
    vk = MultiStarkVerifyingKey.from_bytes(blob)
    avk = vk.per_air[0]
    dag = avk.symbolic_constraints
    i = next(i for i, n in enumerate(dag.nodes) if n.kind == NodeKind.VARIABLE)
    var = dag.nodes[i].var
    nodes = list(dag.nodes)
    nodes[i] = DagNode(NodeKind.VARIABLE, var=var._replace(index=999))
    forged = replace(avk, symbolic_constraints=SymbolicConstraintsDag(
        nodes, dag.constraint_idx, dag.interactions))
    with pytest.raises(KeyDecodeError, match="outside the key's widths"):
        MultiStarkVerifyingKey.from_bytes(_forged(blob, vk, forged))


@settings(max_examples=150, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_hostile_key_bodies_raise_only_key_decode_errors(key_bytes, data):
    """Random edits of a valid body (with a consistent length field): the decoder returns a key
    or raises KeyDecodeError, nothing else."""
    blob, _ = key_bytes
    body = bytearray(blob[len(VK_MAGIC) + 16:])
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(body)))
        op = data.draw(st.sampled_from(["insert", "delete", "set"]))
        value = data.draw(st.integers(0, 255))
        if op == "insert":
            body.insert(pos, value)
        elif pos < len(body):
            if op == "delete":
                del body[pos]
            else:
                body[pos] = value
    try:
        MultiStarkVerifyingKey.from_bytes(_with_body(blob, bytes(body)))
    except KeyDecodeError:
        pass


@settings(max_examples=150, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=300))
def test_random_key_bodies_raise_only_key_decode_errors(key_bytes, body):
    try:
        MultiStarkVerifyingKey.from_bytes(_with_body(key_bytes[0], body))
    except KeyDecodeError:
        pass
