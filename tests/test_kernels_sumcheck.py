"""Product-sumcheck kernels (mlx_stark.custom_kernels.sumcheck): the native path of the product
rounds of the stacked reduction and WHIR, of ``fold_lowest`` and of WHIR's query weights.

- sources (their structure in both dialects: tests/test_custom_kernels.py): the extension
  arithmetic is the prelude's shared header; no pointer declarations;
- emulation (needs g++): the rendered CUDA and Metal sources run as C++ on the CPU (see
  tests/kernel_helpers.py) and equal the MLX-ops references on awkward sizes (one pair,
  partial blocks, several blocks, several items per thread; trailing batch axes of 1, 3, 42 and
  none), random and all-``p − 1`` values, and through the stages' registry dispatch; whole
  stacked-reduction + WHIR proofs and the golden proofs give the same bytes with the emulated
  kernels;
- device: on a GPU with native kernels, the stage functions and whole proofs equal the ops
  path on the CPU.
"""
import re

import mlx.core as mx
import numpy as np
import pytest

from mlx_stark import custom_kernels
from mlx_stark.custom_kernels import render
from mlx_stark.custom_kernels import sizing
from mlx_stark.custom_kernels import indexing as kidx
from mlx_stark.custom_kernels import linear as klin
from mlx_stark.custom_kernels import poseidon2 as kp2
from mlx_stark.custom_kernels import sumcheck as ks
from mlx_stark.errors import InvalidInputError
from mlx_stark.field import bb, ext
from mlx_stark.field.bb import P, two_adic_generator
from mlx_stark.field.host import EF
from mlx_stark.poly import eq_suffix_tables, eq_table, eq_table_squares, ext_powers, fold_lowest, host, product_table
from mlx_stark.poly.mle import interpolate_at_integers
from mlx_stark.prover import whir
from mlx_stark.prover import sumcheck
from mlx_stark.prover.sumcheck import fold_product_round, product_round_values
from mlx_stark.transcript import DeviceTranscript, Transcript

from .kernel_helpers import arrays_equal, emulation, needs_native, ops_path, route

SOURCES = (ks.product_round_source, ks.fold_product_round_source,
           *(lambda i=i: ks.absorbing_sources()[i] for i in range(4)), lambda: ks.fold_source(False),
           lambda: ks.fold_source(True), ks.update_weights_source, ks.interpolate_source,
           ks.product_table_source, ks.eq_suffix_source, ks.powers_source, ks.powers_at_source)
KERNELS = {"mle.fold_lowest:ext": ks.fold_ext, "mle.fold_lowest:base": ks.fold_base,
           "sumcheck.product_round_values": ks.product_round, "sumcheck.fold_product_round": ks.fold_product_round,
           "whir.update_weights": ks.update_weights, "mle.interpolate_at_integers": ks.interpolate_at_integers,
           "mle.product_table": ks.product_table, "mle.eq_table": ks.eq_table,
           "mle.ext_powers": ks.ext_powers,
           "whir.powers_at": ks.powers_at, "mle.eq_suffix_tables": ks.eq_suffix_tables}
# the rounds with their transcript step, on a device transcript
STEP_KERNELS = {"sumcheck.product_round_step": ks.product_round_step,
                "sumcheck.fold_product_round_step": ks.fold_product_round_step,
                "transcript.DeviceTranscript": kp2.duplex}
R = EF(P - 2, 5, 0, 99)
TOP = EF(P - 1, P - 1, P - 1, P - 1)


def _table(rows: int, batch: tuple, kind: str, seed: int = 0, base: bool = False) -> mx.array:
    shape = (rows,) + batch + (() if base else (4,))
    if kind == "random":
        return bb.random(shape, rows * 7 + len(batch) * 3 + seed)
    return mx.full(shape, P - 1, dtype=mx.uint32)


# ---------------------------------------------------------------- sources
def test_sources():
    for make in SOURCES:
        src = make()
        # the extension arithmetic is the prelude's shared header
        header, _ = render(src, "cuda")
        assert "KFN ef ef_mul(ef a, ef b)" in header and "KFN ef ef_fold" in header
        # no pointer declarations at all (not even thread-private ones) but the Poseidon2
        # permutation's of a folding grind (thread-private, with their address space)
        own = src.header.replace(kp2.permutation_header(), "") + src.body
        assert not re.search(r"uint(32|64)_t\s*\*", own)


