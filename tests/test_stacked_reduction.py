"""Stacked opening reduction (pcs.md §7): honest claims computed naively (prismalinear
evaluation) are reduced by the prover and accepted by the verifier, for mixed heights
(including heights below 2^l), several commitments, with and without rotation claims;
tampering with claims or any message is rejected.

The helpers here (:func:`make_instance`, :func:`naive_claims`) are shared with test_whir.py.
"""
import dataclasses
import random

import mlx.core as mx
import numpy as np
import pytest

from mlx_stark.errors import InvalidInputError, VerificationError
from mlx_stark.field import bb
from mlx_stark.field.bb import P
from mlx_stark.field.host import EF, horner
from mlx_stark.params import system_params_small_with_poly_len
from mlx_stark.poly import host
from mlx_stark.proof import StackingProof
from mlx_stark.prover.stacked_pcs import stacked_commit
from mlx_stark.prover.stacked_reduction import prove_stacked_reduction
from mlx_stark.transcript import Transcript
from mlx_stark.verifier.stacked_reduction import verify_stacked_reduction


def rand_ef(rng):
    return EF(*(rng.randrange(P) for _ in range(4)))


def prism_eval(col, l, h, r):
    """Naive ``t̂(r_0, r_1..r_{h−l})`` (pcs.md §5.1) or, below ``2^l``, the lift ``t̂(r_0^{2^{l−h}})``."""
    n_i = h - l
    if n_i >= 0:
        basis = host.lagrange_basis(l, r[0])
        acc = EF.zero()
        for x in range(1 << n_i):
            inner = EF.zero()
            for i0 in range(1 << l):
                inner = inner + basis[i0] * col[i0 + (x << l)]
            acc = acc + inner * host.eq([(x >> j) & 1 for j in range(n_i)], r[1:1 + n_i])
        return acc
    basis = host.lagrange_basis(h, r[0] ** (1 << -n_i))
    return sum((basis[i] * col[i] for i in range(1 << h)), EF.zero())


@dataclasses.dataclass
class Instance:
    params: object
    matrices: list  # per commit, list of numpy (2^h, w) matrices in trace order
    pcs: list
    need_rot: list
    r: list
    claims: list

    @property
    def layouts(self):
        return [p.layout for p in self.pcs]


def naive_claims(params, matrices, layouts, need_rot, r):
    out = []
    for c, mats in enumerate(matrices):
        claims = []
        for s in layouts[c].slices:
            col = [int(v) for v in mats[s.matrix][:, s.column]]
            v = prism_eval(col, params.l_skip, s.log_height, r)
            rot = prism_eval(col[1:] + col[:1], params.l_skip, s.log_height, r) \
                if need_rot[c][s.matrix] else EF.zero()
            claims.append((v, rot))
        out.append(claims)
    return out


def make_instance(l, n, k, dims, rots, seed, log_final=None):
    """``dims[c]`` = ``[(width, log_height), …]`` of commit ``c`` (trace order); ``rots`` alike."""
    rng = random.Random(seed)
    if log_final is None:
        log_final = (l + n) % k
    params = system_params_small_with_poly_len(l, n, k, log_final)
    matrices = [[np.array([[rng.randrange(P) for _ in range(w)] for _ in range(1 << h)],
                          dtype=np.uint32).reshape(1 << h, w) for (w, h) in cd] for cd in dims]
    pcs = [stacked_commit(params, [mx.array(a) for a in mats]) for mats in matrices]
    n_max = max(0, max(h for cd in dims for _, h in cd) - l)
    r = [rand_ef(rng) for _ in range(1 + n_max)]
    claims = naive_claims(params, matrices, [p.layout for p in pcs], rots, r)
    return Instance(params, matrices, pcs, rots, r, claims)


def verify(inst, proof, claims=None, need_rot=None, r=None, transcript=None):
    return verify_stacked_reduction(
        inst.params, transcript or Transcript(), proof, inst.layouts,
        inst.need_rot if need_rot is None else need_rot, inst.r if r is None else r,
        inst.claims if claims is None else claims)


