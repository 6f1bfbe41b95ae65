"""Product-sumcheck kernels (mlx_stark.custom_kernels.sumcheck): the native path of the product
rounds of the stacked reduction and WHIR, of ``fold_lowest`` and of WHIR's query weights.

- sources: every kernel renders in both dialects, the twins differing only in the dialect's
  macros and thread indices; shared memory only with barriers; no pointer declarations;
- emulation (needs g++): the rendered CUDA and Metal sources run as C++ on the CPU (see
  tests/test_custom_kernels.py) and equal the MLX-ops references on awkward sizes (one pair,
  partial blocks, several blocks, several items per thread; trailing batch axes of 1, 3, 42 and
  none), random and all-``p − 1`` values, and through the stages' registry dispatch; whole
  stacked-reduction + WHIR proofs and the golden proofs give the same bytes with the emulated
  kernels;
- device: on a GPU with native kernels, the stage functions and whole proofs equal the ops
  path.
"""
import re

import mlx.core as mx
import numpy as np
import pytest

from mlx_stark import custom_kernels, device
from mlx_stark.custom_kernels import DIALECTS, render
from mlx_stark.custom_kernels import sumcheck as ks
from mlx_stark.errors import InvalidInputError
from mlx_stark.field import bb, ext
from mlx_stark.field.bb import P
from mlx_stark.field.host import EF
from mlx_stark.poly import fold_lowest
from mlx_stark.prover import whir
from mlx_stark.prover.stacked_reduction import fold_product_round, product_round_values

from .test_custom_kernels import _emulated_launch, emulator_dir  # noqa: F401 (fixture)

SOURCES = (ks.product_round_source, ks.fold_product_round_source, lambda: ks.fold_source(False),
           lambda: ks.fold_source(True), ks.query_weights_source)
KERNELS = {"sumcheck.fold_ext": ks.fold_ext, "sumcheck.fold_base": ks.fold_base,
           "sumcheck.product_round": ks.product_round, "sumcheck.fold_product_round": ks.fold_product_round,
           "sumcheck.query_weights": ks.query_weights}
OPERATIONS = tuple(KERNELS)
R = EF(P - 2, 5, 0, 99)
TOP = EF(P - 1, P - 1, P - 1, P - 1)


def _eq(a, b) -> bool:
    return np.array_equal(np.array(a), np.array(b))


def _ops(thunk):
    """``thunk`` with every kernel operation on its MLX-ops path."""
    prev = custom_kernels.native
    custom_kernels.native = lambda op: None
    try:
        return thunk()
    finally:
        custom_kernels.native = prev


def _table(rows: int, batch: tuple, kind: str, seed: int = 0, base: bool = False) -> mx.array:
    shape = (rows,) + batch + (() if base else (4,))
    if kind == "random":
        return bb.random(shape, rows * 7 + len(batch) * 3 + seed)
    return mx.full(shape, P - 1, dtype=mx.uint32)


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
        assert "KFN ef ef_mul(ef a, ef b)" in hc and "KFN ef ef_fold" in hc
        # no pointer declarations (Metal would need address spaces)
        assert not re.search(r"uint(32|64)_t\s*\*", src.header + src.body)
        # shared memory only with barriers, declared at the top level of the body
        assert ("SHARED" in src.body) == ("BARRIER()" in src.body)
        assert all(line.startswith("SHARED") for line in src.body.splitlines() if "SHARED" in line)
    assert len(names) == len(SOURCES)


def test_plan_blocks():
    assert ks.plan_blocks(1) == 1 and ks.plan_blocks(ks.THREADS) == 1 and ks.plan_blocks(ks.THREADS + 1) == 2
    assert ks.plan_blocks(1 << 18) == ks.MAX_BLOCKS and ks.plan_blocks(42 << 16) == ks.MAX_BLOCKS


def test_registry_names():
    assert set(OPERATIONS) <= set(custom_kernels.OPERATIONS)


# ---------------------------------------------------------------- emulation
@pytest.fixture(params=DIALECTS)
def emulated(request, emulator_dir, monkeypatch):  # noqa: F811 (fixture argument)
    """The kernel module's launches run the C++ emulation of ``request.param``; the reference
    runs as MLX ops on the CPU."""
    monkeypatch.setattr(ks, "launch", _emulated_launch(request.param, emulator_dir))
    prev = mx.default_device()
    mx.set_default_device(mx.cpu)
    yield request.param
    mx.set_default_device(prev)


def _route(monkeypatch, calls: list):
    """The registry returns the (emulated) sumcheck kernels and records the operations."""
    def native(op):
        if op in KERNELS:
            calls.append(op)
            return KERNELS[op]
        return None

    monkeypatch.setattr(custom_kernels, "native", native)


@pytest.fixture
def routed(emulated, monkeypatch):
    calls = []
    _route(monkeypatch, calls)
    return calls


