"""LogUp GKR (constraints.md §5, §8.5): layered circuit, prover/verifier round trips on random
balanced fraction trees, tampering, unbalanced input, codec, and the reference's
``gkr_verify_zero_interactions`` decomposition test."""
from dataclasses import replace

import mlx.core as mx
import pytest

from .test_batch_constraints import sorted_traces
from mlx_stark.airs import interactions_fixture_11
from mlx_stark.errors import ProofDecodeError, ProverError, VerificationError
from mlx_stark.field import bb, ext
from mlx_stark.field.host import EF
from mlx_stark.keygen import keygen
from mlx_stark.layout import n_logup_of, segment_offsets
from mlx_stark.params import default_test_params_small
from mlx_stark.poly import mle_eval
from mlx_stark.proof.constraints import GkrLayerClaims, GkrProof
from mlx_stark.prover.batch_constraints import prove_zerocheck_and_logup
from mlx_stark.prover.logup_gkr import fraction_layers, prove_fractional_sumcheck
from mlx_stark.transcript import Transcript
from mlx_stark.verifier.gkr import verify_gkr


def balanced_leaves(num_vars: int, seed: int):
    """Random leaves whose fractions sum to zero: the last numerator balances the others."""
    n = 1 << num_vars
    p = ext.random((n,), seed)
    q = ext.random((n,), seed + 1000)
    partial = bb.sum(ext.mul(p[:-1], ext.inv(q[:-1])), axis=0)
    last = ext.neg(ext.mul(partial, q[-1]))
    return mx.concatenate([p[:-1], last[None]]), q


def prove(p, q, witness=0):
    t = Transcript()
    q0, claims, polys, xi = prove_fractional_sumcheck(t, p, q)
    return GkrProof(witness, q0, claims, polys), xi, t


def host_fraction_sum(p, q):
    ps, qs = ext.to_host(p), ext.to_host(q)
    num, den = EF.zero(), EF.one()
    for a, b in zip(ps, qs):
        num, den = num * b + a * den, den * b
    return num, den


@pytest.mark.parametrize("num_vars", [1, 2, 4, 7])
def test_gkr_prove_verify_random_trees(num_vars):
    p, q = balanced_leaves(num_vars, seed=num_vars)
    proof, xi, t_prover = prove(p, q)
    assert len(proof.claims_per_layer) == num_vars
    assert [len(r) for r in proof.sumcheck_polys] == list(range(1, num_vars))
    t_verifier = Transcript()
    p_claim, q_claim, xi_v = verify_gkr(GkrProof.from_bytes(proof.to_bytes()), t_verifier, num_vars)
    assert xi_v == xi and len(xi) == num_vars
    # the output claims are the leaves' multilinear extensions at ξ (bit k <-> ξ[k])
    assert ext.to_host(mle_eval(p, xi))[0] == p_claim
    assert ext.to_host(mle_eval(q, xi))[0] == q_claim
    assert t_prover.sample_ext() == t_verifier.sample_ext()


def test_layers_add_fractions():
    p, q = ext.random((8,), 5), ext.random((8,), 6)
    layers = fraction_layers(p, q)
    assert [layer[0].shape[0] for layer in layers] == [1, 2, 4, 8]
    root_p, root_q = (ext.to_host(a)[0] for a in layers[0])
    num, den = host_fraction_sum(p, q)
    # the tree adds pairwise (same order as the sequential sum here: a product of all q's)
    assert root_q == den and root_p == num
    # layer j − 1 from layer j: node[y] = node[2y] ⊕ node[2y + 1]
    p1, q1 = (ext.to_host(a) for a in layers[1])
    p2, q2 = (ext.to_host(a) for a in layers[2])
    assert p1[1] == p2[2] * q2[3] + p2[3] * q2[2] and q1[1] == q2[2] * q2[3]


def test_unbalanced_leaves_raise_prover_error():
    p, q = balanced_leaves(3, seed=11)
    p = ext.add(p, ext.from_host([1] + [0] * 7))
    with pytest.raises(ProverError):
        prove_fractional_sumcheck(Transcript(), p, q)


