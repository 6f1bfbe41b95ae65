"""LogUp GKR sumcheck kernels (mlx_stark.custom_kernels.gkr): the native path of the layer
tables, round sums and fused fold + round sums of ``prove_fractional_sumcheck``.

- sources (their structure in both dialects: tests/test_custom_kernels.py): the extension
  arithmetic is the prelude's shared header; no pointer declarations;
- emulation (needs g++): the rendered CUDA and Metal sources run as C++ on the CPU (see
  tests/kernel_helpers.py) and equal the MLX-ops reference on awkward sizes (one pair,
  partial blocks, several blocks with the one-block sum of the parts, several pairs per
  thread), random, all-zero and all-``p − 1`` values; whole GKR proofs and the golden proofs
  with interactions give the same bytes with the emulated kernels;
- device: on a GPU with native kernels, the stage functions and whole GKR proofs equal the
  ops path on the CPU.
"""
import re

import mlx.core as mx
import numpy as np
import pytest

from mlx_stark import custom_kernels
from mlx_stark.custom_kernels import render
from mlx_stark.custom_kernels import gkr as kg
from mlx_stark.custom_kernels import indexing as kidx
from mlx_stark.custom_kernels import linear as klin
from mlx_stark.custom_kernels import poseidon2 as kp2
from mlx_stark.custom_kernels import sizing
from mlx_stark.errors import InvalidInputError
from mlx_stark.field import ext
from mlx_stark.field.bb import P
from mlx_stark.field.host import EF
from mlx_stark.proof.constraints import GkrProof
from mlx_stark.prover import logup_gkr
from mlx_stark.prover.logup_gkr import prove_fractional_sumcheck
from mlx_stark.transcript import DeviceTranscript, Transcript
from mlx_stark.verifier.gkr import verify_gkr

from .kernel_helpers import arrays_equal, emulation, needs_native, ops_path, route
from .test_logup_gkr import balanced_leaves

SOURCES = (kg.round_sums_source, kg.fold_round_sums_source, kg.layer_tables_source,
           kg.fraction_layer_source, lambda: kg.absorbing_sources()[0], lambda: kg.absorbing_sources()[1])
OPERATIONS = ("logup_gkr.layer_tables", "logup_gkr.round_sums", "logup_gkr.fold_round_sums")
KERNELS = {"logup_gkr.layer_tables": kg.layer_tables, "logup_gkr.round_sums": kg.round_sums,
           "logup_gkr.fold_round_sums": kg.fold_round_sums, "logup_gkr.fraction_layer": kg.fraction_layer}
# the sub-rounds with their transcript step, on a device transcript
STEP_KERNELS = {"logup_gkr.round_sums_step": kg.round_sums_step,
                "logup_gkr.fold_round_sums_step": kg.fold_round_sums_step,
                "transcript.DeviceTranscript": kp2.duplex}
LAM, R = EF(3, P - 1, 12345, 7), EF(P - 2, 5, 0, 99)
TOP = EF(P - 1, P - 1, P - 1, P - 1)


def _tables(rows: int, kind: str, seed: int = 0) -> mx.array:
    if kind == "random":
        return ext.random((rows, 5), rows + seed)
    return mx.full((rows, 5, 4), 0 if kind == "zero" else P - 1, dtype=mx.uint32)


# ---------------------------------------------------------------- sources
def test_sources():
    for make in SOURCES:
        src = make()
        # the extension arithmetic is the prelude's shared header
        header, _ = render(src, "cuda")
        assert "KFN ef ef_mul(ef a, ef b)" in header and "struct grow" in header
        # no pointer declarations at all (not even thread-private ones)
        assert not re.search(r"uint(32|64)_t\s*\*", src.header + src.body)


# ---------------------------------------------------------------- emulation
# the sub-rounds' partial sums are added (and absorbed) by linear's and poseidon2's launches
emulated = emulation(kg, klin, kp2, kidx)
emulated_cuda = emulation(kg, klin, kp2, kidx, dialects=("cuda",))


# rows of the tables: one pair, partial blocks, exactly one block, two blocks
ROWS = [2, 4, 8, 64, 2 * kg.THREADS, 4 * kg.THREADS]


@pytest.mark.parametrize("rows", ROWS)
@pytest.mark.parametrize("kind", ["random", "top"])
def test_emulated_round_sums(emulated, rows, kind):
    tables = _tables(rows, kind)
    lam = LAM if kind == "random" else TOP
    got = kg.round_sums(tables, lam)
    assert got.shape == (3, 4) and got.dtype == mx.uint32
    assert arrays_equal(got, ops_path(lambda: logup_gkr.round_sums(tables, lam)))


