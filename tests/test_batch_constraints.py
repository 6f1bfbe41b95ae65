"""The constraint stage (constraints.md §4.2 steps 4–15, §6, §8.4): the reference's
decomposition tests (crates/backend-tests/src/lib.rs), the round-0 identities of §6.4 against
a naive evaluation, prove/verify on every test AIR, tampering, bad traces and the codec."""
from dataclasses import dataclass, replace

import mlx.core as mx
import numpy as np
import pytest

from mlx_stark.air.evaluate import DagInputs, Host, evaluate_dag
from mlx_stark.airs import (
    DummyInteractionAir,
    Fixture,
    cached_fixture_11,
    dummy_interaction_trace,
    fib_fixture,
    interactions_fixture_11,
    mixture_fixture_standard,
    preprocessed_and_cached_fixture,
    preprocessed_fib_fixture,
    self_interaction_fixture,
    sum_fixture,
)
from mlx_stark.air.check import AirTrace
from mlx_stark.errors import ProverError, VerificationError
from mlx_stark.field import ext
from mlx_stark.field.bb import P, two_adic_generator
from mlx_stark.field.host import EF, horner
from mlx_stark.keygen import keygen
from mlx_stark.layout import n_logup_of, segment_offsets
from mlx_stark.params import SystemParams, default_test_params_small
from mlx_stark.poly import fold_lowest, fold_skip, host, mle_eval
from mlx_stark.proof.constraints import BatchConstraintProof, GkrProof
from mlx_stark.prover import batch_constraints as bc
from mlx_stark.prover import constraint_eval
from mlx_stark.prover.logup_gkr import fraction_leaves
from mlx_stark.transcript import Transcript
from mlx_stark.verifier.batch_constraints import verify_zerocheck_and_logup


@dataclass
class _Trace:
    air_id: int
    common_main: mx.array
    cached_mains: list
    public_values: list
    log_height: int


def sorted_traces(fixture):
    out = []
    for a, t in enumerate(fixture.traces):
        if t is None:
            continue
        common = mx.array(np.asarray(t.common_main, dtype=np.uint32))
        cached = [mx.array(np.asarray(c, dtype=np.uint32)) for c in t.cached_mains]
        out.append(_Trace(a, common, cached, [int(v) for v in t.public_values],
                          common.shape[0].bit_length() - 1))
    return sorted(out, key=lambda t: (-t.log_height, t.air_id))


def prove_stage(fixture, params):
    """Keygen, then the constraint stage alone on a fresh transcript (the reference's
    ``prove_up_to_batch_constraints``: nothing of the preamble is observed)."""
    pk, vk = keygen(fixture.airs, params)
    traces = sorted_traces(fixture)
    transcript = Transcript()
    gkr, batch, r = bc.prove_zerocheck_and_logup(pk, transcript, traces)
    return pk, vk, traces, (gkr, batch, r), transcript


def verify_stage(vk, fixture, traces, gkr, batch, transcript=None):
    pvs = [list(t.public_values) if t is not None else [] for t in fixture.traces]
    return verify_zerocheck_and_logup(vk, transcript or Transcript(), gkr, batch,
                                      [t.air_id for t in traces], [t.log_height for t in traces],
                                      pvs)


def roundtrip(fixture, params):
    """Prove, encode/decode, verify; transcripts must end in the same state."""
    pk, vk, traces, (gkr, batch, r), t_prover = prove_stage(fixture, params)
    gkr2 = GkrProof.from_bytes(gkr.to_bytes())
    batch2 = BatchConstraintProof.from_bytes(batch.to_bytes())
    assert gkr2 == gkr and batch2 == batch
    t_verifier = Transcript()
    assert verify_stage(vk, fixture, traces, gkr2, batch2, t_verifier) == r
    assert t_prover.sample_ext() == t_verifier.sample_ext()
    return vk, traces, gkr, batch, r


