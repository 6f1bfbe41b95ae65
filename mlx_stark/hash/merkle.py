"""Leaf hash, 2-to-1 compression and Merkle trees with grouped leaves (pcs.md §3).

Host functions work on Python ints (digests are tuples of 8 ints); device functions on
uint32 MLX arrays, batched over rows (digests on device are ``(n, 8)`` uint32).
"""
from __future__ import annotations

import mlx.core as mx
import numpy as np

from .. import arrays, custom_kernels
from ..errors import InvalidInputError
from ..field.bb import P, U32
from ..tracing import read, wait
from . import host_native
from .poseidon2 import (DEFAULT_CONSTANTS, WIDTH, from_mont_lanes, map_rows, permute_host,
                        permute_mont_lanes, to_mont_lanes)

RATE = 8
DIGEST = 8
_COMMIT_SLAB_ROWS = 1 << 20  # rows hashed per evaluation while committing (bounds temporaries)


# ---------------------------------------------------------------- host (Python ints)
def hash_host(values) -> tuple:
    """Leaf hash ``H(v)``: Plonky3 ``PaddingFreeSponge<P, 16, 8, 8>`` (pcs.md §3.1).

    ``values``: any sequence of canonical base elements. Each block of up to 8 overwrites
    the front of the state (a short last block leaves the other lanes as they are), then the
    state is permuted. No padding: the empty input hashes to eight zeros. Long inputs (the
    verifying-key prehash absorbs 280k bytes for KeccakfAir) take one native call where
    :mod:`.host_native` is available.
    """
    lib = host_native.library(DEFAULT_CONSTANTS)
    if lib is not None:
        row = _canonical_row(values)[None]
        state = lib.absorb_rows(row, np.zeros((1, WIDTH), np.uint32))[0]
        return tuple(int(x) for x in state[:DIGEST])
    v = [int(x) for x in values]
    state = [0] * WIDTH
    for start in range(0, len(v), RATE):
        block = v[start:start + RATE]
        state[:len(block)] = block
        state = permute_host(state)
    return tuple(state[:DIGEST])


def _canonical_row(values) -> np.ndarray:
    """``values`` as a ``uint32`` vector, or :class:`InvalidInputError` unless all are in [0, p)."""
    if isinstance(values, (bytes, bytearray)):
        return np.frombuffer(values, dtype=np.uint8).astype(np.uint32)
    ints = [int(x) for x in values]
    if not all(0 <= v < P for v in ints):
        raise InvalidInputError("hash input must be canonical field elements")
    return np.array(ints, dtype=np.uint32)


def compress_host(left, right) -> tuple:
    """``C(a, b) = P(a || b)[0..8]``: Plonky3 ``TruncatedPermutation<P, 2, 8, 16>`` (pcs.md §3.2)."""
    a, b = list(left), list(right)
    if len(a) != DIGEST or len(b) != DIGEST:
        raise InvalidInputError("compression takes two digests of 8 elements")
    return tuple(permute_host(a + b)[:DIGEST])


def tree_compress_host(digests) -> tuple:
    """Compress ``2^k`` digests pairwise, level by level, down to one (pcs.md §3.2)."""
    level = [tuple(d) for d in digests]
    if not level or len(level) & (len(level) - 1):
        raise InvalidInputError(f"tree_compress takes a power-of-two number of digests, got {len(level)}")
    while len(level) > 1:
        level = [compress_host(level[i], level[i + 1]) for i in range(0, len(level), 2)]
    return level[0]