def _reject(proof, num_vars, reason):
    with pytest.raises(VerificationError) as err:
        verify_gkr(proof, Transcript(), num_vars)
    assert err.value.reason == reason


def test_tampered_gkr_proofs_are_rejected():
    num_vars = 4
    p, q = balanced_leaves(num_vars, seed=3)
    proof, _, _ = prove(p, q)
    one = EF.one()

    # q0_claim
    _reject(replace(proof, q0_claim=proof.q0_claim + one), num_vars, "RootConsistencyCheckFailed")
    # layer-1 numerator: the root numerator is no longer zero
    c0 = proof.claims_per_layer[0]
    bad = [replace(c0, p_xi_0=c0.p_xi_0 + one)] + proof.claims_per_layer[1:]
    _reject(replace(proof, claims_per_layer=bad), num_vars, "ZeroCheckFailed")
    # a deeper layer claim
    for j in (1, num_vars - 1):
        cj = proof.claims_per_layer[j]
        bad = list(proof.claims_per_layer)
        bad[j] = replace(cj, q_xi_1=cj.q_xi_1 + one)
        _reject(replace(proof, claims_per_layer=bad), num_vars, "LayerConsistencyCheckFailed")
    # a round polynomial value
    polys = [list(r) for r in proof.sumcheck_polys]
    g = polys[2][1]
    polys[2][1] = (g[0], g[1] + one, g[2])
    _reject(replace(proof, sumcheck_polys=polys), num_vars, "LayerConsistencyCheckFailed")
    # shapes
    _reject(replace(proof, claims_per_layer=proof.claims_per_layer[:-1]), num_vars,
            "IncorrectLayerCount")
    _reject(replace(proof, sumcheck_polys=proof.sumcheck_polys[:-1]), num_vars,
            "IncorrectSumcheckPolyCount")
    polys = [list(r) for r in proof.sumcheck_polys]
    polys[1] = polys[1][:1]
    _reject(replace(proof, sumcheck_polys=polys), num_vars, "IncorrectSubroundCount")


def test_gkr_proof_codec():
    p, q = balanced_leaves(3, seed=9)
    proof, _, _ = prove(p, q, witness=12345)
    blob = proof.to_bytes()
    # F witness, EF q0, usize + 3 layers of 4 EF, then 1 + 2 triples
    assert len(blob) == 4 + 16 + 4 + 3 * 64 + 3 * 48
    assert GkrProof.from_bytes(blob) == proof
    with pytest.raises(ProofDecodeError):
        GkrProof.from_bytes(blob[:-1])
    with pytest.raises(ProofDecodeError):
        GkrProof.from_bytes(blob + b"\0")
    empty = GkrProof(0, EF.one())
    assert GkrProof.from_bytes(empty.to_bytes()) == empty
    assert isinstance(proof.claims_per_layer[0], GkrLayerClaims)


def test_segment_layout():
    # InteractionsFixture11 sorted: receiver (h = 3, ñ = 1), sender (h = 2, ñ = 0), l = 2
    offsets, total = segment_offsets(2, [(1, 1), (1, 0)])
    assert offsets == [[0], [8]] and total == 12 and n_logup_of(2, total) == 2
    # segments of non-increasing size stay aligned; an exact power of two still gets padding
    offsets, total = segment_offsets(2, [(2, 2), (3, 0)])
    assert offsets == [[0, 16], [32, 36, 40]] and total == 44
    assert n_logup_of(2, 16) == 3 and n_logup_of(2, 0) == 0


def test_gkr_verify_zero_interactions():
    """Reference ``gkr_verify_zero_interactions``: prove the constraint stage of
    InteractionsFixture11, then replay the proof of work, α, β and ``verify_gkr`` alone."""
    params = default_test_params_small()
    fx = interactions_fixture_11()
    pk, _ = keygen(fx.airs, params)
    gkr_proof, _, _ = prove_zerocheck_and_logup(pk, Transcript(), sorted_traces(fx))
    t = Transcript()
    assert t.check_witness(params.logup.pow_bits, gkr_proof.logup_pow_witness)
    t.sample_ext()
    t.sample_ext()
    verify_gkr(gkr_proof, t, len(gkr_proof.claims_per_layer))
