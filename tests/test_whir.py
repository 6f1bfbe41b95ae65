"""WHIR (pcs.md §8) end to end with the stacked reduction: commit, reduce, open, verify for
several parameter sets; the consistency facts of §8.4 one by one; tampering with any message,
witness, commitment, Merkle path or opened value is rejected; codec round trips and the
proof-shape checks of §10.3."""
import dataclasses
import random

import mlx.core as mx
import numpy as np
import pytest

from mlx_stark.errors import VerificationError
from mlx_stark.field import ext
from mlx_stark.field.bb import P, two_adic_generator
from mlx_stark.field.host import EF, horner
from mlx_stark.hash.merkle import MerkleTree
from mlx_stark.poly import eval_univariate, host, idft, mle_eval, mobius
from mlx_stark.proof import StackingProof, WhirProof
from mlx_stark.prover import whir as whir_prover
from mlx_stark.prover.stacked_pcs import rs_messages
from mlx_stark.prover.stacked_reduction import prove_stacked_reduction
from mlx_stark.prover.whir import prove_whir
from mlx_stark.transcript import Transcript
from mlx_stark.verifier.proof_shape import check_pcs_shape
from mlx_stark.verifier.stacked_reduction import verify_stacked_reduction
from mlx_stark.verifier.whir import binary_k_fold, verify_whir
from .test_stacked_reduction import make_instance, rand_ef


def prove_all(inst, transcript=None):
    t = transcript or Transcript()
    sp, u = prove_stacked_reduction(inst.params, t, inst.pcs, inst.need_rot, inst.r)
    wp = prove_whir(inst.params, t, inst.pcs, host.u_cube(inst.params.l_skip, u))
    return sp, wp, t.sample()


def verify_all(inst, sp, wp, commits=None, openings=None, u_map=None, params=None):
    params = params or inst.params
    t = Transcript()
    u = verify_stacked_reduction(params, t, sp, inst.layouts, inst.need_rot, inst.r, inst.claims)
    u_cube = host.u_cube(params.l_skip, u)
    if u_map:
        u_cube = u_map(u_cube)
    verify_whir(params, t, wp, commits or [p.commit for p in inst.pcs], [p.width for p in inst.pcs],
                openings or sp.stacking_openings, u_cube)
    return t.sample()


