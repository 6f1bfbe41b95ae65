"""Stacked layout, stacked matrix, RS encoding and the stacked commitment (pcs.md §5.3, §6)."""
import dataclasses
import random

import mlx.core as mx
import numpy as np
import pytest

from mlx_stark import tracing
from mlx_stark.errors import InvalidInputError
from mlx_stark.field import EF, P, bb, ext, two_adic_generator
from mlx_stark.keygen import LinearConstraint
from mlx_stark.layout import (
    StackedSlice, commitment_list, stacked_layout, trace_height_violations, trace_order, trace_parts,
)
from mlx_stark.params import default_test_params_small, system_params_small
from mlx_stark.poly import host, mobeq_table, zeta
from mlx_stark.prover import stacked_pcs
from mlx_stark.prover.stacked_pcs import (
    layout_of, rs_code_matrix, stacked_commit, stacked_matrix,
)

RNG = random.Random(77)


def _cols(q):
    return np.array(q).T.tolist()


def _mat(columns):
    return mx.array(np.array(columns, dtype=np.uint32).T.copy())


# ------------------------------------------------------------------ layout
def test_layout_examples_of_section_6_3():
    lay = stacked_layout(3, 3, [(1, 2), (1, 1), (1, 0)])
    assert lay.slices == (StackedSlice(0, 0, 0, 0, 2), StackedSlice(1, 0, 1, 0, 1),
                          StackedSlice(2, 0, 2, 0, 0))
    assert lay.width == 3
    q = stacked_matrix(lay, [_mat([[1, 2, 3, 4]]), _mat([[5, 6]]), _mat([[7]])])
    assert _cols(q) == [[1, 0, 2, 0, 3, 0, 4, 0], [5, 0, 0, 0, 6, 0, 0, 0], [7, 0, 0, 0, 0, 0, 0, 0]]
    lay = stacked_layout(0, 2, [(1, 2), (1, 1), (1, 0)])
    assert [(s.col, s.row) for s in lay.slices] == [(0, 0), (1, 0), (1, 2)]
    q = stacked_matrix(lay, [_mat([[1, 2, 3, 4]]), _mat([[5, 6]]), _mat([[7]])])
    assert _cols(q) == [[1, 2, 3, 4], [5, 6, 7, 0]]


