"""LogUp GKR sumcheck kernels (mlx_stark.custom_kernels.gkr): the native path of the layer
tables, round sums and fused fold + round sums of ``prove_fractional_sumcheck``.

- sources: every kernel renders in both dialects, the twins differing only in the dialect's
  macros and thread indices; shared memory only with barriers; no pointer declarations;
- emulation (needs g++): the rendered CUDA and Metal sources run as C++ on the CPU (see
  tests/test_custom_kernels.py) and equal the MLX-ops reference on awkward sizes (one pair,
  partial blocks, several blocks with the one-block sum of the parts, several pairs per
  thread), random, all-zero and all-``p − 1`` values; whole GKR proofs and the golden proofs
  with interactions give the same bytes with the emulated kernels;
- device: on a GPU with native kernels, the stage functions and whole GKR proofs equal the
  ops path.
"""
import re

import mlx.core as mx
import numpy as np
import pytest

from mlx_stark import custom_kernels, device
from mlx_stark.custom_kernels import DIALECTS, render
from mlx_stark.custom_kernels import gkr as kg
from mlx_stark.errors import InvalidInputError
from mlx_stark.field import ext
from mlx_stark.field.bb import P
from mlx_stark.field.host import EF
from mlx_stark.proof.constraints import GkrProof
from mlx_stark.prover import logup_gkr
from mlx_stark.prover.logup_gkr import prove_fractional_sumcheck
from mlx_stark.transcript import Transcript
from mlx_stark.verifier.gkr import verify_gkr

from .test_custom_kernels import _emulated_launch, emulator_dir  # noqa: F401 (fixture)
from .test_logup_gkr import balanced_leaves

SOURCES = (kg.round_sums_source, kg.fold_round_sums_source, kg.sum_parts_source, kg.layer_tables_source)
OPERATIONS = ("gkr.layer_tables", "gkr.round_sums", "gkr.fold_round_sums")
KERNELS = {"gkr.layer_tables": kg.layer_tables, "gkr.round_sums": kg.round_sums,
           "gkr.fold_round_sums": kg.fold_round_sums}
LAM, R = EF(3, P - 1, 12345, 7), EF(P - 2, 5, 0, 99)
TOP = EF(P - 1, P - 1, P - 1, P - 1)


def _eq(a, b) -> bool:
    return np.array_equal(np.array(a), np.array(b))


def _tables(rows: int, kind: str, seed: int = 0) -> mx.array:
    if kind == "random":
        return ext.random((rows, 5), rows + seed)
    return mx.full((rows, 5, 4), 0 if kind == "zero" else P - 1, dtype=mx.uint32)


def _ops(thunk):
    """``thunk`` with every kernel operation on its MLX-ops path."""
    prev = custom_kernels.native
    custom_kernels.native = lambda op: None
    try:
        return thunk()
    finally:
        custom_kernels.native = prev


# ---------------------------------------------------------------- sources
def test_sources_render_in_both_dialects():
    names = set()
    for make in SOURCES:
        src = make()
        names.add(src.mangled())
        (hc, bc), (hm, bm) = (render(src, d) for d in DIALECTS)
        assert hc.split("#define BITREV32(x) __brev(x)\n")[1] == hm.split("#define BITREV32(x) reverse_bits(x)\n")[1]
        assert bc.split("bid_y = blockIdx.y;\n")[1] == bm.split("bid_y = threadgroup_position_in_grid.y;\n")[1]
        assert "thread_position_in_grid" in bm and "blockIdx" not in bm
        # the extension arithmetic is the prelude's shared header
        assert "KFN ef ef_mul(ef a, ef b)" in hc and "struct grow" in hc
        # no pointer declarations (Metal would need address spaces)
        assert not re.search(r"uint(32|64)_t\s*\*", src.header + src.body)
        # shared memory only with barriers, declared at the top level of the body
        assert ("SHARED" in src.body) == ("BARRIER()" in src.body)
        assert all(line.startswith("SHARED") for line in src.body.splitlines() if "SHARED" in line)
    assert len(names) == len(SOURCES)


def test_plan_blocks():
    assert kg.plan_blocks(1) == 1 and kg.plan_blocks(kg.THREADS) == 1 and kg.plan_blocks(kg.THREADS + 1) == 2
    assert kg.plan_blocks(1 << 18) == kg.MAX_BLOCKS and kg.plan_blocks(1 << 19) == kg.MAX_BLOCKS


def test_registry_names():
    assert set(OPERATIONS) <= set(custom_kernels.OPERATIONS)


# ---------------------------------------------------------------- emulation
@pytest.fixture(params=DIALECTS)
def emulated(request, emulator_dir, monkeypatch):  # noqa: F811 (fixture argument)
    """The kernel module's launches run the C++ emulation of ``request.param``; the reference
    runs as MLX ops on the CPU."""
    monkeypatch.setattr(kg, "launch", _emulated_launch(request.param, emulator_dir))
    prev = mx.default_device()
    mx.set_default_device(mx.cpu)
    yield request.param
    mx.set_default_device(prev)


