"""Leaf hash, compression (pcs.md §3.1-3.2, §11) and Merkle trees (§3.3)."""
import json
from importlib import resources

import mlx.core as mx
import numpy as np
import pytest

from mlx_stark.errors import InvalidInputError
from mlx_stark.field.bb import P
from mlx_stark.hash import (MerkleTree, compress, compress_host, flatten_ext_rows, hash_host, hash_rows,
                            merkle_verify, merkle_verify_batch, tree_compress_host)
from mlx_stark.hash import host_native
from mlx_stark.hash.poseidon2 import DEFAULT_CONSTANTS

KAT = json.loads(resources.files("mlx_stark").joinpath("data/poseidon2_babybear_w16_kat.json").read_text())
DERIVED = KAT["derived_not_from_upstream"]


def test_spec_section_11_hash_vectors():
    assert hash_host([]) == (0,) * 8
    assert hash_host([1, 2, 3, 4]) == (1170170810, 1361339308, 994821313, 422588324, 211569409,
                                       645232537, 1706497947, 268995131)
    assert hash_host(range(1, 9)) == (766127264, 1750513607, 1038115664, 1351438670, 1338302971,
                                      1958881547, 1778633879, 1495371656)
    assert hash_host(range(1, 11)) == (87136126, 1960160520, 1843710888, 1025622754, 1310518341,
                                       1155505785, 1992950343, 1745347503)
    assert compress_host(range(8), range(8, 16)) == (1906786279, 1737026427, 1959749225, 700325316,
                                                     1638050605, 1021608788, 1726691001, 1761127344)


def test_data_file_derived_vectors():
    ex = DERIVED["compress_example"]
    assert compress_host(ex["left"], ex["right"]) == tuple(ex["digest"])
    for ex in DERIVED["sponge_examples"]:
        assert hash_host(ex["input"]) == tuple(ex["digest"])


def test_compress_rejects_bad_digest():
    with pytest.raises(InvalidInputError):
        compress_host([0] * 7, [0] * 8)


# ---------------------------------------------------------------- device hashing


def _rand(shape, seed):
    return np.random.default_rng(seed).integers(0, P, size=shape, dtype=np.uint32)


@pytest.mark.parametrize("width", [0, 1, 4, 7, 8, 9, 16, 42])
def test_hash_rows_matches_host(on_device, width):
    m = _rand((19, width), width)
    m[0] = P - 1
    out = np.array(hash_rows(mx.array(m)))
    assert out.tolist() == [list(hash_host(r)) for r in m.tolist()]


def test_hash_rows_spec_vectors(on_device):
    m = mx.array(np.array([list(range(1, 11))], dtype=np.uint32))
    assert tuple(np.array(hash_rows(m))[0]) == (87136126, 1960160520, 1843710888, 1025622754,
                                                1310518341, 1155505785, 1992950343, 1745347503)


def test_compress_matches_host(on_device):
    a, b = _rand((23, 8), 1), _rand((23, 8), 2)
    out = np.array(compress(mx.array(a), mx.array(b)))
    assert out.tolist() == [list(compress_host(x, y)) for x, y in zip(a.tolist(), b.tolist())]


def test_two_stream_split_matches_single(on_device):
    # batches above the split threshold run as two halves on two CPU streams
    from mlx_stark.hash.merkle import _hash_rows

    m = mx.array(_rand(((1 << 13) + 6, 11), 3))
    split = np.array(hash_rows(m))
    whole = np.array(_hash_rows(m))
    np.testing.assert_array_equal(split, whole)
    for i in (0, 4098, 4099, (1 << 13) + 5):
        assert tuple(split[i]) == hash_host(np.array(m[i]).tolist())


def test_device_rejects_bad_input():
    with pytest.raises(InvalidInputError):
        hash_rows(mx.zeros((4,), dtype=mx.uint32))
    with pytest.raises(InvalidInputError):
        hash_rows(mx.zeros((4, 3), dtype=mx.int32))
    with pytest.raises(InvalidInputError):
        compress(mx.zeros((4, 8), dtype=mx.uint32), mx.zeros((3, 8), dtype=mx.uint32))