@pytest.mark.parametrize("rows", ROWS[1:])
@pytest.mark.parametrize("kind", ["random", "top", "zero"])
def test_emulated_fold_round_sums(emulated, rows, kind):
    tables = _tables(rows, kind, 1)
    r, lam = (R, LAM) if kind == "random" else (TOP, TOP)
    folded, sums = kg.fold_round_sums(tables, r, lam)
    ref_folded, ref_sums = ops_path(lambda: logup_gkr.fold_round_sums(tables, r, lam))
    assert folded.shape == (rows // 2, 5, 4) and sums.shape == (3, 4)
    assert arrays_equal(folded, ref_folded) and arrays_equal(sums, ref_sums)


def test_emulated_several_pairs_per_thread(emulated, monkeypatch):
    """A launch capped below one thread per pair: threads take pairs ``gid, gid + T, ...``
    (uneven: 1024 pairs over 768 threads)."""
    monkeypatch.setattr(sizing, "TARGET_THREADS", 3 * kg.THREADS)
    tables = _tables(2048, "random", 2)
    assert arrays_equal(kg.round_sums(tables, LAM), ops_path(lambda: logup_gkr.round_sums(tables, LAM)))
    tables = _tables(4096, "random", 3)
    folded, sums = kg.fold_round_sums(tables, R, LAM)
    ref_folded, ref_sums = ops_path(lambda: logup_gkr.fold_round_sums(tables, R, LAM))
    assert arrays_equal(folded, ref_folded) and arrays_equal(sums, ref_sums)


@pytest.mark.parametrize("rows", [1, 2, 8, 4 * kg.THREADS, 2048])
@pytest.mark.parametrize("kind", ["random", "top"])
def test_emulated_layer_tables(emulated, rows, kind):
    d = rows.bit_length() - 1
    if kind == "random":
        lp, lq = ext.random((2 * rows,), rows), ext.random((2 * rows,), rows + 1)
        xi = [EF(3 * k + 1, P - 1 - k, k * k, 17) for k in range(d)]
    else:
        lp = lq = _tables(2 * rows, "top")[:, 0]
        xi = [TOP] * d
    got = kg.layer_tables(lp, lq, xi)
    assert got.shape == (rows, 5, 4)
    assert arrays_equal(got, ops_path(lambda: logup_gkr.layer_tables(lp, lq, xi)))


@pytest.mark.parametrize("rows", [1, 2, 5, 4 * kg.THREADS + 3])
@pytest.mark.parametrize("kind", ["random", "top"])
def test_emulated_fraction_layer(emulated, rows, kind):
    if kind == "random":
        lp, lq = ext.random((2 * rows,), rows), ext.random((2 * rows,), rows + 1)
    else:
        lp = lq = _tables(2 * rows, "top")[:, 0]
    p, q = kg.fraction_layer(lp, lq)
    assert p.shape == q.shape == (rows, 4)
    vp, vq = lp.reshape(rows, 2, 4), lq.reshape(rows, 2, 4)
    want = ops_path(lambda: logup_gkr._add_fractions(vp[:, 0], vq[:, 0], vp[:, 1], vq[:, 1]))
    assert arrays_equal(p, want[0]) and arrays_equal(q, want[1])


def test_emulated_rejects_bad_shapes(emulated):
    with pytest.raises(InvalidInputError):
        kg.fraction_layer(ext.random((3,), 1), ext.random((3,), 2))
    with pytest.raises(InvalidInputError):
        kg.round_sums(_tables(6, "random"), LAM)
    with pytest.raises(InvalidInputError):
        kg.round_sums(_tables(1, "random"), LAM)
    with pytest.raises(InvalidInputError):
        kg.fold_round_sums(_tables(2, "random"), R, LAM)
    with pytest.raises(InvalidInputError):
        kg.round_sums(ext.random((8, 4), 1), LAM)
    with pytest.raises(InvalidInputError):
        kg.layer_tables(ext.random((8,), 1), ext.random((8,), 2), [LAM])


def _gkr_proof(p, q):
    t = Transcript()
    q0, claims, polys, xi = prove_fractional_sumcheck(t, p, q)
    return GkrProof(0, q0, claims, polys).to_bytes(), xi, t.sample_ext()


@pytest.mark.parametrize("num_vars", [1, 2, 3, 5, 11])
def test_emulated_gkr_proofs(emulated, monkeypatch, num_vars):
    """Whole fractional sumchecks (the random balanced trees of tests/test_logup_gkr.py) with
    the emulated kernels: identical proof bytes, point and transcript state; the proof
    verifies."""
    routed = route(monkeypatch, KERNELS)
    p, q = balanced_leaves(num_vars, seed=num_vars)
    got = _gkr_proof(p, q)
    assert got == ops_path(lambda: _gkr_proof(p, q))
    sumcheck = set(OPERATIONS) if num_vars > 2 else set(OPERATIONS[:2]) if num_vars == 2 else set()
    assert set(routed) == sumcheck | {"logup_gkr.fraction_layer"}
    _, _, xi = verify_gkr(GkrProof.from_bytes(got[0]), Transcript(), num_vars)
    assert xi == got[1]


emulated_steps = emulation(kg, klin, kp2, kidx, dialects=("cuda",))


def _steps(tables: mx.array, before: int) -> list:
    """A layer's first sub-round and a later one (at a challenge the first sampled) on a device
    transcript over a host transcript that absorbed ``before`` values, synced back: every
    value and the transcript's next sample."""
    t = Transcript()
    t.observe_many(list(range(before)))
    dt = DeviceTranscript(t)
    sums, r = logup_gkr.round_sums_step(dt, tables, LAM)
    folded, sums2, r2 = logup_gkr.fold_round_sums_step(dt, tables, r, LAM)
    return [a.tolist() for a in dt.sync(sums, r, folded, sums2, r2)] + [t.sample()]


@pytest.mark.parametrize("rows", [4, 512, 1 << 11])
@pytest.mark.parametrize("before", [0, 5])
def test_emulated_steps_equal_the_host_transcript(emulated_steps, monkeypatch, rows, before):
    """The sub-rounds with their absorb (one launch for tables of one block, the sums'
    launches and a duplex for more) equal the ops path on the host sponge."""
    tables = _tables(rows, "random", before)
    want = _steps(tables, before)  # the CPU: ops, host sponge
    calls = route(monkeypatch, STEP_KERNELS)
    assert _steps(tables, before) == want
    assert set(calls) == set(STEP_KERNELS)


def test_emulated_golden_proofs_with_interactions(emulated_cuda, monkeypatch):
    """The golden workloads with interactions give their fingerprints with the emulated
    kernels (CUDA here; the Metal twins are covered above)."""
    from .golden import fingerprint, golden_workloads
    from .test_golden_fingerprints import GOLDEN

    calls = route(monkeypatch, KERNELS)
    for w in golden_workloads():
        if w.name in ("interactions-11", "mixture-3"):
            calls.clear()
            assert fingerprint(w) == GOLDEN[w.name], w.name
            assert set(calls) == set(KERNELS), w.name


# ---------------------------------------------------------------- on the GPU (CUDA or Metal)
@needs_native
def test_device_equals_ops(reference):
    # up to the LogUp workload's first sub-round (2^19 pairs: two pairs per thread)
    cases = [(rows, kind) for rows in (2, 4, 8, 512, 1 << 12, 1 << 17, 1 << 20) for kind in ("random", "top")]
    tables = [_tables(rows, kind) for rows, kind in cases]
    layers = [(ext.random((2 << d,), d), ext.random((2 << d,), d + 1), [EF(d, k, 3, P - 1 - k) for k in range(d)])
              for d in (0, 1, 5, 12, 19)]
    proofs = [balanced_leaves(v, seed=v) for v in (1, 2, 6, 13, 18)]

    def run():
        sums = [logup_gkr.round_sums(t, LAM) for t in tables]
        folds = [logup_gkr.fold_round_sums(t, R, LAM) for t in tables if t.shape[0] >= 4]
        built = [logup_gkr.layer_tables(*layer) for layer in layers]
        mx.eval(sums, folds, built)
        return ([np.array(a) for a in sums], [(np.array(a), np.array(b)) for a, b in folds],
                [np.array(a) for a in built], [_gkr_proof(p, q) for p, q in proofs])

    assert custom_kernels.native("logup_gkr.round_sums") is not None
    native = run()
    ops = reference(run)
    for got, ref in zip(native[0] + native[2], ops[0] + ops[2]):
        np.testing.assert_array_equal(got, ref)
    for (fa, sa), (fb, sb) in zip(native[1], ops[1]):
        np.testing.assert_array_equal(fa, fb)
        np.testing.assert_array_equal(sa, sb)
    assert native[3] == ops[3]