@pytest.fixture
def routed(emulated, monkeypatch):
    """The prover's registry returns the (emulated) GKR kernels; the operations asked for are
    recorded in the fixture's list."""
    calls = []

    def native(op):
        if op in KERNELS:
            calls.append(op)
            return KERNELS[op]
        return None

    monkeypatch.setattr(custom_kernels, "native", native)
    return calls


# rows of the tables: one pair, partial blocks, exactly one block, two blocks
ROWS = [2, 4, 8, 64, 2 * kg.THREADS, 4 * kg.THREADS]


@pytest.mark.parametrize("rows", ROWS)
@pytest.mark.parametrize("kind", ["random", "top"])
def test_emulated_round_sums(emulated, rows, kind):
    tables = _tables(rows, kind)
    lam = LAM if kind == "random" else TOP
    got = kg.round_sums(tables, lam)
    assert got.shape == (3, 4) and got.dtype == mx.uint32
    assert _eq(got, _ops(lambda: logup_gkr.round_sums(tables, lam)))


@pytest.mark.parametrize("rows", ROWS[1:])
@pytest.mark.parametrize("kind", ["random", "top", "zero"])
def test_emulated_fold_round_sums(emulated, rows, kind):
    tables = _tables(rows, kind, 1)
    r, lam = (R, LAM) if kind == "random" else (TOP, TOP)
    folded, sums = kg.fold_round_sums(tables, r, lam)
    ref_folded, ref_sums = _ops(lambda: logup_gkr.fold_round_sums(tables, r, lam))
    assert folded.shape == (rows // 2, 5, 4) and sums.shape == (3, 4)
    assert _eq(folded, ref_folded) and _eq(sums, ref_sums)


def test_emulated_several_pairs_per_thread(emulated, monkeypatch):
    """A launch capped below one thread per pair: threads take pairs ``gid, gid + T, ...``
    (uneven: 1024 pairs over 768 threads)."""
    monkeypatch.setattr(kg, "MAX_BLOCKS", 3)
    tables = _tables(2048, "random", 2)
    assert _eq(kg.round_sums(tables, LAM), _ops(lambda: logup_gkr.round_sums(tables, LAM)))
    tables = _tables(4096, "random", 3)
    folded, sums = kg.fold_round_sums(tables, R, LAM)
    ref_folded, ref_sums = _ops(lambda: logup_gkr.fold_round_sums(tables, R, LAM))
    assert _eq(folded, ref_folded) and _eq(sums, ref_sums)


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
    assert _eq(got, _ops(lambda: logup_gkr.layer_tables(lp, lq, xi)))


def test_emulated_rejects_bad_shapes(emulated):
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
def test_emulated_gkr_proofs(routed, num_vars):
    """Whole fractional sumchecks (the random balanced trees of tests/test_logup_gkr.py):
    identical proof bytes, point and transcript state; the proof verifies."""
    p, q = balanced_leaves(num_vars, seed=num_vars)
    got = _gkr_proof(p, q)
    assert got == _ops(lambda: _gkr_proof(p, q))
    assert set(routed) == (set(OPERATIONS) if num_vars > 2 else set(OPERATIONS[:2]) if num_vars == 2 else set())
    _, _, xi = verify_gkr(GkrProof.from_bytes(got[0]), Transcript(), num_vars)
    assert xi == got[1]


def test_emulated_golden_proofs_with_interactions(emulator_dir, monkeypatch):  # noqa: F811 (fixture argument)
    """The golden workloads with interactions give their fingerprints with the emulated
    kernels (CUDA here; the Metal twins are covered above)."""
    from .golden import fingerprint, golden_workloads
    from .test_golden_fingerprints import GOLDEN

    calls = []

    def native(op):
        if op in KERNELS:
            calls.append(op)
            return KERNELS[op]
        return None

    monkeypatch.setattr(kg, "launch", _emulated_launch("cuda", emulator_dir))
    monkeypatch.setattr(custom_kernels, "native", native)
    prev = mx.default_device()
    mx.set_default_device(mx.cpu)
    try:
        for w in golden_workloads():
            if w.name in ("interactions-11", "mixture-3"):
                calls.clear()
                assert fingerprint(w) == GOLDEN[w.name], w.name
                assert set(calls) == set(OPERATIONS), w.name
    finally:
        mx.set_default_device(prev)


# ---------------------------------------------------------------- on the GPU (CUDA or Metal)
needs_native = pytest.mark.skipif(not mx.is_available(mx.gpu), reason="no GPU device")


@needs_native
def test_device_equals_ops(monkeypatch):
    prev = mx.default_device()
    device.set_device("gpu")
    try:
        monkeypatch.setenv("MLX_STARK_KERNELS", "auto")
        if custom_kernels.native("gkr.round_sums") is None:
            pytest.skip("the GPU has no custom-kernel backend")
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

        native = run()
        monkeypatch.setenv("MLX_STARK_KERNELS", "ops")
        ops = run()
        for got, ref in zip(native[0] + native[2], ops[0] + ops[2]):
            np.testing.assert_array_equal(got, ref)
        for (fa, sa), (fb, sb) in zip(native[1], ops[1]):
            np.testing.assert_array_equal(fa, fb)
            np.testing.assert_array_equal(sa, sb)
        assert native[3] == ops[3]
    finally:
        mx.set_default_device(prev)