# ---------------------------------------------------------------- Merkle trees
def _naive_root(m: np.ndarray, k: int) -> tuple:
    """pcs.md §3.3 in its 'equivalent' form: a plain binary tree whose leaf y*2^k + t is
    H(row y + t*qs)."""
    qs = m.shape[0] >> k
    leaves = [hash_host(m[y + t * qs].tolist()) for y in range(qs) for t in range(1 << k)]
    return tree_compress_host(leaves)


@pytest.mark.parametrize("log_height,k,width", [
    (0, 0, 3), (1, 0, 1), (3, 1, 8), (4, 4, 42), (5, 2, 9), (5, 3, 1), (6, 4, 13), (7, 0, 16),
])
def test_commit_open_verify(on_device, log_height, k, width):
    m = _rand((1 << log_height, width), 100 * log_height + 10 * k + width)
    tree = MerkleTree.commit(mx.array(m), k)
    assert tree.root == _naive_root(m, k)
    assert tree.log_height == log_height and tree.depth == log_height - k
    qs = (1 << log_height) >> k
    rows_all, paths_all = tree.open_many(list(range(qs)) + [0])
    assert rows_all.shape == (qs + 1, 1 << k, width) and paths_all.shape == (qs + 1, tree.depth, 8)
    for y in range(qs):
        rows, path = tree.open(y)
        assert rows.shape == (1 << k, width) and rows.dtype == np.uint32
        np.testing.assert_array_equal(rows, m[y::qs])
        assert len(path) == tree.depth
        np.testing.assert_array_equal(rows_all[y], rows)
        assert paths_all[y].tolist() == [list(d) for d in path]
        assert merkle_verify(tree.root, y, rows.tolist(), path)
        assert merkle_verify(tree.root, y, rows_all[y], paths_all[y])