CASES = {
    # l, n, k, per-commit (width, log_height), per-commit need_rot
    "l2_mixed": (2, 3, 2, [[(3, 5), (2, 3), (1, 1), (2, 0)], [(2, 4)], [(1, 1)]],
                 [[True, False, True, True], [False], [True]]),
    "l0": (0, 3, 1, [[(2, 3), (1, 2), (3, 0)], [(1, 1)]], [[True, True, False], [True]]),
    "l1": (1, 2, 2, [[(1, 3), (2, 1), (1, 0)]], [[True, False, True]]),
    "l3_small_traces": (3, 1, 3, [[(2, 2), (1, 1), (3, 0)], [(1, 3)]], [[True, True, False], [True]]),
    "l4_n0": (4, 0, 2, [[(2, 4), (1, 2)]], [[True, False]]),
    "l2_no_rot": (2, 2, 2, [[(4, 4), (2, 2)]], [[False, False]]),
}


@pytest.fixture(scope="module")
def instance():
    return make_instance(*CASES["l2_mixed"], seed=11)


@pytest.fixture(scope="module")
def honest(instance):
    t = Transcript()
    proof, u = prove_stacked_reduction(instance.params, t, instance.pcs, instance.need_rot, instance.r)
    return proof, u, t.sample()


@pytest.mark.parametrize("name", sorted(CASES))
def test_prove_then_verify(name):
    inst = make_instance(*CASES[name], seed=hash(name) % 1000)
    tp, tv = Transcript(), Transcript()
    tp.observe(5)
    tv.observe(5)
    proof, u = prove_stacked_reduction(inst.params, tp, inst.pcs, inst.need_rot, inst.r)
    l, n = inst.params.l_skip, inst.params.n_stack
    assert len(proof.univariate_round_coeffs) == 2 * ((1 << l) - 1) + 1
    assert len(proof.sumcheck_round_polys) == n
    assert [len(o) for o in proof.stacking_openings] == [p.width for p in inst.pcs]
    assert verify(inst, proof, transcript=tv) == u
    assert tp.sample() == tv.sample()  # transcripts stay in sync


def stacked_column_eval(q_col, l, n, u):
    """Naive ``q̂(u_0, u_1..u_n)`` of a stacked column (prismalinear, d = n)."""
    return prism_eval(q_col, l, l + n, u)


def test_openings_are_stacked_column_evaluations(instance, honest):
    proof, u, _ = honest
    l, n = instance.params.l_skip, instance.params.n_stack
    for c, pcs in enumerate(instance.pcs):
        q = np.array(pcs.matrix)
        for col in range(pcs.width):
            assert proof.stacking_openings[c][col] == stacked_column_eval(
                [int(v) for v in q[:, col]], l, n, u)


def test_round0_polynomial_sums_to_claims(instance, honest):
    proof, _, _ = honest
    t = Transcript()
    lam = t.sample_ext()
    expected, lp = EF.zero(), EF.one()
    for c, claims in enumerate(instance.claims):
        for v, v_rot in claims:
            expected = expected + lp * (v + lam * v_rot)
            lp = lp * lam * lam
    l = instance.params.l_skip
    from mlx_stark.field.bb import two_adic_generator
    w = two_adic_generator(l)
    total = sum((horner(proof.univariate_round_coeffs, pow(w, i, P)) for i in range(1 << l)), EF.zero())
    assert total == expected


def test_deterministic(instance, honest):
    proof, u, _ = honest
    again, u2 = prove_stacked_reduction(instance.params, Transcript(), instance.pcs,
                                        instance.need_rot, instance.r)
    assert again.to_bytes() == proof.to_bytes() and u2 == u


def test_chunked_product_rounds_agree(instance, honest, monkeypatch):
    """The product sumcheck's ops path in row chunks (down to 4 rows) gives the same proof;
    and its functions the same tables and sums as on whole tables."""
    from mlx_stark.field import bb
    from mlx_stark.prover import sumcheck
    proof, u, _ = honest
    f, w = bb.random((64, 3, 4), 5), bb.random((64, 3, 4), 6)
    whole = [sumcheck.product_round_values(f, w), *sumcheck.fold_product_round(f, w, EF(1, 2, 3, 4))]
    monkeypatch.setattr(sumcheck, "_CHUNK_ELEMS", 1)
    chunked = [sumcheck.product_round_values(f, w), *sumcheck.fold_product_round(f, w, EF(1, 2, 3, 4))]
    for a, b in zip(whole, chunked):
        np.testing.assert_array_equal(np.array(a), np.array(b))
    again, u2 = prove_stacked_reduction(instance.params, Transcript(), instance.pcs,
                                        instance.need_rot, instance.r)
    assert again.to_bytes() == proof.to_bytes() and u2 == u