# l, n, k, log_final_poly_len (R = ceil((l + n − log_final)/k)), dims, need_rot
CASES = {
    "l0_k1_R2": (0, 4, 1, 2, [[(2, 4), (1, 2), (2, 0)], [(1, 3)]], [[True, False, True], [True]]),
    "l1_k2_R2": (1, 4, 2, 1, [[(3, 4), (1, 0)]], [[True, True]]),
    "l2_k1_R3": (2, 4, 1, 3, [[(2, 5), (3, 3), (1, 1)], [(1, 6)]], [[True, False, True], [False]]),
    "l3_k3_R2": (3, 3, 3, 0, [[(2, 5), (1, 2)], [(2, 1)]], [[False, True], [True]]),
    "l4_k4_R1": (4, 1, 4, 1, [[(2, 5), (2, 4), (1, 3)]], [[True, True, False]]),
    "l1_k2_R3": (1, 6, 2, 1, [[(2, 7), (1, 2)], [(3, 5)], [(1, 0)]], [[True, False], [True], [True]]),
    "l2_k3_R2": (2, 5, 3, 1, [[(3, 6), (1, 1)]], [[False, True]]),
    "l0_k3_R1": (0, 3, 3, 0, [[(1, 3), (2, 1)]], [[True, True]]),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_prove_then_verify(name):
    l, n, k, log_final, dims, rots = CASES[name]
    inst = make_instance(l, n, k, dims, rots, seed=sum(map(ord, name)), log_final=log_final)
    params = inst.params
    sp, wp, after = prove_all(inst)
    assert len(wp.codeword_commits) == params.num_whir_rounds - 1
    assert len(wp.final_poly) == 1 << params.log_final_poly_len()
    assert verify_all(inst, sp, wp) == after


# ------------------------------------------------------------------ honest run shared by the tamper tests
@pytest.fixture(scope="module")
def inst():
    # m = 7, k = 2, R = 3: codewords G_1, G_2 and a final polynomial of 2 coefficients
    return make_instance(2, 5, 2, [[(3, 6), (2, 4), (1, 1)], [(2, 7)]], [[True, False, True], [True]],
                         seed=3, log_final=1)


@pytest.fixture(scope="module")
def honest(inst):
    sp, wp, _ = prove_all(inst)
    verify_all(inst, sp, wp)
    return sp, wp


def copy_whir(wp):
    return WhirProof(
        wp.mu_pow_witness, list(wp.whir_sumcheck_polys), list(wp.codeword_commits), list(wp.ood_values),
        list(wp.folding_pow_witnesses), list(wp.query_phase_pow_witnesses),
        [a.copy() for a in wp.initial_round_opened_rows], [a.copy() for a in wp.initial_round_merkle_proofs],
        [a.copy() for a in wp.codeword_opened_values], [a.copy() for a in wp.codeword_merkle_proofs],
        list(wp.final_poly))


def rejects(inst, sp, wp, **kw):
    with pytest.raises(VerificationError) as err:
        verify_all(inst, sp, wp, **kw)
    return err.value.reason


def test_deterministic(inst, honest):
    sp, wp = honest
    sp2, wp2, _ = prove_all(inst)
    assert sp2.to_bytes() == sp.to_bytes() and wp2.to_bytes() == wp.to_bytes()


def test_codec_round_trip_of_honest_proof(inst, honest):
    sp, wp = honest
    data = wp.to_bytes()
    back = WhirProof.from_bytes(data)
    assert back == wp and back.to_bytes() == data
    verify_all(inst, StackingProof.from_bytes(sp.to_bytes()), back)
    for cut in (1, len(data) // 2, len(data) - 1):
        with pytest.raises(VerificationError):
            WhirProof.from_bytes(data[:cut])
    with pytest.raises(VerificationError):
        WhirProof.from_bytes(data + b"\x01")


@pytest.mark.parametrize("c", [0, 1])
def test_tampered_commitment(inst, honest, c):
    commits = [p.commit for p in inst.pcs]
    commits[c] = (commits[c][0] ^ 1,) + commits[c][1:]
    assert rejects(inst, *honest, commits=commits) == "InvalidMerkleProof"


@pytest.mark.parametrize("step,which", [(0, 0), (0, 1), (1, 1), (3, 0), (5, 1)])
def test_tampered_sumcheck_message(inst, honest, step, which):
    wp = copy_whir(honest[1])
    pair = list(wp.whir_sumcheck_polys[step])
    pair[which] = pair[which] + 1
    wp.whir_sumcheck_polys[step] = tuple(pair)
    rejects(inst, honest[0], wp)


@pytest.mark.parametrize("i", [0, 1])
def test_tampered_ood_value(inst, honest, i):
    wp = copy_whir(honest[1])
    wp.ood_values[i] = wp.ood_values[i] + EF(0, 0, 1)
    rejects(inst, honest[0], wp)


@pytest.mark.parametrize("j", [0, 1])
def test_tampered_final_poly(inst, honest, j):
    wp = copy_whir(honest[1])
    wp.final_poly[j] = wp.final_poly[j] + 1
    rejects(inst, honest[0], wp)


@pytest.mark.parametrize("i", [0, 1])
def test_tampered_codeword_commit(inst, honest, i):
    wp = copy_whir(honest[1])
    d = wp.codeword_commits[i]
    wp.codeword_commits[i] = (d[0],) + ((d[1] + 1) % P,) + tuple(d[2:])
    rejects(inst, honest[0], wp)


@pytest.mark.parametrize("field", ["mu", "folding", "query"])
def test_tampered_pow_witness(inst, honest, field):
    wp = copy_whir(honest[1])
    if field == "mu":
        wp.mu_pow_witness = (wp.mu_pow_witness + 1) % P
    elif field == "folding":
        wp.folding_pow_witnesses[2] = (wp.folding_pow_witnesses[2] + 1) % P
    else:
        wp.query_phase_pow_witnesses[1] = (wp.query_phase_pow_witnesses[1] + 1) % P
    rejects(inst, honest[0], wp)


def test_invalid_pow_witnesses_named():
    """With 8 PoW bits a wrong witness fails the PoW check itself."""
    base = make_instance(2, 3, 2, [[(2, 5)]], [[True]], seed=9, log_final=1)
    params = dataclasses.replace(base.params, whir=dataclasses.replace(
        base.params.whir, mu_pow_bits=8, folding_pow_bits=8, query_phase_pow_bits=8))
    inst = dataclasses.replace(base, params=params)
    sp, wp, _ = prove_all(inst)
    verify_all(inst, sp, wp)
    for field, reason in [("mu", "InvalidMuPowWitness"), ("folding", "InvalidFoldingPowWitness"),
                          ("query", "InvalidQueryPowWitness")]:
        bad = copy_whir(wp)
        if field == "mu":
            bad.mu_pow_witness = _failing_witness(wp.mu_pow_witness)
        elif field == "folding":
            bad.folding_pow_witnesses[0] = _failing_witness(wp.folding_pow_witnesses[0])
        else:
            bad.query_phase_pow_witnesses[0] = _failing_witness(wp.query_phase_pow_witnesses[0])
        with pytest.raises(VerificationError) as err:
            verify_all(inst, sp, bad)
        assert err.value.reason == reason


def _failing_witness(w):
    # a 2^-8 chance per candidate that a wrong witness passes; candidates are deterministic
    return (w + 1) % P


@pytest.mark.parametrize("c,q,level", [(0, 0, 0), (0, 3, 2), (1, 1, 5)])
def test_tampered_initial_merkle_path(inst, honest, c, q, level):
    wp = copy_whir(honest[1])
    wp.initial_round_merkle_proofs[c][q, level, 3] = (int(wp.initial_round_merkle_proofs[c][q, level, 3]) + 1) % P
    assert rejects(inst, honest[0], wp) == "InvalidMerkleProof"


@pytest.mark.parametrize("c,q,s,col", [(0, 0, 0, 0), (0, 2, 3, 1), (1, 4, 1, 1)])
def test_tampered_initial_opened_row(inst, honest, c, q, s, col):
    wp = copy_whir(honest[1])
    wp.initial_round_opened_rows[c][q, s, col] = (int(wp.initial_round_opened_rows[c][q, s, col]) + 1) % P
    assert rejects(inst, honest[0], wp) == "InvalidMerkleProof"


@pytest.mark.parametrize("r,q,level", [(0, 0, 0), (0, 1, 3), (1, 0, 2)])
def test_tampered_codeword_merkle_path(inst, honest, r, q, level):
    wp = copy_whir(honest[1])
    wp.codeword_merkle_proofs[r][q, level, 0] = (int(wp.codeword_merkle_proofs[r][q, level, 0]) + 1) % P
    assert rejects(inst, honest[0], wp) == "InvalidMerkleProof"


@pytest.mark.parametrize("r,q,s,coef", [(0, 0, 0, 0), (0, 1, 3, 2), (1, 0, 2, 3)])
def test_tampered_codeword_opened_value(inst, honest, r, q, s, coef):
    wp = copy_whir(honest[1])
    wp.codeword_opened_values[r][q, s, coef] = (int(wp.codeword_opened_values[r][q, s, coef]) + 1) % P
    assert rejects(inst, honest[0], wp) == "InvalidMerkleProof"


def test_wrong_openings_or_point(inst, honest):
    sp, wp = honest
    openings = [list(o) for o in sp.stacking_openings]
    openings[1][0] = openings[1][0] + 1
    assert rejects(inst, sp, wp, openings=openings) == "WhirFinalMismatch"
    assert rejects(inst, sp, wp, u_map=lambda u: [u[0] + 1] + u[1:]) == "WhirFinalMismatch"


# ------------------------------------------------------------------ proof shape (pcs.md §10.3)
def test_shape_checks(inst, honest):
    sp, wp = honest
    widths = [p.width for p in inst.pcs]
    check_pcs_shape(inst.params, widths, sp, wp)
    with pytest.raises(VerificationError):
        check_pcs_shape(dataclasses.replace(inst.params, w_stack=sum(widths) - 1), widths, sp, wp)
    mutations = [
        lambda p: p.initial_round_opened_rows.__setitem__(0, p.initial_round_opened_rows[0][1:]),
        lambda p: p.initial_round_opened_rows.__setitem__(1, p.initial_round_opened_rows[1][:, :, :1]),
        lambda p: p.initial_round_merkle_proofs.__setitem__(0, p.initial_round_merkle_proofs[0][:, 1:]),
        lambda p: p.codeword_opened_values.__setitem__(0, p.codeword_opened_values[0][:-1]),
        lambda p: p.codeword_merkle_proofs.__setitem__(1, p.codeword_merkle_proofs[1][:, :-1]),
        lambda p: p.codeword_opened_values.__setitem__(1, p.codeword_opened_values[1].astype(np.float64)),
        lambda p: p.final_poly.pop(),
        lambda p: p.final_poly.__setitem__(0, 3),
        lambda p: p.ood_values.pop(),
        lambda p: p.codeword_commits.__setitem__(0, (1, 2, 3)),
        lambda p: p.folding_pow_witnesses.pop(),
        lambda p: p.query_phase_pow_witnesses.__setitem__(0, P),
        lambda p: p.whir_sumcheck_polys.append((EF(1), EF(2))),
        lambda p: setattr(p, "mu_pow_witness", -1),
        lambda p: p.initial_round_opened_rows.__setitem__(
            0, np.full_like(p.initial_round_opened_rows[0], P)),
    ]
    for mutate in mutations:
        bad = copy_whir(wp)
        mutate(bad)
        assert rejects(inst, sp, bad) == "ProofShape"


def test_malformed_statement(inst, honest):
    sp, wp = honest
    t = Transcript()
    u = verify_stacked_reduction(inst.params, t, sp, inst.layouts, inst.need_rot, inst.r, inst.claims)
    u_cube = host.u_cube(inst.params.l_skip, u)
    commits = [p.commit for p in inst.pcs]
    widths = [p.width for p in inst.pcs]
    for args in [(commits[:1], widths, sp.stacking_openings, u_cube),
                 (commits, widths, sp.stacking_openings, u_cube[:-1]),
                 (commits, widths, [o[:1] for o in sp.stacking_openings], u_cube),
                 (commits, widths, sp.stacking_openings, [1] * len(u_cube))]:
        with pytest.raises(VerificationError):
            verify_whir(inst.params, t.copy(), wp, *args)


# ------------------------------------------------------------------ consistency facts (pcs.md §8.4)
class RecordingTree(MerkleTree):
    """Stands in for MerkleTree inside the WHIR prover and records what it commits."""

    committed: list = []

    @classmethod
    def commit(cls, matrix, log_rows_per_query, check_values=True):
        RecordingTree.committed.append(np.array(matrix))
        return super().commit(matrix, log_rows_per_query, check_values)


@pytest.fixture(scope="module")
def codewords(inst):
    """The codewords G_1, G_2 committed by the prover in the honest run (recorded)."""
    RecordingTree.committed = []
    mp = pytest.MonkeyPatch()
    mp.setattr(whir_prover, "MerkleTree", RecordingTree)
    try:
        prove_all(inst)
    finally:
        mp.undo()
    return list(RecordingTree.committed)


def _ef_col(arr):
    return [EF(*(int(c) for c in row)) for row in np.asarray(arr).reshape(-1, 4)]


def _coset_fact(values, coeffs, log_size, k, idx):
    qs = 1 << (log_size - k)
    w_l, w_k = two_adic_generator(log_size), two_adic_generator(k)
    for s in range(1 << k):
        point = pow(w_l, idx, P) * pow(w_k, s, P) % P
        assert values[idx + s * qs] == horner(coeffs, point)


def test_fact_rows_of_a_leaf_group_are_coset_evaluations(inst, codewords):
    params, k = inst.params, inst.params.k_whir
    m, l0 = params.log_stacked_height, params.log_stacked_height + params.log_blowup
    pcs = inst.pcs[0]
    msgs, code = np.array(rs_messages(pcs.matrix, params.l_skip)), np.array(pcs.codewords)
    rng = random.Random(1)
    for col in range(pcs.width):
        idx = rng.randrange(1 << (l0 - k))
        _coset_fact([EF(int(v)) for v in code[:, col]], [int(v) for v in msgs[:, col]], l0, k, idx)
    rows, _ = pcs.tree.open_many([5])
    assert np.array_equal(rows[0], code[5::1 << (l0 - k)])
    for i, g in enumerate(codewords, start=1):
        values = _ef_col(g)
        coeffs = _ef_col(idft(mx.array(g), axis=0))[:1 << (m - k * i)]
        _coset_fact(values, coeffs, l0 - i, k, rng.randrange(1 << (l0 - i - k)))


def test_fact_rate_per_round(inst, codewords):
    params, k = inst.params, inst.params.k_whir
    m, l0 = params.log_stacked_height, params.log_stacked_height + params.log_blowup
    assert len(codewords) == params.num_whir_rounds - 1
    for i, g in enumerate(codewords, start=1):
        assert g.shape == (1 << (l0 - i), 4)  # domain 2^{L0 − i}
        coeffs = np.array(idft(mx.array(g), axis=0))
        degree_bound = 1 << (m - k * i)
        assert not coeffs[degree_bound:].any() and coeffs[:degree_bound].any()
        assert (l0 - i) - (m - k * i) == params.log_blowup + i * (k - 1)  # −log2 of the rate


def test_fact_ood_value_three_ways():
    rng = random.Random(4)
    for d in (0, 1, 3, 5):
        g = ext.from_host([rand_ef(rng) for _ in range(1 << d)])  # hypercube table
        g_hat = mobius(g)
        coeffs = ext.to_host(g_hat)
        z0 = rand_ef(rng)
        pows = host.u_cube(d, [z0])  # (z0, z0^2, …, z0^{2^{d−1}})
        univariate = horner(coeffs, z0)
        coefficient_mle = sum((c * _prod([pows[b] for b in range(d) if (j >> b) & 1])
                               for j, c in enumerate(coeffs)), EF.zero())
        (hypercube_mle,) = ext.to_host(mle_eval(g, pows))
        (device,) = ext.to_host(eval_univariate(g_hat, z0))
        assert univariate == coefficient_mle == hypercube_mle == device


def _prod(xs):
    acc = EF.one()
    for x in xs:
        acc = acc * x
    return acc


@pytest.mark.parametrize("k,d", [(1, 1), (2, 3), (3, 4), (4, 6)])
def test_fact_binary_k_fold_binds_the_lowest_variables(k, d):
    rng = random.Random(k * 10 + d)
    coeffs = [rand_ef(rng) for _ in range(1 << d)]
    alphas = [rand_ef(rng) for _ in range(k)]
    bound = coeffs
    for a in alphas:  # F(Y) = F0(Y') + Y_0·F1(Y')  ->  F0 + α·F1
        bound = [bound[2 * y] + a * bound[2 * y + 1] for y in range(len(bound) // 2)]
    log_size = d + 2
    x = pow(two_adic_generator(log_size), rng.randrange(1, 1 << log_size), P)
    w_k = two_adic_generator(k)
    values = [horner(coeffs, x * pow(w_k, s, P) % P) for s in range(1 << k)]
    assert binary_k_fold(values, alphas, x) == horner(bound, pow(x, 1 << k, P))



def test_corrupted_bytes_only_raise_verification_errors(inst, honest):
    """Random byte corruptions of an honest encoding: decoding plus verification fails, and
    only ever with VerificationError (ProofDecodeError is one)."""
    sp, wp = honest
    data = wp.to_bytes()
    rng = random.Random(12)
    for _ in range(15):
        bad = bytearray(data)
        pos = rng.randrange(len(bad))
        bad[pos] ^= 1 << rng.randrange(8)
        with pytest.raises(VerificationError):
            verify_all(inst, sp, WhirProof.from_bytes(bytes(bad)))