# ------------------------------------------------------------------ reference decomposition tests
def test_batch_constraints_with_interactions():
    params = default_test_params_small()
    fx = interactions_fixture_11()
    vk, traces, gkr, batch, r = roundtrip(fx, params)
    # §9.8 shape oracle: receiver (h = 3) is trace 0, sender (h = 2) trace 1; 16 leaves
    assert [t.air_id for t in traces] == [1, 0]
    assert len(gkr.claims_per_layer) == 4
    assert [len(p) for p in gkr.sumcheck_polys] == [1, 2, 3]
    assert len(batch.univariate_round_coeffs) == 13
    assert [len(p) for p in batch.sumcheck_round_polys] == [4]
    assert len(r) == 2
    assert [[len(part) for part in parts] for parts in batch.column_openings] == [[2], [2]]
    # openings are the column MLEs at r (receiver) and the lifted sender columns at r_0
    receiver = np.asarray(fx.traces[1].common_main, dtype=np.uint32)
    sender = np.asarray(fx.traces[0].common_main, dtype=np.uint32)
    opened_r = ext.to_host(mle_eval(fold_skip(mx.array(receiver), 2, r[0]), r[1:]))
    opened_s = ext.to_host(fold_skip(mx.array(sender), 2, r[0])[0])
    assert batch.column_openings == [[opened_r], [opened_s]]


def _zero_interactions(log_height):
    """Reference ``batch_sumcheck_zero_interactions(h)``: FibFixture(0, 1, 2^h), no GKR."""
    params = default_test_params_small()
    fx = fib_fixture(0, 1, 1 << log_height)
    _, _, traces, (gkr, batch, r), _ = prove_stage(fx, params)
    assert gkr.q0_claim == EF.one() and not gkr.claims_per_layer and not gkr.sumcheck_polys
    _, vk = keygen(fx.airs, params)
    r_v = verify_stage(vk, fx, traces, gkr, batch)
    assert r_v == r and len(r) == max(log_height - params.l_skip, 0) + 1


def test_batch_sumcheck_zero_interactions():
    _zero_interactions(4)


def test_batch_sumcheck_zero_interactions_log_height_eq_l_skip():
    _zero_interactions(2)


def test_batch_sumcheck_zero_interactions_log_height_lt_l_skip():
    _zero_interactions(1)


def test_batch_sumcheck_zero_interactions_log_height_zero():
    _zero_interactions(0)


def test_batch_sumcheck_zero_interactions_malleable_q0():
    params = default_test_params_small()
    fx = fib_fixture(0, 1, 1 << 4)
    _, vk, traces, (gkr, batch, _), _ = prove_stage(fx, params)
    assert gkr.q0_claim == EF.one()
    with pytest.raises(VerificationError) as err:
        verify_stage(vk, fx, traces, replace(gkr, q0_claim=EF(2)), batch)
    assert err.value.reason == "InvalidZeroRoundValue"


# ------------------------------------------------------------------ every test AIR
FIXTURES = {
    "fib": lambda: fib_fixture(0, 1, 16),
    "fib_two_airs": lambda: fib_fixture(1, 1, 8, num_airs=2),
    "interactions": interactions_fixture_11,
    "cached": cached_fixture_11,
    "preprocessed_fib": lambda: preprocessed_fib_fixture(7, 3, [i % 2 == 0 for i in range(8)]),
    "preprocessed_cached": lambda: preprocessed_and_cached_fixture([i % 3 == 0 for i in range(16)], 3),
    "self_interaction": lambda: self_interaction_fixture([4, 7, 8], 1, 4),
    "sum": sum_fixture,
    "mixture_h3": lambda: mixture_fixture_standard(3),
    "mixture_h0": lambda: mixture_fixture_standard(0),
    "optional_absent": lambda: (fib_fixture(0, 1, 8) + interactions_fixture_11()).without([0]),
}


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_prove_verify_test_airs(name):
    roundtrip(FIXTURES[name](), default_test_params_small())


def test_prove_verify_larger_skip_domain_and_degree():
    """l = 4, d = 4 (``SystemParams::new_for_testing``), traces above, at and below 2^l."""
    params = SystemParams.new_for_testing(6)
    fx = (fib_fixture(0, 1, 64) + interactions_fixture_11()
          + preprocessed_fib_fixture(2, 5, [i % 2 for i in range(16)]))
    _, traces, gkr, batch, r = roundtrip(fx, params)
    assert len(batch.univariate_round_coeffs) == 5 * 15 + 1
    assert [len(p) for p in batch.sumcheck_round_polys] == [5, 5]


