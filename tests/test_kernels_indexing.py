"""Gather and scatter kernels (mlx_stark.custom_kernels.indexing): the native paths of
:func:`mlx_stark.arrays.take`, :func:`mlx_stark.arrays.scatter_rows` and
:func:`mlx_stark.arrays.concat_flat`.

- emulation (needs g++): the rendered CUDA and Metal sources, run as C++ on the CPU, equal
  ``mx.take`` along every axis (first, middle, last; repeated and unordered indices; one row;
  empty results), the MLX-ops scatter and the MLX-ops stacked matrix (one matrix, several of
  them below and above ``2^l`` rows, zero-width ones, zero padding), and the RS messages read
  from the matrices equal those of the stacked matrix; the concatenation equals NumPy's (one
  launch, an empty array among them, chained launches past 32 arrays; with the arrays after
  the first turned to Montgomery form); a trace's column block equals its definition (parts,
  rotations, selectors, a window, lifting, several tiles); whole proofs through them give the
  golden fingerprints;
- device: on a GPU with native kernels, both equal their ops path on the CPU.
"""
import mlx.core as mx
import numpy as np
import pytest

from mlx_stark import arrays
from mlx_stark.layout import stacked_layout
from mlx_stark.prover import stacked_pcs
from mlx_stark.custom_kernels import indexing as kidx
from mlx_stark.custom_kernels import ntt as kntt
from mlx_stark.field import bb

from .kernel_helpers import check_twins, emulation, needs_native, route

TAKES = [  # (shape, axis, indices)
    ((7,), 0, [6, 0, 3, 3]),
    ((9, 5), 0, [8, 1, 1, 0, 4]),
    ((9, 5), 1, [4, 0, 2]),
    ((4, 6, 3), 1, [5, 5, 0, 2]),
    ((4, 6, 3), 2, [2, 0]),
    ((300, 42), 0, list(range(299, -1, -7))),
    ((16,), 0, [15, 14, 13]),
    ((5, 4), 0, []),
]


def test_sources():
    for src in (kidx.take_source(), kidx.scatter_source(), kidx.stack_source(),
                *(kidx.concat_source(1 << k, m) for k in range(1, 6) for m in (False, True)),
                *(kntt.rs_messages_source(l, True) for l in range(5))):
        check_twins(src)
        assert "SHARED" not in src.body
    check_twins(kidx.column_block_source())  # a tile through shared memory


emulated = emulation(kidx, kntt)


@pytest.mark.parametrize("case", TAKES)
def test_emulated_take_equals_mx_take(emulated, case):
    shape, axis, idx = case
    x = bb.random(shape, sum(shape) + axis)
    got = kidx.take(x, mx.array(idx, dtype=mx.uint32), axis)
    want = np.take(np.array(x), np.array(idx, dtype=np.int64), axis=axis)
    assert got.shape == want.shape and got.dtype == mx.uint32
    np.testing.assert_array_equal(np.array(got), want)


CONCATS = [  # shapes of the arrays concatenated
    [(3,), (2, 4)],
    [(5,)],
    [(1,), (0,), (7, 3), (1,)],  # an empty one among them
    [(4,)] * 32,  # one full launch
    [(i % 5 + 1,) for i in range(33)],  # a second launch with the first's output
    [(2, i % 3 + 1) for i in range(70)],  # three chained launches
    [(300, 41), (1,)],  # more words than one block's threads
]


@pytest.mark.parametrize("shapes", CONCATS)
def test_emulated_concat_flat_equals_concatenate(emulated, shapes):
    xs = [bb.random(shape, 11 * i + len(shapes)) for i, shape in enumerate(shapes)]
    got = kidx.concat_flat(xs)
    want = np.concatenate([np.array(x).reshape(-1) for x in xs])
    assert got.shape == want.shape and got.dtype == mx.uint32
    np.testing.assert_array_equal(np.array(got), want)
    assert kidx.concat_flat([]).shape == (0,)
    # mont_tail: the arrays after the first in Montgomery form (a kernel's args)
    got = kidx.concat_flat(xs, mont_tail=True)
    want[xs[0].size:] = np.array(bb.to_mont(mx.array(want[xs[0].size:])))
    np.testing.assert_array_equal(np.array(got), want)


STACKS = [  # (l_skip, log stacked height, [(width, log height), ...])
    (2, 5, [(3, 5)]),
    (2, 6, [(5, 5)]),  # one matrix, zero padding after it
    (3, 6, [(4, 6), (0, 5), (3, 4), (2, 2), (5, 0)]),  # below 2^l: spread values
    (0, 3, [(1, 3), (2, 1)]),
]


@pytest.mark.parametrize("case", STACKS)
def test_emulated_stack_matrix_equals_ops(emulated, case):
    l, m, dims = case
    layout = stacked_layout(l, m, dims)
    mats = [bb.random((1 << h, w), 7 * a + w) for a, (w, h) in enumerate(dims)]
    got = kidx.stack_matrix(layout, mats)
    want = stacked_pcs.stacked_matrix(layout, mats)  # the ops path (the CPU is the device)
    assert got.shape == want.shape == (1 << m, layout.width) and got.dtype == mx.uint32
    np.testing.assert_array_equal(np.array(got), np.array(want))
    got_t = kidx.stack_matrix(layout, mats, transposed=True)
    want_t = stacked_pcs.stacked_matrix(layout, mats, transposed=True)
    np.testing.assert_array_equal(np.array(want_t), np.array(want).T)
    np.testing.assert_array_equal(np.array(got_t), np.array(want_t))
    msgs = kntt.stacked_rs_messages(layout, mats)
    np.testing.assert_array_equal(np.array(msgs), np.array(stacked_pcs.rs_messages(want, l)))