def merkle_verify(root, index: int, rows, path) -> bool:
    """Check an opening of leaf group ``index`` against ``root`` (pcs.md §3.3).

    ``rows``: the ``2^k`` opened rows (sequences of canonical ints) in order ``t = 0..2^k-1``;
    ``path``: the sibling digests from the group level upwards. Returns False (never raises)
    on any malformed input: wrong row count, non-canonical values, index out of range.
    """
    try:
        rows = [[int(v) for v in row] for row in rows]
        path = [tuple(int(v) for v in d) for d in path]
        root = tuple(int(v) for v in root)
        index = int(index)
    except (TypeError, ValueError):
        return False
    if not rows or len(rows) & (len(rows) - 1) or not 0 <= index < (1 << len(path)):
        return False
    if any(not 0 <= v < P for row in rows for v in row):
        return False
    if len(root) != DIGEST or any(len(d) != DIGEST or not all(0 <= v < P for v in d) for d in path):
        return False
    cur = tree_compress_host([hash_host(row) for row in rows])
    for sibling in path:
        cur = compress_host(sibling, cur) if index & 1 else compress_host(cur, sibling)
        index >>= 1
    return cur == root


# ---------------------------------------------------------------- device (MLX arrays)
def _hash_rows(matrix: mx.array) -> mx.array:
    n, w = matrix.shape
    zero = mx.zeros((n,), dtype=U32)  # 0 is 0 in Montgomery form too
    lanes = [zero] * WIDTH
    for start in range(0, w, RATE):
        b = min(RATE, w - start)
        lanes = to_mont_lanes([matrix[:, start + i] for i in range(b)]) + lanes[b:]
        lanes = permute_mont_lanes(lanes)
    return mx.stack(from_mont_lanes(lanes[:DIGEST]), axis=1)


def hash_rows(matrix: mx.array) -> mx.array:
    """Leaf hash of every row: ``(n, w)`` uint32 canonical -> ``(n, 8)`` uint32. Lazy.

    The sponge state stays in Montgomery form across the ``ceil(w / 8)`` absorbed blocks.
    A width-0 matrix hashes every row to eight zeros.
    """
    _check_u32(matrix, 2, "hash_rows")
    n, w = matrix.shape
    if w == 0:
        return mx.zeros((n, DIGEST), dtype=U32)
    kernel = custom_kernels.native("merkle.hash_rows")
    if kernel is not None:
        return kernel(matrix)
    return map_rows(_hash_rows, matrix)


def _compress(left: mx.array, right: mx.array) -> mx.array:
    lanes = to_mont_lanes([left[:, i] for i in range(DIGEST)] + [right[:, i] for i in range(DIGEST)])
    return mx.stack(from_mont_lanes(permute_mont_lanes(lanes)[:DIGEST]), axis=1)


def compress(left: mx.array, right: mx.array) -> mx.array:
    """``C(left[i], right[i])`` for every ``i``: two ``(n, 8)`` uint32 -> ``(n, 8)`` uint32. Lazy."""
    _check_u32(left, 2, "compress")
    _check_u32(right, 2, "compress")
    if left.shape != right.shape or left.shape[1] != DIGEST:
        raise InvalidInputError(f"compress takes two (n, 8) arrays, got {left.shape} and {right.shape}")
    kernel = custom_kernels.native("merkle.compress")
    if kernel is not None:
        return kernel(left, right)
    return map_rows(_compress, left, right)


def _check_u32(a: mx.array, ndim: int, what: str) -> None:
    if not isinstance(a, mx.array) or a.ndim != ndim or a.dtype != U32:
        shape = getattr(a, "shape", None)
        raise InvalidInputError(f"{what} expects a {ndim}-d uint32 MLX array, got {shape} "
                                f"{getattr(a, 'dtype', type(a).__name__)}")


def _hash_rows_np(rows: np.ndarray) -> np.ndarray:
    """:func:`hash_rows` of a host ``(n, w)`` uint32 array: natively, else on the device."""
    lib = host_native.library(DEFAULT_CONSTANTS)
    if lib is None:
        return np.array(hash_rows(mx.array(rows)))
    return lib.absorb_rows(rows, np.zeros((rows.shape[0], WIDTH), np.uint32))[:, :DIGEST]