@pytest.mark.parametrize("log_height,k", [(6, 2), (3, 3), (5, 0)])
def test_open_many_equals_open(on_device, log_height, k):
    m = _rand((1 << log_height, 5), 7 * log_height + k)
    # a strided (transposed) view: the gathers must not assume a contiguous matrix
    tree = MerkleTree.commit(mx.array(np.ascontiguousarray(m.T)).T, k)
    last = ((1 << log_height) >> k) - 1
    idx = [last, 0, last, last // 2, 0, last]
    rows, paths = tree.open_many(idx)
    assert rows.dtype == np.uint32 and paths.dtype == np.uint32
    assert rows.shape == (len(idx), 1 << k, 5) and paths.shape == (len(idx), tree.depth, 8)
    for i, y in enumerate(idx):
        one_rows, one_path = tree.open(y)
        np.testing.assert_array_equal(rows[i], one_rows)
        np.testing.assert_array_equal(one_rows, m[y::last + 1])
        assert paths[i].tolist() == [list(d) for d in one_path]
        assert all(isinstance(v, int) for d in one_path for v in d)
    empty_rows, empty_paths = tree.open_many([])
    assert empty_rows.shape == (0, 1 << k, 5) and empty_paths.shape == (0, tree.depth, 8)


def test_verify_rejects_tampering():
    m = _rand((32, 5), 9)
    tree = MerkleTree.commit(mx.array(m), 2)
    rows, path = tree.open(3)
    rows, path = rows.tolist(), list(path)
    assert merkle_verify(tree.root, 3, rows, path)
    bad_rows = [list(r) for r in rows]
    bad_rows[2][4] = (bad_rows[2][4] + 1) % P
    assert not merkle_verify(tree.root, 3, bad_rows, path)  # wrong leaf row
    assert not merkle_verify(tree.root, 3, rows[::-1], path)  # rows out of order
    assert not merkle_verify(tree.root, 3, rows[:2], path)  # too few rows
    bad_path = list(path)
    bad_path[1] = (bad_path[1][0] ^ 1,) + bad_path[1][1:]
    assert not merkle_verify(tree.root, 3, rows, bad_path)  # wrong sibling
    assert not merkle_verify(tree.root, 3, rows, path[:-1])  # short path
    assert not merkle_verify(tree.root, 2, rows, path)  # wrong index
    assert not merkle_verify(tree.root, 3 + 8, rows, path)  # index beyond the tree
    bad_root = (tree.root[0] ^ 1,) + tree.root[1:]
    assert not merkle_verify(bad_root, 3, rows, path)  # wrong root
    assert not merkle_verify(tree.root, 3, [[P] + r[1:] for r in rows], path)  # non-canonical
    assert not merkle_verify(tree.root, 3, [["x"] * 5] * 4, path)  # garbage


def test_extension_matrix_commit():
    ext = _rand((16, 3, 4), 5)
    tree = MerkleTree.commit(mx.array(ext), 1)
    flat = ext.reshape(16, 12)
    assert tree.root == _naive_root(flat, 1)
    assert tree.root == MerkleTree.commit(flatten_ext_rows(mx.array(ext)), 1).root
    rows, path = tree.open(5)
    np.testing.assert_array_equal(rows, flat[5::8])
    assert merkle_verify(tree.root, 5, rows.tolist(), path)


def test_commit_rejects_bad_input():
    with pytest.raises(InvalidInputError):
        MerkleTree.commit(mx.zeros((12, 2), dtype=mx.uint32), 0)  # height not a power of two
    with pytest.raises(InvalidInputError):
        MerkleTree.commit(mx.zeros((4, 2), dtype=mx.uint32), 3)  # fewer rows than a group
    with pytest.raises(InvalidInputError):
        MerkleTree.commit(mx.full((4, 2), P, dtype=mx.uint32), 0)  # non-canonical
    tree = MerkleTree.commit(mx.zeros((8, 2), dtype=mx.uint32), 1)
    with pytest.raises(InvalidInputError):
        tree.open(4)
    with pytest.raises(InvalidInputError):
        tree.open_many([0, -1])


@pytest.fixture(params=["native", "python"])
def host_path(request, monkeypatch):
    """Host hashing through the native library (where it builds) or without it."""
    if request.param == "python":
        monkeypatch.setattr(host_native, "library", lambda constants: None)
    elif host_native.library(DEFAULT_CONSTANTS) is None:
        pytest.skip("no C++ compiler to build the native host permutation")
    return request.param


@pytest.mark.parametrize("length", [0, 1, 7, 8, 9, 100, 1000])
def test_hash_host_paths_agree(monkeypatch, length):
    values = np.random.default_rng(length).integers(0, P, size=length).tolist()
    data = bytes(np.random.default_rng(length).integers(0, 256, size=length, dtype=np.uint8))
    native = hash_host(values), hash_host(data)
    monkeypatch.setattr(host_native, "library", lambda constants: None)
    assert (hash_host(values), hash_host(data)) == native
    assert hash_host(data) == hash_host(list(data))


def test_hash_host_rejects_non_canonical(host_path):
    for bad in ([P], [-1], [1 << 70]):
        with pytest.raises(InvalidInputError):
            hash_host(bad)


def test_verify_batch_agrees_with_host(on_device, host_path):
    m = _rand((64, 11), 21)
    tree = MerkleTree.commit(mx.array(m), 3)
    idx = [0, 5, 7, 3, 5]
    rows, paths = tree.open_many(idx)
    assert merkle_verify_batch(tree.root, idx, rows, paths).tolist() == [True] * 5
    bad_rows, bad_paths = rows.copy(), paths.copy()
    bad_rows[1, 2, 3] ^= 1  # wrong leaf row
    bad_paths[2, 0, 0] ^= 1  # wrong sibling
    bad_rows[3, 0, 0] = P  # non-canonical value
    bad_idx = list(idx)
    bad_idx[4] = 4  # wrong index
    got = merkle_verify_batch(tree.root, bad_idx, bad_rows, bad_paths)
    assert got.tolist() == [True, False, False, False, False]
    for i in range(5):
        assert got[i] == merkle_verify(tree.root, bad_idx[i], bad_rows[i].tolist(), bad_paths[i].tolist())
    assert not merkle_verify_batch(tree.root, [8], rows[:1], paths[:1]).any()  # index beyond the tree
    bad_root = (tree.root[0] ^ 1,) + tree.root[1:]
    assert not merkle_verify_batch(bad_root, idx, rows, paths).any()
    assert not merkle_verify_batch(tree.root, idx, rows, paths[:, :-1]).any()  # short paths
    assert not merkle_verify_batch(tree.root, idx, rows[:, :3], paths).any()  # 3 rows per group
    assert not merkle_verify_batch(tree.root, idx, [["x"]], paths).any()  # garbage
