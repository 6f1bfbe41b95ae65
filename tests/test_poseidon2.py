"""Poseidon2 known answers (pcs.md §2, §11; data/poseidon2_babybear_w16_kat.json) and
device/host equality."""
import json
from importlib import resources

import mlx.core as mx
import numpy as np
import pytest

from mlx_stark.errors import InvalidInputError
from mlx_stark.field.bb import P
from mlx_stark.hash import permute, permute_host
from mlx_stark.hash import host_native
from mlx_stark.hash.poseidon2 import (DEFAULT_CONSTANTS, INTERNAL_DIAG, INTERNAL_DIAG_FORM,
                                      Poseidon2Constants, from_mont_lanes, permute_mont_lanes,
                                      permute_python, to_mont_lanes)

KAT = json.loads(resources.files("mlx_stark").joinpath("data/poseidon2_babybear_w16_kat.json").read_text())
RNG_CONSTANTS = Poseidon2Constants.from_dict(KAT["rng_instance"])


@pytest.mark.parametrize("vec", KAT["vectors_default_constants"], ids=lambda v: v["name"])
def test_default_constants_kat(vec):
    assert permute_host(vec["input"]) == vec["output"]


@pytest.mark.parametrize("vec", KAT["vectors_rng_instance"], ids=lambda v: v["name"])
def test_rng_instance_kat(vec):
    assert permute_host(vec["input"], RNG_CONSTANTS) == vec["output"]


def test_spec_section_11_vectors():
    assert permute_host([0] * 16) == [
        1168947398, 128782440, 747404447, 883925857, 360581875, 1704698758, 1878363991, 1054281681,
        682225194, 705839125, 1218819873, 41544645, 1095344608, 174996601, 1678438226, 11259290]
    assert permute_host(list(range(16))) == [
        1906786279, 1737026427, 1959749225, 700325316, 1638050605, 1021608788, 1726691001, 1761127344,
        1552405120, 417318995, 36799261, 1215172152, 614923223, 1300746575, 957311597, 304856115]


def test_host_rejects_bad_state():
    with pytest.raises(InvalidInputError):
        permute_host([0] * 15)
    with pytest.raises(InvalidInputError):
        permute_host([P] + [0] * 15)


def test_device_matches_kats(on_device):
    vecs = KAT["vectors_default_constants"]
    states = mx.array(np.array([v["input"] for v in vecs], dtype=np.uint32))
    out = np.array(permute(states))
    assert out.tolist() == [v["output"] for v in vecs]
    rng_vec = KAT["vectors_rng_instance"][0]
    out = np.array(permute(mx.array(np.array([rng_vec["input"]], dtype=np.uint32)), RNG_CONSTANTS))
    assert out.tolist() == [rng_vec["output"]]


def test_device_matches_host_random(on_device):
    rng = np.random.default_rng(7)
    states = rng.integers(0, P, size=(300, 16), dtype=np.uint32)
    states[0] = P - 1  # extreme values
    states[1] = 0
    out = np.array(permute(mx.array(states)))
    expect = np.array([permute_host(s) for s in states.tolist()], dtype=np.uint32)
    np.testing.assert_array_equal(out, expect)
    lanes = to_mont_lanes([mx.array(np.ascontiguousarray(col)) for col in states.T])
    out = from_mont_lanes(permute_mont_lanes(lanes))
    np.testing.assert_array_equal(np.stack([np.array(x) for x in out], axis=1), expect)


def test_internal_diag_forms():
    assert [s * n * pow(2, -k, P) % P for s, n, k in INTERNAL_DIAG_FORM] == list(INTERNAL_DIAG)


def test_device_rejects_bad_shape():
    with pytest.raises(InvalidInputError):
        permute(mx.zeros((4, 8), dtype=mx.uint32))
    with pytest.raises(InvalidInputError):
        permute(mx.zeros((4, 16), dtype=mx.int32))


def test_two_stream_split_matches_host(on_device):
    # batches above the split threshold run as two halves on two CPU streams
    n = (1 << 13) + 2
    states = np.random.default_rng(11).integers(0, P, size=(n, 16), dtype=np.uint32)
    out = np.array(permute(mx.array(states)))
    for i in (0, n // 2 - 1, n // 2, n - 1):
        assert out[i].tolist() == permute_host(states[i].tolist())


def _python_absorb(row: list, state: list, constants) -> list:
    """The padding-free sponge (rate 8) over ``row`` from ``state``, in Python."""
    for start in range(0, len(row), 8):
        block = row[start:start + 8]
        state = permute_python(block + state[len(block):], constants)
    return state


@pytest.mark.parametrize("simd", [None, False], ids=["cpu", "scalar"])
@pytest.mark.parametrize("constants", [DEFAULT_CONSTANTS, RNG_CONSTANTS], ids=["default", "rng"])
def test_host_native_matches_python(constants, simd):
    """The native permutation and sponge (the CPU's AVX2 loops where it has them, and the
    scalar ones) equal the Python reference: permutations near 0 and p included, rows of
    every width up to three blocks (short last blocks too)."""
    lib = host_native.library(constants)
    if lib is None:
        pytest.skip("no C++ compiler to build the native host permutation")
    lib = host_native.HostPoseidon2(lib.path, simd=simd)
    rng = np.random.default_rng(5)
    states = rng.integers(0, P, size=(64, 16), dtype=np.uint32)
    states[0], states[1] = 0, P - 1
    states[2, ::2] = P - 1
    expect = [permute_python(s, constants) for s in states.tolist()]
    assert lib.permute(states).tolist() == expect
    assert [lib.permute_one(s) for s in states.tolist()] == expect
    assert permute_host(states[0].tolist(), constants) == expect[0]
    for w in range(25):
        rows = rng.integers(0, P, size=(3, w), dtype=np.uint32)
        got = lib.absorb_rows(rows, states[:3])
        assert got.tolist() == [_python_absorb(r, s, constants)
                                for r, s in zip(rows.tolist(), states[:3].tolist())]