def test_weight_table_in_row_chunks(instance, honest, monkeypatch):
    """The weight table built a few rows at a time (chunks shorter than some windows, longer
    than others) equals the table built at once and the sum of the pieces' outer products;
    and the proof is unchanged (round 0 then also contracts one window at a time)."""
    from mlx_stark.field import bb, ext
    from mlx_stark.prover import stacked_reduction as sr
    n, width = 4, 3
    pieces = [(nt, bb.random((1 << (n - nt), width, 4), 10 + nt),
               bb.random((1 << (n - nt), width, 4), 20 + nt),
               bb.random((1 << nt, 4), 30 + nt), bb.random((1 << nt, 4), 40 + nt))
              for nt in (0, 2, 4)]
    expect = sum(np.array(ext.add(ext.mul(a[:, None], t[None, :, None]),
                                  ext.mul(b[:, None], t_rot[None, :, None])),
                          dtype=np.uint64).reshape(1 << n, width, 4)
                 for _, a, b, t, t_rot in pieces) % P
    whole = np.array(sr.weight_table(n, width, pieces))
    np.testing.assert_array_equal(whole, expect)
    for elems in (1, 8 * width):  # 1 and 2 rows per chunk
        monkeypatch.setattr(sr, "_CHUNK_ELEMS", elems)
        np.testing.assert_array_equal(np.array(sr.weight_table(n, width, pieces)), whole)
    proof, u, _ = honest
    again, u2 = prove_stacked_reduction(instance.params, Transcript(), instance.pcs,
                                        instance.need_rot, instance.r)
    assert again.to_bytes() == proof.to_bytes() and u2 == u


def test_codec_round_trip_of_honest_proof(instance, honest):
    proof, u, _ = honest
    back = StackingProof.from_bytes(proof.to_bytes())
    assert back == proof
    assert verify(instance, back) == u


# ------------------------------------------------------------------ rejection
def _tampered(proof, field, index, sub=None):
    p = StackingProof(list(proof.univariate_round_coeffs), [tuple(x) for x in proof.sumcheck_round_polys],
                      [list(o) for o in proof.stacking_openings])
    seq = getattr(p, field)
    if field == "sumcheck_round_polys":
        pair = list(seq[index])
        pair[sub] = pair[sub] + 1
        seq[index] = tuple(pair)
    elif field == "stacking_openings":
        seq[index][sub] = seq[index][sub] + EF(0, 1)
    else:
        seq[index] = seq[index] + 1
    return p


@pytest.mark.parametrize("index", [0, 1, 3, 4, 6])
def test_tampered_round0_coefficient_rejected(instance, honest, index):
    with pytest.raises(VerificationError):
        verify(instance, _tampered(honest[0], "univariate_round_coeffs", index))


@pytest.mark.parametrize("index,sub", [(0, 0), (0, 1), (1, 0), (2, 1)])
def test_tampered_sumcheck_message_rejected(instance, honest, index, sub):
    with pytest.raises(VerificationError):
        verify(instance, _tampered(honest[0], "sumcheck_round_polys", index, sub))


@pytest.mark.parametrize("commit,col", [(0, 0), (0, 2), (1, 0), (2, 0)])
def test_tampered_opening_rejected(instance, honest, commit, col):
    with pytest.raises(VerificationError) as err:
        verify(instance, _tampered(honest[0], "stacking_openings", commit, col))
    assert err.value.reason == "StackedFinalMismatch"


@pytest.mark.parametrize("commit,slice_,which", [(0, 0, 0), (0, 0, 1), (0, 4, 0), (0, 6, 1), (1, 1, 0), (2, 0, 1)])
def test_wrong_claim_rejected(instance, honest, commit, slice_, which):
    claims = [list(c) for c in instance.claims]
    pair = list(claims[commit][slice_])
    pair[which] = pair[which] + 1
    claims[commit][slice_] = tuple(pair)
    with pytest.raises(VerificationError) as err:
        verify(instance, honest[0], claims=claims)
    assert err.value.reason == "StackedSumMismatch"


def test_rotation_claim_of_trace_without_rotation_is_ignored(instance, honest):
    # matrix 1 of commit 0 has need_rot = False: its v_rot is read as 0 whatever is passed
    claims = [list(c) for c in instance.claims]
    idx = [i for i, s in enumerate(instance.layouts[0].slices) if s.matrix == 1][0]
    claims[0][idx] = (claims[0][idx][0], EF(123))
    assert verify(instance, honest[0], claims=claims) == honest[1]