# rows x trailing batch axes: one pair, partial blocks, several blocks (2^11 x 3 items)
CASES = [(rows, batch) for rows in (2, 4, 16) for batch in ((), (1,), (3,), (42,))] + [
    (1 << 11, (3,)), (1 << 10, (2, 3)), (1 << 9, (42,))]


@pytest.mark.parametrize("rows, batch", CASES)
@pytest.mark.parametrize("kind", ["random", "top"])
def test_emulated_fold(emulated, rows, batch, kind):
    r = R if kind == "random" else TOP
    for base in (False, True):
        table = _table(rows, batch, kind, base=base)
        got = (ks.fold_base if base else ks.fold_ext)(table, r)
        assert got.shape == (rows // 2,) + batch + (4,) and got.dtype == mx.uint32
        assert _eq(got, _ops(lambda: fold_lowest(table, r, base=base))), base


@pytest.mark.parametrize("rows, batch", CASES)
@pytest.mark.parametrize("kind", ["random", "top"])
def test_emulated_product_round(emulated, rows, batch, kind):
    f, w = _table(rows, batch, kind), _table(rows, batch, kind, 1)
    got = ks.product_round(f, w)
    assert got == _ops(lambda: product_round_values(f, w))
    if rows >= 4:
        r = R if kind == "random" else TOP
        f2, w2, sums = ks.fold_product_round(f, w, r)
        rf, rw, rsums = _ops(lambda: fold_product_round(f, w, r))
        assert f2.shape == (rows // 2,) + batch + (4,) and w2.shape == f2.shape
        assert _eq(f2, rf) and _eq(w2, rw) and sums == rsums


def test_emulated_all_top_values(emulated):
    """Every coefficient ``p − 1`` (the element ``v = TOP``): the fold keeps the table and
    ``s(1) = s(2) = (pairs·columns)·v²``."""
    f = _table(64, (42,), "top")
    s1, s2 = ks.product_round(f, f)
    assert s1 == s2 == TOP * TOP * (32 * 42)
    f2, w2, sums = ks.fold_product_round(f, f, R)
    assert _eq(f2, f[:32]) and _eq(w2, f[:32]) and sums == (TOP * TOP * (16 * 42),) * 2


def test_emulated_several_items_per_thread(emulated, monkeypatch):
    """Launches capped below one thread per item: threads take items ``gid, gid + T, ...``
    (uneven: 1536 items over 512 and 3 x 512 items over 768 threads)."""
    monkeypatch.setattr(ks, "MAX_BLOCKS", 2)
    f, w = _table(1024, (3,), "random", 5), _table(1024, (3,), "random", 6)
    assert ks.product_round(f, w) == _ops(lambda: product_round_values(f, w))
    monkeypatch.setattr(ks, "MAX_BLOCKS", 3)
    f2, w2, sums = ks.fold_product_round(f, w, R)
    rf, rw, rsums = _ops(lambda: fold_product_round(f, w, R))
    assert _eq(f2, rf) and _eq(w2, rw) and sums == rsums


@pytest.mark.parametrize("queries, d", [(1, 0), (1, 1), (3, 4), (10, 9), (7, 11)])
def test_emulated_query_weights(emulated, queries, d):
    points = [(P - 1 - 977 * q * q) % P for q in range(queries)]
    points[0] = P - 1
    coeffs = ext.random((queries,), queries + d)
    got = ks.query_weights(points, coeffs, d)
    assert got.shape == (1 << d, 4) and got.dtype == mx.uint32
    assert _eq(got, _ops(lambda: whir._query_weights(points, coeffs, d)))
    top = mx.full((queries, 4), P - 1, dtype=mx.uint32)
    assert _eq(ks.query_weights(points, top, d), _ops(lambda: whir._query_weights(points, top, d)))
    assert _eq(ks.query_weights([], ext.zeros((0,)), d), ext.zeros((1 << d,)))


def test_emulated_through_the_stages(routed):
    f, w = _table(16, (3,), "random"), _table(16, (3,), "random", 1)
    got = product_round_values(f, w), fold_product_round(f, w, R), fold_lowest(f, R)
    weights = whir._query_weights([5, 7], ext.random((2,), 1), 3)
    assert set(routed) == {"sumcheck.product_round", "sumcheck.fold_product_round", "sumcheck.fold_ext",
                           "sumcheck.query_weights"}
    ref = _ops(lambda: (product_round_values(f, w), fold_product_round(f, w, R), fold_lowest(f, R)))
    assert got[0] == ref[0] and _eq(got[1][0], ref[1][0]) and _eq(got[1][1], ref[1][1]) and got[1][2] == ref[1][2]
    assert _eq(got[2], ref[2])
    assert _eq(weights, _ops(lambda: whir._query_weights([5, 7], ext.random((2,), 1), 3)))


def test_emulated_rejects_bad_shapes(emulated):
    f = _table(8, (3,), "random")
    with pytest.raises(InvalidInputError):
        ks.product_round(f, _table(8, (2,), "random"))
    with pytest.raises(InvalidInputError):
        ks.product_round(f[:6], f[:6])
    with pytest.raises(InvalidInputError):
        ks.product_round(f[:1], f[:1])
    with pytest.raises(InvalidInputError):
        ks.fold_product_round(f[:2], f[:2], R)
    with pytest.raises(InvalidInputError):
        ks.fold_ext(bb.random((8, 3), 1), R)
    with pytest.raises(InvalidInputError):
        ks.query_weights([1, 2], ext.random((3,), 1), 2)


def _pcs_proofs(inst):
    from .test_whir import prove_all
    sp, wp, after = prove_all(inst)
    return sp.to_bytes(), wp.to_bytes(), after


def test_emulated_pcs_proofs(routed):
    """The stacked reduction + WHIR of tests/test_whir.py's instance: identical proof bytes
    through the emulated kernels, every sumcheck operation used."""
    from .test_stacked_reduction import make_instance
    inst = make_instance(2, 6, 3, [[(3, 5), (6, 3)], [(4, 2)]], [[True, False], [True]], seed=3)
    got = _pcs_proofs(inst)
    assert got == _ops(lambda: _pcs_proofs(inst))
    assert {"sumcheck.product_round", "sumcheck.fold_product_round", "sumcheck.fold_ext",
            "sumcheck.query_weights"} <= set(routed)


def test_emulated_golden_proofs(emulator_dir, monkeypatch):  # noqa: F811 (fixture argument)
    """Whole proofs with the sumcheck kernels (emulated CUDA; the Metal twins are covered
    above) give the golden fingerprints."""
    from .golden import fingerprint, golden_workloads
    from .test_golden_fingerprints import GOLDEN

    calls = []
    monkeypatch.setattr(ks, "launch", _emulated_launch("cuda", emulator_dir))
    _route(monkeypatch, calls)
    prev = mx.default_device()
    mx.set_default_device(mx.cpu)
    try:
        for w in golden_workloads():
            calls.clear()
            assert fingerprint(w) == GOLDEN[w.name], w.name
            expected = {"sumcheck.product_round", "sumcheck.fold_product_round", "sumcheck.fold_ext"}
            if w.params.num_whir_rounds > 1:  # query weights update the next round's weights
                expected.add("sumcheck.query_weights")
            assert expected <= set(calls), w.name
    finally:
        mx.set_default_device(prev)


# ---------------------------------------------------------------- on the GPU (CUDA or Metal)
needs_native = pytest.mark.skipif(not mx.is_available(mx.gpu), reason="no GPU device")


@needs_native
def test_device_equals_ops(monkeypatch):
    from .test_stacked_reduction import make_instance

    prev = mx.default_device()
    device.set_device("gpu")
    try:
        monkeypatch.setenv("MLX_STARK_KERNELS", "auto")
        if custom_kernels.native("sumcheck.product_round") is None:
            pytest.skip("the GPU has no custom-kernel backend")
        # the test cases, then the keccakf-1024 shapes: stacked reduction (2^17, 42, 4) and
        # WHIR (2^21, 4), and the query weights of a WHIR round
        cases = [(rows, batch, kind) for rows, batch in CASES + [(1 << 17, (42,)), (1 << 21, ())]
                 for kind in ("random", "top")]
        tables = [(_table(rows, batch, kind), _table(rows, batch, kind, 1)) for rows, batch, kind in cases]
        bases = [_table(rows, batch, "random", 2, base=True) for rows, batch in ((2, ()), (1 << 12, (3,)))]
        queries = [([(3 + 977 * q * q) % P for q in range(n)], ext.random((n,), n), d)
                   for n, d in ((1, 0), (5, 7), (137, 18))]
        inst = make_instance(2, 6, 3, [[(3, 5), (6, 3)], [(4, 2)]], [[True, False], [True]], seed=3)

        def run():
            rounds = [product_round_values(f, w) for f, w in tables]
            folds = [fold_product_round(f, w, R) for f, w in tables if f.shape[0] >= 4]
            plain = [fold_lowest(f, R) for f, _ in tables] + [fold_lowest(t, R, base=True) for t in bases]
            weights = [whir._query_weights(*q) for q in queries]
            mx.eval(plain, weights)
            return (rounds, [(np.array(a), np.array(b), s) for a, b, s in folds],
                    [np.array(a) for a in plain + weights], _pcs_proofs(inst))

        native = run()
        monkeypatch.setenv("MLX_STARK_KERNELS", "ops")
        ops = run()
        assert native[0] == ops[0]
        for (fa, wa, sa), (fb, wb, sb) in zip(native[1], ops[1]):
            np.testing.assert_array_equal(fa, fb)
            np.testing.assert_array_equal(wa, wb)
            assert sa == sb
        for got, ref in zip(native[2], ops[2]):
            np.testing.assert_array_equal(got, ref)
        assert native[3] == ops[3]
    finally:
        mx.set_default_device(prev)