def test_keccakf_layout():
    lay = stacked_layout(4, 21, [(2633, 15)])
    assert lay.width == 42
    for j in (0, 1, 63, 64, 2632):
        s = lay.slices[j]
        assert (s.matrix, s.column, s.col, s.row) == (0, j, j // 64, (j % 64) << 15)
    assert len(lay.matrix_slices(0)) == 2633


def test_layout_zero_width_and_errors():
    lay = stacked_layout(2, 4, [(2, 4), (0, 3), (3, 1)])
    assert [s.matrix for s in lay.slices] == [0, 0, 2, 2, 2]
    assert lay.matrix_slices(1) == ()
    assert [(s.col, s.row, s.length(2), s.stride(2)) for s in lay.slices[2:]] == [
        (2, 0, 4, 2), (2, 4, 4, 2), (2, 8, 4, 2)]
    assert lay.width == 3
    assert stacked_layout(2, 4, [(0, 3)]).width == 0
    with pytest.raises(InvalidInputError):
        stacked_layout(2, 4, [(1, 5)])  # taller than 2^m
    with pytest.raises(InvalidInputError):
        stacked_layout(2, 4, [(1, 2), (1, 3)])  # increasing heights


def test_trace_order_and_commitment_list():
    assert trace_order({0: 3, 2: 5, 3: 3, 5: 1}) == [2, 0, 3, 5]  # height down, AIR id up
    assert trace_parts("c", None, ["k0", "k1"]) == ["c", "k0", "k1"]
    assert trace_parts("c", "p", []) == ["c", "p"]
    parts = [trace_parts("c0", "p0", ["k0"]), trace_parts("c1", None, []), trace_parts("c2", None, ["k2"])]
    assert commitment_list(parts) == [[(0, "c0"), (1, "c1"), (2, "c2")], [(0, "p0")], [(0, "k0")],
                                      [(2, "k2")]]


def test_trace_height_violations():
    # Σ_a coefficients[a]·2^max(h_a, l) against the threshold, over the present AIRs only
    constraints = [LinearConstraint((1, 1, 5), 40), LinearConstraint((0, 2, 0), 100)]
    assert trace_height_violations(constraints, 2, {0: 5, 1: 1}) == []  # 32 + 4 < 40
    assert trace_height_violations(constraints, 2, {0: 5, 1: 3}) == [(0, 40)]
    assert trace_height_violations(constraints, 2, {1: 6, 2: 0}) == [(0, 84), (1, 128)]


def _naive_stack(l, m, matrices):
    """Direct transcription of pcs.md §6.2/§6.3 with Python loops."""
    height = 1 << m
    cols, col, row = [], 0, 0
    for mat in matrices:
        mat = np.array(mat)
        h = mat.shape[0].bit_length() - 1
        length = 1 << max(h, l)
        for j in range(mat.shape[1]):
            if row + length > height:
                col, row = col + 1, 0
            while len(cols) <= col:
                cols.append([0] * height)
            stride = 1 << max(0, l - h)
            for i in range(1 << h):
                cols[col][row + i * stride] = int(mat[i, j])
            row += length
    return cols


def test_stacked_matrix_mixed_heights(on_device):
    l, m = 2, 5
    specs = [(3, 5), (4, 3), (0, 3), (2, 2), (5, 1), (3, 0)]
    mats = [bb.random((1 << h, w), seed=i) for i, (w, h) in enumerate(specs)]
    lay = stacked_layout(l, m, specs)
    q = stacked_matrix(lay, mats)
    assert q.shape == (1 << m, lay.width)
    assert _cols(q) == _naive_stack(l, m, mats)


# ------------------------------------------------------------------ RS encoding
def _naive_msg(column, l):
    """msg(q) of pcs.md §5.3 with Python ints (iDFT per block, then subset sums)."""
    n_blocks = len(column) >> l
    size = 1 << l
    w_inv = pow(two_adic_generator(l), P - 2, P)
    size_inv = pow(size, P - 2, P)
    msg = []
    for x in range(n_blocks):
        blk = column[x * size:(x + 1) * size]
        c = [sum(blk[i] * pow(w_inv, i * j, P) for i in range(size)) * size_inv % P
             for j in range(size)]
        msg += [sum(c[jj] for jj in range(size) if jj & j == jj) % P for j in range(size)]
    return msg


@pytest.mark.parametrize("chunked", [False, True])
@pytest.mark.parametrize("l,m,log_blowup", [(2, 4, 1), (3, 5, 2), (0, 3, 1), (2, 2, 3)])
def test_rs_code_matrix_matches_naive(on_device, l, m, log_blowup, chunked, monkeypatch):
    if chunked:  # the ops path's column chunks: one column at a time
        monkeypatch.setattr(stacked_pcs, "_OPS_CHUNK_ELEMS", 1)
    q = bb.random((1 << m, 3), seed=l * 10 + m)
    msgs, code = stacked_pcs.rs_messages(q, l), rs_code_matrix(q, l, log_blowup)
    qn, mn, cn = np.array(q), np.array(msgs), np.array(code)
    big = m + log_blowup
    w = two_adic_generator(big)
    for c in range(3):
        msg = _naive_msg([int(v) for v in qn[:, c]], l)
        assert [int(v) for v in mn[:, c]] == msg
        expect = [sum(msg[j] * pow(w, i * j, P) for j in range(1 << m)) % P for i in range(1 << big)]
        assert [int(v) for v in cn[:, c]] == expect


def _prism_eval(column, l, u0, us):
    """q̂(u0, u_1..u_n) = Σ_x eq(x, u)·Σ_{i0} q[i0 + 2^l x]·eqD_l(ω^{i0}, u0) (host)."""
    w = two_adic_generator(l)
    n = len(us)
    basis = [host.eq_d(l, pow(w, i0, P), u0) for i0 in range(1 << l)]
    acc = EF.zero()
    for x in range(1 << n):
        zval = sum((basis[i0] * column[i0 + (x << l)] for i0 in range(1 << l)), EF.zero())
        acc = acc + host.eq([(x >> j) & 1 for j in range(n)], us) * zval
    return acc


@pytest.mark.parametrize("l,n", [(2, 3), (3, 1), (0, 4)])
def test_msg_identity_mobeq(on_device, l, n):
    """Σ_b F_q(b)·MobEq(u, b) = q̂(u_0, u_1..u_n) with u = u_cube (pcs.md §5.3)."""
    q = bb.random((1 << (l + n), 2), seed=5 * l + n)
    msgs = stacked_pcs.rs_messages(q, l)
    hyper = zeta(msgs)  # F_q on the hypercube
    u0 = EF(*(RNG.randrange(P) for _ in range(4)))
    us = [EF(*(RNG.randrange(P) for _ in range(4))) for _ in range(n)]
    u_cube = [u0 ** (1 << j) for j in range(l)] + us
    weights = mobeq_table(u_cube)  # (2^m, 4)
    lhs = bb.sum(ext.mul_base(weights[:, None, :], hyper), axis=0)  # (2, 4)
    qn = np.array(q)
    for c in range(2):
        assert ext.to_host(lhs[c])[0] == _prism_eval([int(v) for v in qn[:, c]], l, u0, us)


@pytest.mark.parametrize("l, rows, width", [(2, 32, 5), (0, 8, 3), (3, 64, 1)])
def test_rs_messages_of_a_combination(on_device, l, rows, width):
    """WHIR combines the messages of the stacked columns with extension powers μ^κ; it takes the
    messages of the combined column instead, which is the same because ``rs_messages`` is
    F-linear per column (each EF coefficient of the combination is a base combination)."""
    q = bb.random((rows, width), rows + width)
    mu = ext.random((width,), l)
    per_column = stacked_pcs.rs_messages(q, l)
    want = bb.sum(ext.mul_base(mu[None], per_column), axis=1)  # (rows, 4)
    combined = bb.sum(ext.mul_base(mu[None], q), axis=1)
    got = stacked_pcs.rs_messages(combined, l)
    assert np.array_equal(np.array(got), np.array(want))


# ------------------------------------------------------------------ commitment
def test_stacked_commit_structure(on_device):
    from mlx_stark.hash.merkle import MerkleTree

    params = system_params_small(2, 4, 2)
    mats = [bb.random((16, 3), seed=1), bb.random((8, 2), seed=2), bb.random((2, 1), seed=3)]
    with tracing.timing() as roots:
        data = stacked_commit(params, mats)
    names = tracing.flatten(roots)
    assert "rs_code_matrix" in names and "merkle_tree" in names
    lay = layout_of(params, mats)
    assert data.layout == lay and data.width == lay.width == 2
    q = stacked_matrix(lay, mats)
    code = rs_code_matrix(q, 2, 1)
    assert np.array_equal(np.array(data.matrix), np.array(q))
    assert not hasattr(data, "msgs")  # WHIR derives what it needs from Q (test_whir.py)
    assert data.codewords.shape == (128, 2)
    assert np.array_equal(np.array(data.codewords), np.array(code))
    assert data.commit == tuple(MerkleTree.commit(code, params.k_whir).root)
    assert len(data.commit) == 8
    again = stacked_commit(params, [mx.array(np.array(m)) for m in mats])
    assert again.commit == data.commit
    tweaked = [mats[0], bb.add(mats[1], mx.ones_like(mats[1])), mats[2]]
    assert stacked_commit(params, tweaked).commit != data.commit


def test_stacked_commit_rejects_bad_input():
    params = default_test_params_small()
    with pytest.raises(InvalidInputError):
        stacked_commit(params, [mx.zeros((8, 0), dtype=mx.uint32)])  # zero stacked width
    with pytest.raises(InvalidInputError):
        stacked_commit(params, [mx.zeros((12, 2), dtype=mx.uint32)])  # height not a power of 2
    with pytest.raises(InvalidInputError):
        stacked_commit(params, [mx.zeros((1 << 11, 1), dtype=mx.uint32)])  # above 2^m = 2^10
    with pytest.raises(InvalidInputError):
        stacked_commit(params, [mx.zeros((4, 1), dtype=mx.uint32), mx.zeros((8, 1), dtype=mx.uint32)])
    with pytest.raises(InvalidInputError):
        stacked_commit(params, [mx.full((8, 1), P, dtype=mx.uint32)])  # not canonical
    narrow = dataclasses.replace(params, w_stack=1)
    with pytest.raises(InvalidInputError):
        stacked_commit(narrow, [mx.zeros((1 << 10, 2), dtype=mx.uint32)])