# ---------------------------------------------------------------- emulation
# the rounds' partial sums are added (and absorbed) by linear's and poseidon2's launches
emulated = emulation(ks, klin, kp2, kidx)
emulated_cuda = emulation(ks, klin, kp2, kidx, dialects=("cuda",))


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
        assert arrays_equal(got, ops_path(lambda: fold_lowest(table, r, base=base))), base


@pytest.mark.parametrize("rows, batch", CASES)
@pytest.mark.parametrize("kind", ["random", "top"])
def test_emulated_product_round(emulated, rows, batch, kind):
    f, w = _table(rows, batch, kind), _table(rows, batch, kind, 1)
    got = ks.product_round(f, w)
    assert got.shape == (2, 4) and arrays_equal(got, ops_path(lambda: product_round_values(f, w)))
    if rows >= 4:
        r = R if kind == "random" else TOP
        f2, w2, sums = ks.fold_product_round(f, w, r)
        rf, rw, rsums = ops_path(lambda: fold_product_round(f, w, r))
        assert f2.shape == (rows // 2,) + batch + (4,) and w2.shape == f2.shape
        assert arrays_equal(f2, rf) and arrays_equal(w2, rw) and arrays_equal(sums, rsums)
        # a challenge on the device (a device transcript's) folds the same
        d2, dw2, dsums = ks.fold_product_round(f, w, ext.constant(r))
        assert arrays_equal(d2, f2) and arrays_equal(dw2, w2) and arrays_equal(dsums, sums)


def test_emulated_all_top_values(emulated):
    """Every coefficient ``p − 1`` (the element ``v = TOP``): the fold keeps the table and
    ``s(1) = s(2) = (pairs·columns)·v²``."""
    f = _table(64, (42,), "top")
    s1, s2 = ext.to_host(ks.product_round(f, f))
    assert s1 == s2 == TOP * TOP * (32 * 42)
    f2, w2, sums = ks.fold_product_round(f, f, R)
    assert arrays_equal(f2, f[:32]) and arrays_equal(w2, f[:32])
    assert tuple(ext.to_host(sums)) == (TOP * TOP * (16 * 42),) * 2


def test_emulated_several_items_per_thread(emulated, monkeypatch):
    """Launches capped below one thread per item: threads take items ``gid, gid + T, ...``
    (uneven: 1536 items over 512 and 3 x 512 items over 768 threads)."""
    monkeypatch.setattr(sizing, "TARGET_THREADS", 2 * ks.THREADS)
    f, w = _table(1024, (3,), "random", 5), _table(1024, (3,), "random", 6)
    assert arrays_equal(ks.product_round(f, w), ops_path(lambda: product_round_values(f, w)))
    monkeypatch.setattr(sizing, "TARGET_THREADS", 3 * ks.THREADS)
    f2, w2, sums = ks.fold_product_round(f, w, R)
    rf, rw, rsums = ops_path(lambda: fold_product_round(f, w, R))
    assert arrays_equal(f2, rf) and arrays_equal(w2, rw) and arrays_equal(sums, rsums)


@pytest.mark.parametrize("queries, d", [(0, 2), (1, 0), (1, 1), (3, 4), (10, 9), (7, 11)])
def test_emulated_update_weights(emulated, queries, d):
    """WHIR's weight update in one launch equals the ops reference (the out-of-domain eq
    table at the squares, the query tables with the powers of γ), at random and all-(p − 1)
    values."""
    points = [(P - 1 - 977 * q * q) % P for q in range(queries)]
    if queries:
        points[0] = P - 1
    points = mx.array(points, dtype=mx.uint32)
    for w, z0, gamma in ((ext.random((1 << d,), queries + d), ext.constant(R), ext.random((), d)),
                         (mx.full((1 << d, 4), P - 1, dtype=mx.uint32), ext.constant(TOP), ext.constant(TOP))):
        got = ks.update_weights(w, z0, gamma, points)
        assert got.shape == (1 << d, 4) and got.dtype == mx.uint32
        assert arrays_equal(got, ops_path(lambda: whir._update_weights(w, z0, gamma, points)))


@pytest.mark.parametrize("n", [1, 2, 3, 5, 9, ks.MAX_NODES])
def test_emulated_interpolate_at_integers(emulated, n):
    values = ext.random((n,), n)
    for x in (R, TOP, EF(3), EF(n - 1), EF(n + 4)):  # nodes themselves included
        got = ks.interpolate_at_integers(values, ext.constant(x))
        assert got.shape == (4,) and got.dtype == mx.uint32
        assert arrays_equal(got, ops_path(lambda: interpolate_at_integers(values, ext.constant(x))))
        assert ext.to_host(got[None])[0] == host.interpolate_at_integers(ext.to_host(values), x)
    top = mx.full((n, 4), P - 1, dtype=mx.uint32)
    assert arrays_equal(ks.interpolate_at_integers(top, ext.constant(TOP)),
                        ops_path(lambda: interpolate_at_integers(top, ext.constant(TOP))))


@pytest.mark.parametrize("d", [1, 2, 5, 11])
def test_emulated_product_and_eq_tables(emulated, d):
    pts = ext.to_host(ext.random((d,), d)) if d < 11 else [TOP] * d
    pairs = [(EF(j + 3, 1, 0, 7), p) for j, p in enumerate(pts)]
    got = ks.product_table(ext.from_host([v for pair in pairs for v in pair]).reshape(d, 2, 4))
    assert got.shape == (1 << d, 4) and arrays_equal(got, ops_path(lambda: product_table(pairs)))
    got_eq = ks.eq_table(ext.from_host(pts))
    assert arrays_equal(got_eq, ops_path(lambda: eq_table(pts)))
    # the stages' entry points with device points, as a device transcript gives them
    routed_pts = [ext.constant(p) for p in pts]
    assert arrays_equal(got_eq, ops_path(lambda: eq_table(routed_pts)))


@pytest.mark.parametrize("d", [1, 2, 5, 11])
def test_emulated_eq_suffix_tables(emulated, d):
    """Every suffix's eq table from one launch: each equals the eq table of the suffix and the
    previous table's pairs summed (the ops path)."""
    pts = ext.to_host(ext.random((d,), d + 50)) if d < 11 else [TOP] * d
    got = ks.eq_suffix_tables(ext.from_host(pts))
    assert [t.shape for t in got] == [(1 << (d - k), 4) for k in range(d + 1)]
    want = ops_path(lambda: eq_suffix_tables(pts))
    assert all(arrays_equal(a, b) for a, b in zip(got, want)) and len(want) == d + 1
    assert all(arrays_equal(a, ops_path(lambda: eq_table(pts[k:]))) for k, a in enumerate(got))
    assert ext.to_host(got[-1]) == [EF(1)]
    with pytest.raises(InvalidInputError):
        ks.eq_suffix_tables(ext.from_host(pts).reshape(-1))


def test_eq_table_squares():
    for z in (R, TOP, EF(0), EF(1)):
        squares = [z]
        for _ in range(2):
            squares.append(squares[-1] * squares[-1])
        assert arrays_equal(eq_table_squares(ext.constant(z), 3), eq_table(squares))


@pytest.mark.parametrize("bits", [0, 1, 5, 17, 31])
def test_emulated_powers_at(emulated, bits):
    idx = mx.array([0, 1, 2, 3, 977, (1 << 31) - 1, 0xFFFFFFFF, 123456789], dtype=mx.uint32)
    for g in (two_adic_generator(17), P - 1, 0, 1):
        got = ks.powers_at(g, idx, bits)
        expected = [pow(g, int(i) % (1 << bits), P) for i in np.array(idx)]
        assert got.dtype == mx.uint32 and np.array(got).tolist() == expected
        assert arrays_equal(got, ops_path(lambda: whir._powers_at(g, idx, bits)))
    assert ks.powers_at(5, mx.zeros((0,), dtype=mx.uint32), 3).shape == (0,)
    with pytest.raises(InvalidInputError):
        ks.powers_at(5, idx.reshape(2, 4), 3)


@pytest.mark.parametrize("n", [0, 1, 2, 3, 17, 300])
def test_emulated_ext_powers(emulated, n):
    for x in (R, TOP, EF(0), EF(1)):
        got = ks.ext_powers(ext.constant(x), n)
        assert got.shape == (n, 4)
        assert arrays_equal(got, ops_path(lambda: ext_powers(x, n)))
        assert arrays_equal(got, ops_path(lambda: ext_powers(ext.constant(x), n)))


def test_emulated_interpolate_declines_many_nodes(emulated):
    assert ks.interpolate_at_integers(ext.random((ks.MAX_NODES + 1,), 1), ext.constant(R)) is None
    with pytest.raises(InvalidInputError):
        ks.interpolate_at_integers(ext.random((3,), 1), ext.random((2,), 1))
    with pytest.raises(InvalidInputError):
        ks.eq_table(ext.zeros((0,)))
    with pytest.raises(InvalidInputError):
        ks.product_table(ext.random((3,), 1))


def test_emulated_through_the_stages(emulated, monkeypatch):
    routed = route(monkeypatch, KERNELS)
    f, w = _table(16, (3,), "random"), _table(16, (3,), "random", 1)
    got = product_round_values(f, w), fold_product_round(f, w, R), fold_lowest(f, R)
    five_seven = mx.array([5, 7], dtype=mx.uint32)
    weights = whir._update_weights(ext.random((8,), 3), ext.constant(R), ext.constant(TOP), five_seven)
    at = whir._powers_at(31, five_seven, 3)
    values = ext.random((4,), 2)
    at_r = interpolate_at_integers(values, ext.constant(R))
    tables = eq_table([R, ext.constant(TOP), EF(5)]), product_table([(R, TOP), (EF(2), EF(9))])
    pows = ext_powers(R, 9)
    assert set(routed) == {"sumcheck.product_round_values", "sumcheck.fold_product_round", "mle.fold_lowest:ext",
                           "whir.update_weights", "mle.interpolate_at_integers", "mle.eq_table",
                           "mle.product_table", "mle.ext_powers", "whir.powers_at"}
    assert arrays_equal(at, ops_path(lambda: whir._powers_at(31, five_seven, 3)))
    assert arrays_equal(pows, ops_path(lambda: ext_powers(R, 9)))
    assert arrays_equal(at_r, ops_path(lambda: interpolate_at_integers(values, ext.constant(R))))
    ref = ops_path(lambda: (eq_table([R, ext.constant(TOP), EF(5)]),
                            product_table([(R, TOP), (EF(2), EF(9))])))
    assert arrays_equal(tables[0], ref[0]) and arrays_equal(tables[1], ref[1])
    ref = ops_path(lambda: (product_round_values(f, w), fold_product_round(f, w, R), fold_lowest(f, R)))
    assert arrays_equal(got[0], ref[0]) and all(arrays_equal(x, y) for x, y in zip(got[1], ref[1]))
    assert arrays_equal(got[2], ref[2])
    assert arrays_equal(weights, ops_path(lambda: whir._update_weights(ext.random((8,), 3), ext.constant(R),
                                                                      ext.constant(TOP), five_seven)))


emulated_steps = emulation(ks, klin, kp2, kidx, dialects=("cuda",))


def _steps(f: mx.array, w: mx.array, before: int, grind) -> list:
    """A first round and a folded one, each observed and followed by a sample (or, ``grind``
    bits, a proof of work, then a sample), on a device transcript over a host transcript
    that absorbed ``before`` values, synced back: every value and the transcript's next
    sample."""
    t = Transcript()
    t.observe_many(list(range(before)))
    dt = DeviceTranscript(t)
    out = list(sumcheck.product_round_step(dt, f, w, grind))
    out.append(dt.sample_ext())
    out += sumcheck.fold_product_round_step(dt, f, w, out[-1], grind)
    out.append(dt.sample_ext())
    return [a.tolist() for a in dt.sync(*out)] + [t.sample()]


@pytest.mark.parametrize("rows, batch", [(4, ()), (64, (3,)), (1 << 11, ())])
@pytest.mark.parametrize("before, grind", [(0, None), (5, None), (3, 2), (6, 0), (1, 7)])
def test_emulated_steps_equal_the_host_transcript(emulated_steps, monkeypatch, rows, batch, before,
                                                  grind):
    """The rounds with their absorb (one launch for tables of one block, the sums' launches
    and a duplex for more), before a sample or a proof of work (2 bits: the search in the
    absorbing launch; 7 bits: more nonces than a block searches, launches of its own; 0
    bits: none), equal the ops path on the host sponge."""
    monkeypatch.setattr(kp2, "POW_MIN_BATCH", 64)  # emulated threads are OS threads
    if grind == 7 and rows != 4:
        pytest.skip("the launches of a larger search are the same for every table")
    f, w = _table(rows, batch, "random", before), _table(rows, batch, "random", before + 1)
    want = _steps(f, w, before, grind)  # the CPU: ops, host sponge
    calls = route(monkeypatch, {**STEP_KERNELS, "transcript.DeviceTranscript.grind": kp2.grind})
    assert _steps(f, w, before, grind) == want
    assert set(STEP_KERNELS) <= set(calls)


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
        ks.update_weights(ext.random((6,), 1), ext.constant(R), ext.constant(R), mx.array([1, 2], dtype=mx.uint32))
    with pytest.raises(InvalidInputError):
        ks.update_weights(ext.random((8,), 1), ext.constant(R), ext.random((2,), 1), mx.array([1, 2], dtype=mx.uint32))


def _pcs_proofs(inst):
    from .test_whir import prove_all
    sp, wp, after = prove_all(inst)
    return sp.to_bytes(), wp.to_bytes(), after


def test_emulated_pcs_proofs(emulated, monkeypatch):
    """The stacked reduction + WHIR of tests/test_whir.py's instance: identical proof bytes
    through the emulated kernels, every sumcheck operation used."""
    from .test_stacked_reduction import make_instance
    routed = route(monkeypatch, KERNELS)
    inst = make_instance(2, 6, 3, [[(3, 5), (6, 3)], [(4, 2)]], [[True, False], [True]], seed=3)
    got = _pcs_proofs(inst)
    assert got == ops_path(lambda: _pcs_proofs(inst))
    assert {"sumcheck.product_round_values", "sumcheck.fold_product_round", "mle.fold_lowest:ext",
            "whir.update_weights", "whir.powers_at"} <= set(routed)


def test_emulated_golden_proofs(emulated_cuda, monkeypatch):
    """Whole proofs with the sumcheck kernels (emulated CUDA; the Metal twins are covered
    above) give the golden fingerprints."""
    from .golden import fingerprint, golden_workloads
    from .test_golden_fingerprints import GOLDEN

    calls = route(monkeypatch, KERNELS)
    for w in golden_workloads():
        calls.clear()
        assert fingerprint(w) == GOLDEN[w.name], w.name
        expected = {"sumcheck.product_round_values", "sumcheck.fold_product_round", "mle.fold_lowest:ext"}
        if w.params.num_whir_rounds > 1:  # query and out-of-domain weights update the next round's
            expected |= {"whir.update_weights", "whir.powers_at"}
        assert expected <= set(calls), w.name


# ---------------------------------------------------------------- on the GPU (CUDA or Metal)
@needs_native
def test_device_equals_ops(reference):
    from .test_stacked_reduction import make_instance

    # the test cases, then the keccakf-1024 shapes: stacked reduction (2^17, 42, 4) and
    # WHIR (2^21, 4), and the query weights of a WHIR round
    cases = [(rows, batch, kind) for rows, batch in CASES + [(1 << 17, (42,)), (1 << 21, ())]
             for kind in ("random", "top")]
    tables = [(_table(rows, batch, kind), _table(rows, batch, kind, 1)) for rows, batch, kind in cases]
    bases = [_table(rows, batch, "random", 2, base=True) for rows, batch in ((2, ()), (1 << 12, (3,)))]
    queries = [(mx.array([(3 + 977 * q * q) % P for q in range(n)], dtype=mx.uint32), ext.random((n,), n), d)
               for n, d in ((1, 0), (5, 7), (137, 18))]
    inst = make_instance(2, 6, 3, [[(3, 5), (6, 3)], [(4, 2)]], [[True, False], [True]], seed=3)

    def run():
        rounds = [np.array(product_round_values(f, w)).tolist() for f, w in tables]
        folds = [fold_product_round(f, w, R) for f, w in tables if f.shape[0] >= 4]
        plain = [fold_lowest(f, R) for f, _ in tables] + [fold_lowest(t, R, base=True) for t in bases]
        weights = [whir._update_weights(ext.random((1 << d,), d), ext.constant(R), ext.constant(TOP), pts)
                   for pts, _, d in queries]
        weights += [whir._powers_at(two_adic_generator(20), q[0], 20) for q in queries]
        weights += eq_suffix_tables([R, TOP, EF(7, 1, 2, 3)])
        mx.eval(plain, weights)
        return (rounds, [(np.array(a), np.array(b), np.array(s).tolist()) for a, b, s in folds],
                [np.array(a) for a in plain + weights], _pcs_proofs(inst))

    assert custom_kernels.native("sumcheck.product_round_values") is not None
    native = run()
    ops = reference(run)
    assert native[0] == ops[0]
    for (fa, wa, sa), (fb, wb, sb) in zip(native[1], ops[1]):
        np.testing.assert_array_equal(fa, fb)
        np.testing.assert_array_equal(wa, wb)
        assert sa == sb
    for got, ref in zip(native[2], ops[2]):
        np.testing.assert_array_equal(got, ref)
    assert native[3] == ops[3]