def test_proofs_are_deterministic():
    params = default_test_params_small()
    fx = mixture_fixture_standard(2)
    a = prove_stage(fx, params)[3]
    b = prove_stage(fx, params)[3]
    assert a[0].to_bytes() == b[0].to_bytes() and a[1].to_bytes() == b[1].to_bytes()


def test_evaluation_strategies_and_chunking_agree(monkeypatch):
    """Node-by-node and level-by-level DAG evaluation, with and without chunking of the
    points, give the same proof bytes."""
    params = default_test_params_small()
    fx = mixture_fixture_standard(4)

    def proof_bytes():
        gkr, batch, _ = prove_stage(fx, params)[3]
        return gkr.to_bytes() + batch.to_bytes()

    reference = proof_bytes()
    with monkeypatch.context() as m:
        m.setattr(constraint_eval, "_LEVEL_MAX_BASE_POINTS", 0)
        assert proof_bytes() == reference
    with monkeypatch.context() as m:
        m.setattr(constraint_eval, "_LEVEL_MAX_BASE_POINTS", 1 << 30)
        m.setattr(constraint_eval, "_LEVEL_BUFFER_ELEMS", 1)
        m.setattr(bc.round0, "_LDE_BLOCK_ELEMS", 1)
        m.setattr(bc.mle_rounds, "_FOLD_TABLE_ELEMS", 1)
        m.setattr(bc.mle_rounds, "_FOLD_ROWS_ELEMS", 1)
        m.setattr(bc.mle_rounds, "_HEAD_POINT_ELEMS", 1)
        assert proof_bytes() == reference