def _column_block_reference(table: np.ndarray, cols, lo: int, n: int, wall: int, sel0: int) -> np.ndarray:
    """The definition: column ``c`` at row ``(lo + i) mod H``; rotated columns read the next
    row (cyclically); selectors first row, last row, transition."""
    h = table.shape[0]
    rows = (lo + np.arange(n)) % h
    out = []
    for c in cols:
        if c < wall:
            out.append(table[rows, c])
        elif c < sel0:
            out.append(table[(rows + 1) % h, c - wall])
        else:
            flag = [rows == 0, rows == h - 1, rows != h - 1][c - sel0]
            out.append(flag.astype(np.uint32))
    return np.stack(out) if out else np.zeros((0, n), dtype=np.uint32)


COLUMN_BLOCKS = [  # (H, wall, rotated, cols, lo, n)
    (8, 3, True, [0, 1, 2, 3, 4, 5, 6, 7, 8], 0, 8),  # all: parts, rotations, selectors
    (16, 5, False, [4, 0, 2, 5, 7], 3, 9),  # any order, a window, no rotation
    (4, 2, True, [1, 3, 4, 5, 6], 0, 16),  # lifted (cyclic repetition)
    (64, 70, True, list(range(0, 140, 3)) + [140, 141, 142], 33, 64),  # several tiles, wrapping
    (32, 40, False, list(range(40)), 0, 32),
    (8, 2, True, [], 0, 8),
]


@pytest.mark.parametrize("case", COLUMN_BLOCKS)
def test_emulated_column_block_equals_definition(emulated, case):
    h, wall, rotated, cols, lo, n = case
    table = bb.random((h, wall), h + wall)
    sel0 = wall * (2 if rotated else 1)
    got = kidx.column_block(table, cols, lo, n, wall, sel0)
    assert got.shape == (len(cols), n) and got.dtype == mx.uint32
    np.testing.assert_array_equal(np.array(got), _column_block_reference(np.array(table), cols, lo, n, wall, sel0))


@pytest.mark.parametrize("n, idx, tail", [(10, [7, 0, 3], (4,)), (5, [4], ()), (64, list(range(0, 64, 5)), (2, 3)),
                                          (3, [], (4,))])
def test_emulated_scatter_equals_ops(emulated, n, idx, tail):
    rows = bb.random((len(idx),) + tail, n + len(idx))
    got = np.array(kidx.scatter_rows(n, mx.array(idx, dtype=mx.uint32), rows))
    want = np.zeros((n,) + tail, dtype=np.uint32)
    want[idx] = np.array(rows)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(np.array(arrays.scatter_rows(n, idx, rows)), want)  # ops path


def test_emulated_proofs_match_golden(emulated, monkeypatch):
    """Whole proofs with every gather, scatter, stacked matrix and Merkle opening of the prover
    on the kernels (the trees from the ops path: one array per level)."""
    from .golden import fingerprint, golden_workloads
    from .test_golden_fingerprints import GOLDEN

    ops = {"arrays.take": kidx.take, "arrays.scatter_rows": kidx.scatter_rows,
           "stacked_pcs.stacked_matrix": kidx.stack_matrix,
           "stacked_pcs.stacked_rs_messages": kntt.stacked_rs_messages,
           "merkle.MerkleTree.open_device": kidx.merkle_open, "arrays.concat_flat": kidx.concat_flat,
           "traces.column_block": kidx.column_block}
    calls = route(monkeypatch, ops)
    for w in golden_workloads():
        assert fingerprint(w) == GOLDEN[w.name], w.name
    assert set(ops) <= set(calls)


@needs_native
def test_device_equals_ops(reference):
    x = bb.random((1 << 12, 42), 3)
    idx = mx.array(np.random.default_rng(0).integers(0, 1 << 12, 5000), dtype=mx.uint32)
    for axis, ix in ((0, idx), (1, idx % 42)):
        got = np.array(arrays.take(x, ix, axis))
        np.testing.assert_array_equal(got, reference(lambda: np.array(arrays.take(x, ix, axis))))
    rows = bb.random((300, 4), 4)
    cells = mx.array(np.arange(0, 3000, 10), dtype=mx.uint32)
    got = np.array(arrays.scatter_rows(3000, cells, rows))
    np.testing.assert_array_equal(got, reference(lambda: np.array(arrays.scatter_rows(3000, cells, rows))))
    layout = stacked_layout(4, 16, [(42, 12), (5, 3), (3, 0)])
    mats = [bb.random((1 << h, w), w) for w, h in layout.matrix_dims]
    got = np.array(stacked_pcs.stacked_matrix(layout, mats))
    np.testing.assert_array_equal(got, reference(lambda: np.array(stacked_pcs.stacked_matrix(layout, mats))))
    got = np.array(stacked_pcs.encode(layout, mats, 1))
    np.testing.assert_array_equal(got, reference(lambda: np.array(stacked_pcs.encode(layout, mats, 1))))
    xs = [bb.random((i % 7, 3), i) for i in range(45)]
    got = np.array(arrays.concat_flat(xs))
    np.testing.assert_array_equal(got, reference(lambda: np.array(arrays.concat_flat(xs))))