def _compress_np(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """:func:`compress` of host ``(n, 8)`` uint32 arrays: natively, else on the device."""
    lib = host_native.library(DEFAULT_CONSTANTS)
    if lib is None:
        return np.array(compress(mx.array(left), mx.array(right)))
    return lib.permute(np.concatenate([left, right], axis=1))[:, :DIGEST]


def merkle_verify_batch(root, indices, rows, paths) -> np.ndarray:
    """:func:`merkle_verify` for many openings of one tree at once, as array operations over
    the queries (native host hashing, else the device).

    ``indices`` ``(q,)`` ints; ``rows`` ``(q, 2^k, w)``; ``paths`` ``(q, depth, 8)`` (array-likes
    of ints, as :meth:`MerkleTree.open_many` returns). Returns a ``(q,)`` bool numpy array and
    never raises on hostile ``root``, ``rows`` or ``paths``: a malformed one rejects every
    opening, a non-canonical value or an index out of range rejects its own.
    """
    idx = np.asarray(indices, dtype=np.int64).reshape(-1)  # the verifier's own query indices
    q = idx.size
    try:
        rows = np.asarray(rows)
        paths = np.asarray(paths)
        root_np = np.asarray(root)
    except (TypeError, ValueError, OverflowError):
        return np.zeros(q, dtype=bool)
    rejected = np.zeros(q, dtype=bool)
    if (rows.ndim != 3 or paths.ndim != 3 or rows.shape[0] != q or paths.shape[0] != q
            or paths.shape[2] != DIGEST or root_np.shape != (DIGEST,) or rows.shape[1] == 0
            or rows.shape[1] & (rows.shape[1] - 1) or rows.dtype.kind not in "ui"
            or paths.dtype.kind not in "ui" or root_np.dtype.kind not in "ui" or paths.shape[1] > 62):
        return rejected
    if q == 0:
        return np.ones(0, dtype=bool)
    depth = paths.shape[1]
    ok = (idx >= 0) & (idx < (1 << depth))
    ok &= ((rows >= 0) & (rows < P)).reshape(q, -1).all(axis=1)
    ok &= ((paths >= 0) & (paths < P)).reshape(q, -1).all(axis=1)
    if not ((root_np >= 0) & (root_np < P)).all():
        return rejected
    # hostile values are zeroed so the device only sees canonical inputs; their queries fail
    rows = np.where(ok[:, None, None], rows, 0).astype(np.uint32)
    paths = np.where(ok[:, None, None], paths, 0).astype(np.uint32)
    idx = np.where(ok, idx, 0)
    g, w = rows.shape[1], rows.shape[2]
    level = _hash_rows_np(rows.reshape(q * g, w)).reshape(q, g, DIGEST)
    while level.shape[1] > 1:
        t = level.shape[1] // 2
        level = _compress_np(level[:, 0::2].reshape(q * t, DIGEST),
                             level[:, 1::2].reshape(q * t, DIGEST)).reshape(q, t, DIGEST)
    cur = level.reshape(q, DIGEST)
    for d in range(depth):
        is_right = ((idx >> d) & 1).astype(bool)[:, None]
        sibling = paths[:, d]
        cur = _compress_np(np.where(is_right, sibling, cur), np.where(is_right, cur, sibling))
    return ok & (cur == root_np.astype(np.uint32)).all(axis=1)


class MerkleTree:
    """Merkle tree over one matrix with grouped leaves (pcs.md §3.3).

    With ``N = 2^L`` rows and ``2^k`` rows per query, leaf group ``y < qs = N / 2^k`` holds rows
    ``y + t * qs`` (``t = 0..2^k-1``); its digest is ``tree_compress`` of their row hashes, and a
    binary tree over the ``qs`` group digests gives the root. All layers are kept (``layers[0]``
    the group digests, ``layers[-1]`` the root) for opening many queries, as stored in
    ``blocks``: ``[(array, count), ...]``, ``count`` consecutive levels in each array (with
    native kernels one array per launch of up to nine levels, else one per level).
    """

    def __init__(self, matrix: mx.array, log_rows_per_query: int, blocks: list, root=None):
        self.matrix = matrix
        self.log_rows_per_query = log_rows_per_query
        self.blocks = blocks
        # every level's (block, first node, nodes), from the group digests to the root
        self.levels = []
        for b, (array, count) in enumerate(blocks):
            at, size = 0, array.shape[0] * (1 << (count - 1)) // ((1 << count) - 1)
            for _ in range(count):
                self.levels.append((b, at, size))
                at, size = at + size, size // 2
        self._layers = None
        self._root = root

    @property
    def layers(self) -> list:
        """Every level, ``(qs, 8)`` down to the root ``(1, 8)``: views of :attr:`blocks`."""
        if self._layers is None:
            self._layers = [self.blocks[b][0] if self.blocks[b][1] == 1 else self.blocks[b][0][at:at + size]
                            for b, at, size in self.levels]
        return self._layers

    @property
    def root_array(self) -> mx.array:
        """The root digest ``(8,)`` uint32 on the device (no read-back)."""
        array = self.blocks[-1][0]
        return array[array.shape[0] - 1, ...]  # a slice: a bare integer index is an MLX gather

    @property
    def root(self) -> tuple:
        """The root digest as 8 host ints (read back on first use)."""
        if self._root is None:
            self._root = tuple(int(v) for v in read(self.root_array)[0])
        return self._root

    @property
    def log_height(self) -> int:
        return self.matrix.shape[0].bit_length() - 1

    @property
    def depth(self) -> int:
        """Length of an opening path: ``log_height - log_rows_per_query``."""
        return len(self.levels) - 1

    @property
    def width(self) -> int:
        return self.matrix.shape[1]

    @classmethod
    def commit(cls, matrix: mx.array, log_rows_per_query: int, check_values: bool = True) -> "MerkleTree":
        """Commit ``matrix``: ``(N, w)`` uint32 canonical, or ``(N, w, 4)`` extension elements
        (see :func:`flatten_ext_rows`). ``N`` must be a power of two ``>= 2^log_rows_per_query``.

        Evaluates: row hashes in slabs of 2^20 rows, then one batched compression per level.
        The root and the check for entries ``>= p`` come back in one read; with
        ``check_values=False`` (a matrix the prover computed) nothing is read back and the root
        stays on the device (:attr:`root_array`) until :attr:`root` is asked for.
        """
        if isinstance(matrix, mx.array) and matrix.ndim == 3:
            matrix = flatten_ext_rows(matrix)
        _check_u32(matrix, 2, "MerkleTree.commit")
        n, w = matrix.shape
        k = log_rows_per_query
        if not isinstance(k, int) or k < 0:
            raise InvalidInputError(f"log_rows_per_query must be a non-negative int, got {k!r}")
        if n == 0 or n & (n - 1) or n < (1 << k):
            raise InvalidInputError(f"matrix height must be a power of two >= 2^{k}, got {n}")
        kernel = custom_kernels.native("merkle.MerkleTree.commit")
        blocks = kernel(matrix, k) if kernel is not None else cls._blocks(matrix, k)
        tree = cls(matrix, k, blocks)
        if not check_values:
            return tree
        high = mx.max(matrix) if n * w else mx.array(0, dtype=U32)
        high, root = read(high, tree.root_array)
        if high >= P:
            raise InvalidInputError("matrix entries must be canonical field elements (< p)")
        tree._root = tuple(int(v) for v in root)
        return tree

    @staticmethod
    def _blocks(matrix: mx.array, k: int) -> list:
        """The MLX-ops tree: every layer in an array of its own, ``[(layer, 1), ...]`` from the
        group digests to the root (see the class)."""
        n = matrix.shape[0]
        hashes = []
        for lo in range(0, n, _COMMIT_SLAB_ROWS):
            slab = hash_rows(matrix[lo:lo + _COMMIT_SLAB_ROWS])
            wait(slab)
            hashes.append(slab)
        level = mx.concatenate(hashes, axis=0) if len(hashes) > 1 else hashes[0]
        qs = n >> k
        # group digests: level[t, y] = hash of row y + t*qs; compress pairs of t, all y at once
        level = level.reshape(1 << k, qs, DIGEST)
        while level.shape[0] > 1:
            t = level.shape[0] // 2
            level = compress(level[0::2].reshape(t * qs, DIGEST),
                             level[1::2].reshape(t * qs, DIGEST)).reshape(t, qs, DIGEST)
            wait(level)
        layers = [level.reshape(qs, DIGEST)]
        while layers[-1].shape[0] > 1:
            layer = layers[-1]
            nxt = compress(layer[0::2], layer[1::2])
            wait(nxt)
            layers.append(nxt)
        return [(layer, 1) for layer in layers]

    def _check_index(self, index) -> int:
        qs = self.matrix.shape[0] >> self.log_rows_per_query
        i = int(index)
        if not 0 <= i < qs:
            raise InvalidInputError(f"query index {i} out of range [0, {qs})")
        return i

    def open(self, index: int):
        """Opened rows ``(2^k, w)`` uint32 (numpy, order ``t``) and the path (list of tuple8)."""
        rows, paths = self.open_many([index])
        return rows[0], [tuple(d) for d in paths[0].tolist()]

    def open_many(self, indices):
        """Batched :meth:`open`: rows ``(q, 2^k, w)`` and paths ``(q, depth, 8)`` uint32 numpy.

        The rows and siblings are gathered on the device (:meth:`open_device`) and only they
        are copied to the host: a host view of a whole committed matrix would fault all of
        it in where device memory is host-mapped."""
        idx = np.array([self._check_index(i) for i in indices], dtype=np.uint32).reshape(-1)
        rows, paths = read(*self.open_device(mx.array(idx)))
        return rows, paths

    def open_device(self, idx: mx.array) -> tuple:
        """Openings of the query indices ``idx`` (``(q,)`` uint32 on the device, each below
        the number of leaf groups: a transcript's ``sample_bits``): rows ``(q, 2^k, w)`` and
        paths ``(q, depth, 8)`` uint32 device arrays, gathered with no read-back."""
        q = idx.shape[0]
        depth = self.depth
        kernel = custom_kernels.native("merkle.MerkleTree.open_device")
        if kernel is not None and q and depth and self.width:
            return kernel(self.matrix, [a for a, _ in self.blocks], self.levels[:-1],
                          self.log_rows_per_query, idx)
        qs = self.matrix.shape[0] >> self.log_rows_per_query
        group = 1 << self.log_rows_per_query
        row_idx = idx[:, None] + mx.array(qs * np.arange(group, dtype=np.uint32))[None, :]
        rows = arrays.take(self.matrix, row_idx.reshape(-1)).reshape(q, group, self.width)
        if depth == 0:
            return rows, mx.zeros((q, 0, DIGEST), dtype=U32)
        # every level's sibling in one gather from the levels below the root, one after another
        levels = self.layers[:-1]
        offsets = np.cumsum([0] + [layer.shape[0] for layer in levels[:-1]], dtype=np.uint32)
        sib = ((idx[:, None] >> mx.array(np.arange(depth, dtype=np.uint32))[None, :]) ^ 1) \
            + mx.array(offsets)[None, :]
        nodes = mx.concatenate(levels) if depth > 1 else levels[0]
        paths = arrays.take(nodes, sib.reshape(-1)).reshape(q, depth, DIGEST)
        return rows, paths


def flatten_ext_rows(matrix: mx.array) -> mx.array:
    """``(N, w, 4)`` extension-element matrix -> ``(N, 4w)`` base matrix, each value as
    ``c0, c1, c2, c3`` in order: the row hashed for an extension-field codeword (pcs.md §3.1)."""
    if matrix.ndim != 3 or matrix.shape[2] != 4:
        raise InvalidInputError(f"expected an (N, w, 4) extension matrix, got {tuple(matrix.shape)}")
    return matrix.reshape(matrix.shape[0], 4 * matrix.shape[1])