def test_logical_table_columns():
    """The stored parts plus the rotated and selector columns built on demand equal the full
    table ``[parts | parts rotated by one row | is_first, is_last, is_transition]``, for any
    rows and any (ascending) columns; and fold_tables in row chunks equals it folded at once."""
    params = default_test_params_small()
    fx = preprocessed_and_cached_fixture([1, 0, 0, 1], 1) + fib_fixture(0, 1, 8)
    pk, _ = keygen(fx.airs, params)
    trs = [bc.prepare_trace(pk, params.l_skip, t) for t in sorted_traces(fx)]
    assert any(tr.need_rot for tr in trs) and any(len(tr.part_widths) > 1 for tr in trs)
    r0 = EF(3, 1, 4, 1)
    for tr in trs:
        parts = np.array(tr.table)
        h = parts.shape[0]
        sel = np.zeros((h, 3), dtype=np.uint32)
        sel[0, 0], sel[-1, 1], sel[:-1, 2] = 1, 1, 1
        full = np.concatenate([parts] + ([np.roll(parts, -1, axis=0)] if tr.need_rot else []) + [sel],
                              axis=1)
        assert full.shape[1] == tr.width_total
        np.testing.assert_array_equal(np.array(tr.columns(range(tr.width_total))), full)
        for lo, hi in [(0, h // 2), (h // 2, h), (1, h - 1)]:
            np.testing.assert_array_equal(np.array(tr.columns(tr.needed, lo, hi)),
                                          full[lo:hi, tr.needed])
        whole = bc.fold_tables([tr], params.l_skip, r0)[0]
        expect = fold_skip(mx.tile(mx.array(full), (max(1, (1 << params.l_skip) // h), 1)),
                           params.l_skip, r0)
        np.testing.assert_array_equal(np.array(whole), np.array(expect).transpose(1, 0, 2))


def test_fold_tables_in_row_chunks(monkeypatch):
    """fold_tables folding a few row blocks at a time equals folding the table at once."""
    params = default_test_params_small()
    fx = fib_fixture(0, 1, 64)
    pk, _ = keygen(fx.airs, params)
    tr = bc.prepare_trace(pk, params.l_skip, sorted_traces(fx)[0])
    r0 = EF(2, 7, 1, 8)
    whole = np.array(bc.fold_tables([tr], params.l_skip, r0)[0])
    monkeypatch.setattr(bc.mle_rounds, "_FOLD_TABLE_ELEMS", 3 * tr.width_total << params.l_skip)
    chunked = np.array(bc.fold_tables([tr], params.l_skip, r0)[0])
    assert (tr.height >> params.l_skip) % 3  # uneven chunks: the last one is shorter
    np.testing.assert_array_equal(chunked, whole)


def test_multilinear_fold_in_row_chunks(monkeypatch):
    """A multilinear round's fold of a column-major table a few ``y`` at a time (uneven
    chunks) equals the fold of all rows at once, and both equal the fold of each column."""
    table = mx.random.randint(0, P, (5, 16, 4), key=mx.random.key(3)).astype(mx.uint32)
    r = EF(4, 8, 15, 16)
    whole = np.array(bc.mle_rounds._fold_rows(table, r))
    monkeypatch.setattr(bc.mle_rounds, "_FOLD_ROWS_ELEMS", 3 * 8 * 5)  # 3 of 8 pairs per chunk
    chunked = np.array(bc.mle_rounds._fold_rows(table, r))
    np.testing.assert_array_equal(chunked, whole)
    for c in range(5):
        np.testing.assert_array_equal(whole[c], np.array(fold_lowest(table[c, ...], r)))


# ------------------------------------------------------------------ bad traces
def test_corrupted_trace_cell_fails():
    params = default_test_params_small()
    fx = fib_fixture(0, 1, 16)
    trace = np.array(fx.traces[0].common_main, dtype=np.uint32)
    trace[5, 1] = (int(trace[5, 1]) + 1) % P
    bad = Fixture(fx.airs, [AirTrace(fx.airs[0], trace, fx.traces[0].public_values)])
    try:
        _, vk, traces, (gkr, batch, _), _ = prove_stage(bad, params)
    except ProverError:
        return
    with pytest.raises(VerificationError):
        verify_stage(vk, bad, traces, gkr, batch)


def test_unbalanced_interactions_fail_to_prove():
    params = default_test_params_small()
    fx = interactions_fixture_11()
    sender = fx.traces[0]
    common = np.array(sender.common_main, dtype=np.uint32)
    common[1, 0] += 1  # one more send of field 5
    bad = Fixture(fx.airs, [replace(sender, common_main=common), fx.traces[1]])
    with pytest.raises(ProverError):
        prove_stage(bad, params)


# ------------------------------------------------------------------ tampering
def _reject(vk, fx, traces, gkr, batch, reason):
    with pytest.raises(VerificationError) as err:
        verify_stage(vk, fx, traces, gkr, batch)
    assert err.value.reason == reason


def test_tampered_batch_proofs_are_rejected():
    params = default_test_params_small()
    fx = mixture_fixture_standard(3)
    _, vk, traces, (gkr, batch, _), _ = prove_stage(fx, params)
    one = EF.one()

    def bumped(values, i):
        out = list(values)
        out[i] = out[i] + one
        return out

    _reject(vk, fx, traces, gkr, replace(batch, numerator_term_per_air=bumped(
        batch.numerator_term_per_air, 1)), "GkrNumeratorMismatch")
    _reject(vk, fx, traces, gkr, replace(batch, denominator_term_per_air=bumped(
        batch.denominator_term_per_air, 0)), "GkrDenominatorMismatch")
    _reject(vk, fx, traces, gkr, replace(batch, univariate_round_coeffs=bumped(
        batch.univariate_round_coeffs, 0)), "SumClaimMismatch")
    _reject(vk, fx, traces, gkr, replace(batch, univariate_round_coeffs=bumped(
        batch.univariate_round_coeffs, 1)), "InconsistentClaims")
    rounds = [list(p) for p in batch.sumcheck_round_polys]
    rounds[0] = bumped(rounds[0], 2)
    _reject(vk, fx, traces, gkr, replace(batch, sumcheck_round_polys=rounds), "InconsistentClaims")
    for t in (0, len(traces) - 1):
        openings = [[list(part) for part in parts] for parts in batch.column_openings]
        openings[t][0] = bumped(openings[t][0], 0)
        _reject(vk, fx, traces, gkr, replace(batch, column_openings=openings), "InconsistentClaims")
    c = gkr.claims_per_layer[-1]
    claims = gkr.claims_per_layer[:-1] + [replace(c, p_xi_1=c.p_xi_1 + one)]
    _reject(vk, fx, traces, replace(gkr, claims_per_layer=claims), batch,
            "LayerConsistencyCheckFailed")
    _reject(vk, fx, traces, replace(gkr, logup_pow_witness=(gkr.logup_pow_witness + 1) % P),
            batch, "InvalidLogupPowWitness")
    # shapes
    _reject(vk, fx, traces, gkr, replace(batch, sumcheck_round_polys=[]), "ProofShape")
    _reject(vk, fx, traces, gkr, replace(batch, univariate_round_coeffs=batch.univariate_round_coeffs[:-1]),
            "ProofShape")
    openings = [[list(part) for part in parts] for parts in batch.column_openings]
    openings[2][0] = openings[2][0][:-1]
    _reject(vk, fx, traces, gkr, replace(batch, column_openings=openings), "ProofShape")


def test_batch_proof_codec_layout():
    params = default_test_params_small()
    fx = interactions_fixture_11()
    _, _, _, (_, batch, _), _ = prove_stage(fx, params)
    blob = batch.to_bytes()
    # usize T + 2 EF, 2 EF, usize + 13 EF, usize n_max + usize 4 + 4 EF, 2 x (usize 1 + usize 2 + 2 EF)
    assert len(blob) == 4 + 32 + 32 + 4 + 13 * 16 + 8 + 64 + 2 * (8 + 32)
    assert BatchConstraintProof.from_bytes(blob) == batch
    zero_rounds = replace(batch, sumcheck_round_polys=[])
    assert BatchConstraintProof.from_bytes(zero_rounds.to_bytes()) == zero_rounds


# ------------------------------------------------------------------ round-0 identities (§6.4)
def random_dummy(height: int, seed: int, is_send: bool) -> Fixture:
    rng = np.random.default_rng(seed)
    air = DummyInteractionAir(2, is_send, 3)
    counts = rng.integers(0, P, size=height, dtype=np.uint64)
    fields = rng.integers(0, P, size=(height, 2), dtype=np.uint64)
    common, cached = dummy_interaction_trace(counts, fields)
    return Fixture([air], [AirTrace(air, common, (), cached)])


def host_inputs(tr, cols):
    """Interpreter inputs from the host values ``cols`` of a trace's table columns."""
    width = tr.vk.params.width

    def part(p):
        off, w = tr.part_offsets[p], tr.part_widths[p]
        nxt = cols[tr.wall + off:tr.wall + off + w] if tr.need_rot else None
        return cols[off:off + w], nxt

    main = [part(tr.vk.dag_main_part_index_to_commit_index(k))
            for k in range(len(width.main_widths))]
    prep = part(1) if width.preprocessed is not None else None
    s = tr.selector_offset
    return DagInputs(main, prep, tr.public_values, cols[s], cols[s + 1], cols[s + 2])


def naive_s0(z: EF, trs, l_skip, xi, lam, beta, mu, eq3b) -> EF:
    """``s_0(z) = Σ_t Σ_x Ψ_t(z, x)`` by evaluating the DAG at the interpolated columns
    (host arithmetic, one hypercube point at a time)."""
    num_traces = len(trs)
    total = EF.zero()
    for t, tr in enumerate(trs):
        lifted = max(tr.height, 1 << l_skip)
        table = mx.tile(tr.columns(range(tr.width_total)), (lifted // tr.height, 1))
        folded = fold_skip(table, l_skip, z)  # (X, W_tot, 4)
        a = b = bq = EF.zero()
        for x in range(folded.shape[0]):
            cols = ext.to_host(folded[x])
            values = evaluate_dag(tr.dag, Host, host_inputs(tr, cols))
            c = EF.zero()
            for i, v in enumerate(values.constraints):
                c = c + lam ** i * v
            num = den = EF.zero()
            for it, (message, count), w in zip(tr.dag.interactions, values.interactions, eq3b[t]):
                num = num + w * count * tr.norm
                h = EF.zero()
                for j, m in enumerate(message):
                    h = h + beta ** j * m
                den = den + w * (h + beta ** len(message) * (it.bus_index + 1))
            weight = host.eq(xi[l_skip:l_skip + tr.nt], [(x >> k) & 1 for k in range(tr.nt)])
            a, b, bq = a + weight * c, b + weight * num, bq + weight * den
        total = total + mu ** (2 * num_traces + t) * host.eq_d(l_skip, xi[0], z) * a \
            + horner(host.eq_sharp_coeffs(l_skip, xi), z) * (mu ** (2 * t) * b + mu ** (2 * t + 1) * bq)
    return total


def test_round0_identities_random_data():
    params = default_test_params_small()
    l_skip, degree = params.l_skip, params.max_constraint_degree
    fx = (mixture_fixture_standard(2) + random_dummy(16, 1, True) + random_dummy(2, 2, False)
          + preprocessed_and_cached_fixture([1, 0, 0, 1], 1))
    pk, _ = keygen(fx.airs, params)
    trs = [bc.prepare_trace(pk, l_skip, t) for t in sorted_traces(fx)]
    offsets, total = segment_offsets(l_skip, [(tr.num_interactions, tr.nt) for tr in trs])
    n_logup = n_logup_of(l_skip, total)
    rng = np.random.default_rng(7)

    def rand_ef():
        return EF(*(int(v) for v in rng.integers(0, P, size=4)))

    xi = [rand_ef() for _ in range(l_skip + max(n_logup, trs[0].nt))]
    lam, beta, mu, alpha = rand_ef(), rand_ef(), rand_ef(), rand_ef()
    lam_powers = [lam ** i for i in range(max(len(tr.dag.constraint_idx) for tr in trs))]
    eq3b = [host.eq3b_weights(l_skip, xi, n_logup, tr.nt, o) for tr, o in zip(trs, offsets)]
    rounds0 = [bc.round0_trace(tr, l_skip, xi, lam_powers, beta, e) for tr, e in zip(trs, eq3b)]
    bc.read_round0_sums(rounds0)
    mu_pows = [mu ** i for i in range(3 * len(trs))]
    s0, violated = bc.s0_coefficients(l_skip, degree, xi, mu_pows, rounds0)
    assert violated == []  # the traces are valid: no quotient has degree to spare
    assert len(s0) == (degree + 1) * ((1 << l_skip) - 1) + 1

    # the sum over D is the batched sum claim (the zerocheck part vanishes on valid traces)
    claim = EF.zero()
    for t, r0 in enumerate(rounds0):
        claim = claim + mu_pows[2 * t] * r0.sum_p + mu_pows[2 * t + 1] * r0.sum_q
    n_dom = 1 << l_skip
    assert sum(s0[::n_dom], EF.zero()) * n_dom == claim

    # s_0 agrees with the naive definition at random points
    for _ in range(2):
        z = rand_ef()
        assert horner(s0, z) == naive_s0(z, trs, l_skip, xi, lam, beta, mu, eq3b)

    # the sum claims are the traces' shares of the GKR input claims p̂(ξ), q̂(ξ) − α
    segments = [s for tr in trs if tr.num_interactions for s in bc.gkr_segments(tr, l_skip, beta)]
    p, q = fraction_leaves(segments, alpha, l_skip + n_logup)
    point = xi[:l_skip + n_logup]
    assert sum((r0.sum_p for r0 in rounds0), EF.zero()) == ext.to_host(mle_eval(p, point))[0]
    assert sum((r0.sum_q for r0 in rounds0), EF.zero()) + alpha == ext.to_host(mle_eval(q, point))[0]


@pytest.mark.parametrize("matrix_points", [128, 0])  # one (E·N)^2 matrix; iDFT and solves
def test_interpolate_cosets_is_exact(monkeypatch, matrix_points):
    from mlx_stark.poly import ntt

    monkeypatch.setattr(ntt, "_MATRIX_POINTS", matrix_points)
    rng = np.random.default_rng(3)
    n_dom, cosets = 8, 3
    coeffs = [EF(*(int(v) for v in rng.integers(0, P, size=4))) for _ in range(n_dom * cosets)]
    shifts = [1, 31, 31 * 31]
    w = two_adic_generator(3)
    values = [[horner(coeffs, EF(s * pow(w, k, P) % P)) for k in range(n_dom)] for s in shifts]
    flat = ext.from_host([v for row in values for v in row]).reshape(cosets, n_dom, 4)
    got = bc.interpolate_cosets(flat, shifts)
    assert ext.to_host(got) == coeffs
    # a batch axis after the points: each column interpolated alone
    both = bc.interpolate_cosets(mx.stack([flat, ext.zeros((cosets, n_dom))], axis=2), shifts)
    assert both.shape == (cosets * n_dom, 2, 4)
    assert ext.to_host(both[:, 0]) == coeffs and ext.to_host(both[:, 1]) == [EF.zero()] * len(coeffs)