def test_wrong_need_rot_or_point_rejected(instance, honest):
    flipped = [list(x) for x in instance.need_rot]
    flipped[0][1] = True
    with pytest.raises(VerificationError):
        verify(instance, honest[0], need_rot=flipped)
    with pytest.raises(VerificationError):
        verify(instance, honest[0], r=[instance.r[0] + 1] + instance.r[1:])


def test_shape_errors_rejected(instance, honest):
    proof = honest[0]
    bad = [
        StackingProof(proof.univariate_round_coeffs[:-1], proof.sumcheck_round_polys, proof.stacking_openings),
        StackingProof(proof.univariate_round_coeffs, proof.sumcheck_round_polys[:-1], proof.stacking_openings),
        StackingProof(proof.univariate_round_coeffs, proof.sumcheck_round_polys, proof.stacking_openings[:-1]),
        StackingProof(proof.univariate_round_coeffs, proof.sumcheck_round_polys,
                      [proof.stacking_openings[0][:-1]] + proof.stacking_openings[1:]),
        StackingProof(proof.univariate_round_coeffs[:-1] + [5], proof.sumcheck_round_polys, proof.stacking_openings),
        StackingProof(proof.univariate_round_coeffs, [(EF(1),)] + proof.sumcheck_round_polys[1:],
                      proof.stacking_openings),
        StackingProof(None, proof.sumcheck_round_polys, proof.stacking_openings),
        "not a proof",
    ]
    for p in bad:
        with pytest.raises(VerificationError) as err:
            verify(instance, p)
        assert err.value.reason == "ProofShape"


def test_malformed_statement_rejected(instance, honest):
    with pytest.raises(VerificationError):
        verify(instance, honest[0], claims=instance.claims[:-1])
    with pytest.raises(VerificationError):
        verify(instance, honest[0], r=instance.r[:1])
    with pytest.raises(VerificationError):
        verify(instance, honest[0], claims=[[(1, 2)] * len(c) for c in instance.claims])
    with pytest.raises(VerificationError):
        verify(instance, honest[0], claims=[[EF(1)] * len(c) for c in instance.claims])


def test_prover_rejects_bad_inputs(instance):
    with pytest.raises(InvalidInputError):
        prove_stacked_reduction(instance.params, Transcript(), instance.pcs, instance.need_rot[:-1], instance.r)
    with pytest.raises(InvalidInputError):
        prove_stacked_reduction(instance.params, Transcript(), instance.pcs, instance.need_rot, instance.r[:1])


@pytest.mark.parametrize("l", [0, 2, 4])
def test_height_weights_at_many_base_points_equal_the_scalar_formula(l):
    from mlx_stark.field.bb import two_adic_generator
    from mlx_stark.prover.stacked_reduction import _height_weights, _height_weights_at

    rng = random.Random(l)
    w = two_adic_generator(l + 1)
    zs = [pow(w, j, P) for j in range(1 << (l + 1))] + [rng.randrange(P) for _ in range(3)]
    for h in range(0, l + 3):
        r0 = rand_ef(rng)
        got = _height_weights(l, h, r0, np.array(zs, dtype=np.uint64))
        want = np.stack([_height_weights_at(l, h, r0, EF.lift(z)) for z in zs])
        assert got.shape == (len(zs), 3, 4) and np.array_equal(got, want), h


@pytest.mark.parametrize("l", [0, 1, 3])
def test_values_on_d_prime_matrix_equals_transforms(monkeypatch, l):
    """Round 0's values on D' from one matrix product equal the iDFT, coset shift and DFT
    (the path of larger domains), and on D they are the given values."""
    from mlx_stark.prover import stacked_reduction as sr

    on_d = bb.random((3, 1 << l, 8), l)
    monkeypatch.setattr(sr, "native_kernels_active", lambda: True)  # the GPU's path, here
    got = sr._on_d_prime(on_d, l)
    monkeypatch.setattr(sr, "_MATRIX_DOMAIN", 0)
    want = sr._on_d_prime(on_d, l)
    assert got.shape == want.shape == (3, 2 << l, 8)
    assert np.array_equal(np.array(got), np.array(want))
    assert np.array_equal(np.array(got)[:, 0::2], np.array(on_d))
