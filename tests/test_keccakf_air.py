"""KeccakfAir and its trace generator against keccak_air.md: known answers (XKCP per-round
intermediates, full permutations), an independent scalar Keccak-f and SHA3-256, the constraint
list (count, order, degrees, tree shapes, DAG facts) and valid / tampered traces."""
import hashlib
import json
from importlib import resources

import mlx.core as mx
import numpy as np
import pytest

from mlx_stark.air.check import ConstraintNotSatisfied, check_constraints, symbolic_dag
from mlx_stark.air.dag import DagBuilder, TraceWidth
from mlx_stark.air.expr import Entry, SymbolicVariable
from mlx_stark.airs.keccakf import (
    NUM_KECCAK_COLS,
    KeccakfAir,
    KeccakLayout as L,
    keccakf_outputs,
    keccakf_trace,
    random_keccakf_inputs,
)
from mlx_stark.errors import InvalidInputError

MASK = (1 << 64) - 1


def _kat():
    data = json.loads(resources.files("mlx_stark").joinpath("data/keccakf_kat.json").read_text())
    return data["vectors"] + data["vectors_derived_from_plonky3_test_inputs"]["vectors"]


def _lanes(hexes):
    return [int(h, 16) for h in hexes]


# ------------------------------------------------------------------ independent scalar Keccak-f
def _rc(ir):
    """Round constant of round ``ir`` from the LFSR of FIPS 202 §3.2.5."""
    def rc_bit(t):
        r = 1
        for _ in range(t % 255):
            r <<= 1
            if r & 0x100:
                r ^= 0x171
        return r & 1

    return sum(rc_bit(j + 7 * ir) << ((1 << j) - 1) for j in range(7))


def _keccakf_ref(state):
    """Textbook Keccak-f[1600] on 25 Python ints (lane i = x + 5y), with its own tables."""
    rot = [[0, 36, 3, 41, 18], [1, 44, 10, 45, 2], [62, 6, 43, 15, 61],
           [28, 55, 25, 21, 56], [27, 20, 39, 8, 14]]
    a = [[state[x + 5 * y] for y in range(5)] for x in range(5)]
    rotl = lambda v, n: ((v << n) | (v >> (64 - n))) & MASK if n else v
    for ir in range(24):
        c = [a[x][0] ^ a[x][1] ^ a[x][2] ^ a[x][3] ^ a[x][4] for x in range(5)]
        d = [c[(x - 1) % 5] ^ rotl(c[(x + 1) % 5], 1) for x in range(5)]
        a = [[a[x][y] ^ d[x] for y in range(5)] for x in range(5)]
        b = [[0] * 5 for _ in range(5)]
        for x in range(5):
            for y in range(5):
                b[y][(2 * x + 3 * y) % 5] = rotl(a[x][y], rot[x][y])
        a = [[b[x][y] ^ (~b[(x + 1) % 5][y] & b[(x + 2) % 5][y]) for y in range(5)]
             for x in range(5)]
        a[0][0] ^= _rc(ir)
    return [a[i % 5][i // 5] for i in range(25)]


# ------------------------------------------------------------------ decoding trace columns
def _from_bits(row, start, lanes):
    bits = row[start:start + 64 * lanes].astype(np.uint64).reshape(lanes, 64)
    return [int(v) for v in np.bitwise_or.reduce(bits << np.arange(64, dtype=np.uint64), axis=1)]


def _from_limbs(row, cols):
    limbs = row[cols].astype(np.uint64).reshape(-1, 4)
    return [int(v) for v in np.bitwise_or.reduce(limbs << (np.arange(4, dtype=np.uint64) * 16), axis=1)]


def _group(row, name):
    lo, hi = L.group(name)
    return row[lo:hi]


def _a(row):
    return _from_limbs(row, np.arange(*L.group("a")))


def _output(row):
    return _from_limbs(row, [L.a_prime_prime_prime(i // 5, i % 5, l) for i in range(25) for l in range(4)])


# ------------------------------------------------------------------ layout
def test_layout_matches_spec_offsets():
    assert NUM_KECCAK_COLS == 2633
    sizes = [24, 1, 100, 100, 320, 320, 1600, 100, 64, 4]
    names = ["step_flags", "export", "preimage", "a", "c", "c_prime", "a_prime", "a_prime_prime",
             "a_prime_prime_0_0_bits", "a_prime_prime_prime_0_0_limbs"]
    at = 0
    for name, size in zip(names, sizes):
        assert L.group(name) == (at, at + size)
        at += size
    assert at == NUM_KECCAK_COLS
    assert L.preimage(4, 4, 3) == 124 and L.a(0, 1, 0) == 129
    assert L.c_prime(4, 63) == 864 and L.a_prime(4, 4, 63) == 2464
    assert L.a_prime_prime(0, 0, 0) == 2465 and L.a_prime_prime_0_0_bit(63) == 2628
    assert L.a_prime_prime_prime(0, 0, 2) == 2631 and L.a_prime_prime_prime(1, 0, 2) == 2465 + 22
    # B[X][Y] = rotl(A'[(X+3Y)%5][X], R[(X+3Y)%5][X]): B[1][1] = rotl(A'[4][1], 20)
    assert L.b(1, 1, 20) == L.a_prime(1, 4, 0) and L.b(1, 1, 19) == L.a_prime(1, 4, 63)


# ------------------------------------------------------------------ trace generation
def test_per_round_intermediates_match_xkcp():
    vectors = [v for v in _kat() if "per_round" in v]
    assert len(vectors) == 2
    inputs = np.array([_lanes(v["input"]) for v in vectors], dtype=np.uint64)
    trace = keccakf_trace(inputs)
    assert trace.shape == (64, NUM_KECCAK_COLS) and trace.dtype == np.uint32
    for j, v in enumerate(vectors):
        state = _lanes(v["input"])
        for r, rnd in enumerate(v["per_round"]):
            assert rnd["round"] == r
            row = trace[24 * j + r]
            flags = np.zeros(24, dtype=np.uint32)
            flags[r] = 1
            assert (_group(row, "step_flags") == flags).all() and row[L.EXPORT] == 0
            assert _from_limbs(row, np.arange(*L.group("preimage"))) == _lanes(v["input"])
            assert _a(row) == state
            c = [state[x] ^ state[x + 5] ^ state[x + 10] ^ state[x + 15] ^ state[x + 20] for x in range(5)]
            rot1 = lambda w: ((w << 1) | (w >> 63)) & MASK
            c_prime = [c[x] ^ c[(x - 1) % 5] ^ rot1(c[(x + 1) % 5]) for x in range(5)]
            assert _from_bits(row, L.C, 5) == c and _from_bits(row, L.C_PRIME, 5) == c_prime
            assert _from_bits(row, L.A_PRIME, 25) == _lanes(rnd["after_theta"])
            chi = _lanes(rnd["after_chi"])
            assert _from_limbs(row, np.arange(*L.group("a_prime_prime"))) == chi
            assert _from_bits(row, L.A_PRIME_PRIME_0_0_BITS, 1) == [chi[0]]
            assert _output(row) == _lanes(rnd["after_iota"])
            state = _lanes(rnd["after_iota"])
            if r < 23:
                assert _a(trace[24 * j + r + 1]) == state
        assert state == _lanes(v["output"])


def test_full_permutations_match_kat():
    vectors = _kat()
    inputs = np.array([_lanes(v["input"]) for v in vectors], dtype=np.uint64)
    expected = np.array([_lanes(v["output"]) for v in vectors], dtype=np.uint64)
    trace = keccakf_trace(inputs)
    assert trace.shape[0] == 256  # 24·8 = 192 -> 256
    assert (keccakf_outputs(trace, len(vectors)) == expected).all()
    for j, v in enumerate(vectors):  # one permutation alone gives the same rows
        alone = keccakf_trace(inputs[j:j + 1])
        assert (alone[:24] == trace[24 * j:24 * j + 24]).all()


@pytest.mark.parametrize("n", [1, 2, 3, 11])
def test_random_batches_match_reference_and_padding(n):
    inputs = random_keccakf_inputs(n, seed=100 + n)
    trace = keccakf_trace(inputs)
    height = 1 << (24 * n - 1).bit_length()
    assert trace.shape == (height, NUM_KECCAK_COLS) and trace.dtype == np.uint32
    outputs = keccakf_outputs(trace, n)
    for j in range(n):
        assert [int(v) for v in outputs[j]] == _keccakf_ref([int(v) for v in inputs[j]])
    # padding: zero-state permutations, the last one cut off
    zero = keccakf_trace(np.zeros((1, 25), dtype=np.uint64))[:24]
    zero_out = _lanes(_kat()[0]["output"])
    assert _kat()[0]["name"] == "xkcp_all_zero_input"
    assert _output(zero[23]) == zero_out
    for start in range(24 * n, height, 24):
        rows = trace[start:start + 24]
        assert (rows == zero[:rows.shape[0]]).all()
    last_round = (height - 1) % 24
    assert trace[-1, last_round] == 1 and int(trace[-1, :24].sum()) == 1


def test_outputs_match_sha3_256_single_block():
    """SHA3-256 of a message shorter than the rate is one Keccak-f of the padded block."""
    rng = np.random.default_rng(7)
    msgs = [bytes(rng.integers(0, 256, size=k, dtype=np.uint8)) for k in (0, 1, 17, 100, 135)]
    states = []
    for m in msgs:
        block = bytearray(m) + b"\x06" + bytes(135 - len(m))
        block[135] |= 0x80
        states.append(list(np.frombuffer(bytes(block), dtype="<u8")) + [0] * 8)
    outputs = keccakf_outputs(keccakf_trace(np.array(states, dtype=np.uint64)), len(msgs))
    for m, out in zip(msgs, outputs):
        assert out[:4].astype("<u8").tobytes() == hashlib.sha3_256(m).digest()


def test_zero_permutations_and_bad_input():
    trace = keccakf_trace(np.zeros((0, 25), dtype=np.uint64))
    assert trace.shape == (1, NUM_KECCAK_COLS)
    assert (trace[0] == keccakf_trace(np.zeros((1, 25), dtype=np.uint64))[0]).all()
    for bad in (np.zeros((2, 24), dtype=np.uint64), np.zeros(25, dtype=np.uint64),
                np.array([[-1] * 25]), np.zeros((1, 25), dtype=np.float64)):
        with pytest.raises(InvalidInputError):
            keccakf_trace(bad)
    # small unsigned dtypes are accepted as lanes
    assert (keccakf_trace(np.ones((1, 25), dtype=np.uint8)) ==
            keccakf_trace(np.ones((1, 25), dtype=np.uint64))).all()


@pytest.mark.parametrize("n", [0, 1, 3, 11])
def test_trace_built_on_device_equals_host(n):
    """``on_device``: only the lane words go to the device; the expanded trace is the host's,
    including the padding permutations and a last one cut off mid-way (n = 11: 264 -> 512
    rows)."""
    inputs = random_keccakf_inputs(n, seed=n)
    dev = keccakf_trace(inputs, on_device=True)
    assert isinstance(dev, mx.array) and dev.dtype == mx.uint32
    np.testing.assert_array_equal(np.array(dev), keccakf_trace(inputs))


def test_random_inputs_deterministic():
    a = random_keccakf_inputs(5, seed=3)
    assert a.shape == (5, 25) and a.dtype == np.uint64
    assert (a == random_keccakf_inputs(5, seed=3)).all()
    assert not (a == random_keccakf_inputs(5, seed=4)).all()
    assert int(a.max()) >= 1 << 63  # the full 64-bit range is used
    with pytest.raises(InvalidInputError):
        random_keccakf_inputs(-1)


# ------------------------------------------------------------------ constraints
def _expected_degrees():
    deg = [2] * 148 + [3] * 100 + [2, 2]
    deg += ([2] * 64 + [3] * 64) * 5
    deg += ([2] * 64 + [3] * 4) * 25
    deg += [3] * 320 + [3] * 100 + [2] * 64 + [1] * 4 + [2] * 4 + [3] * 100
    return deg


def test_constraint_count_order_and_degrees():
    b = KeccakfAir().symbolic()
    assert not b.interactions and KeccakfAir().num_public_values == 0
    assert KeccakfAir().preprocessed_trace() is None and KeccakfAir().width == 2633
    degrees = [c.degree_multiple for c in b.constraints]
    assert len(degrees) == 3182 and max(degrees) == 3
    assert degrees == _expected_degrees()


def test_constraint_tree_shapes():
    cs = KeccakfAir().symbolic().constraints
    v = lambda c, off=0: f"Main{{0,{off}}}[{c}]"
    assert repr(cs[0]) == f"Mul(IsFirstRow, Sub({v(0)}, Const(1)))"
    assert repr(cs[24]) == f"Mul(IsTransition, Sub({v(0)}, {v(1, 1)}))"
    assert repr(cs[48]) == f"Mul({v(0)}, Sub({v(25)}, {v(125)}))"
    assert repr(cs[148]) == (
        f"Mul(Sub(Const(1), {v(23)}), Mul(IsTransition, Sub({v(25)}, {v(25, 1)})))")
    assert repr(cs[248]) == f"Mul({v(24)}, Sub({v(24)}, Const(1)))"
    # c_prime[0][0] - xor3(c[0][0], c[4][0], c[1][63])
    x, y, z = v(L.c(0, 0)), v(L.c(4, 0)), v(L.c(1, 63))
    xy = f"Sub(Add({x}, {y}), Mul({x}, Add({y}, {y})))"
    assert repr(cs[314]) == f"Sub({v(L.c_prime(0, 0))}, Sub(Add({xy}, {z}), Mul({xy}, Add({z}, {z}))))"
    # d·(d−2)·(d−4) with d = ((((a0 + a1) + a2) + a3) + a4) − c', 4 = 2.double()
    s = v(L.a_prime(0, 0, 0))
    for yy in range(1, 5):
        s = f"Add({s}, {v(L.a_prime(yy, 0, 0))})"
    d = f"Sub({s}, {v(L.c_prime(0, 0))})"
    assert repr(cs[2590]) == f"Mul(Mul({d}, Sub({d}, Const(2))), Sub({d}, Add(Const(2), Const(2))))"
    # pack16 of the bits of A''[0][0], Horner from Constant(0) and bit 15 down
    acc = "Const(0)"
    for zz in reversed(range(16)):
        acc = f"Add(Add({acc}, {acc}), {v(L.a_prime_prime_0_0_bit(zz))})"
    assert repr(cs[3074]) == f"Sub({acc}, {v(L.a_prime_prime(0, 0, 0))})"
    # pack16 of xor(rcbit(z), bit z), rcbit(z) = Σ_r step_flags[r]·Constant(RCbit(r, z)) folded
    # from Constant(0) (the constants come from the FIPS 202 LFSR here)
    acc = "Const(0)"
    for zz in reversed(range(16)):
        rc = "Const(0)"
        for r in range(24):
            rc = f"Add({rc}, Mul({v(r)}, Const({(_rc(r) >> zz) & 1})))"
        bit = v(L.a_prime_prime_0_0_bit(zz))
        acc = f"Add(Add({acc}, {acc}), Sub(Add({rc}, {bit}), Mul({rc}, Add({bit}, {bit}))))"
    assert repr(cs[3078]) == f"Sub({acc}, {v(L.a_prime_prime_prime_0_0_limb(0))})"
    # output chaining: x outer, y inner; the (0, 0) lane reads the iota limbs
    assert repr(cs[3082]) == (
        f"Mul(IsTransition, Mul(Sub(Const(1), {v(23)}), Sub({v(2629)}, {v(L.a(0, 0, 0), 1)})))")
    assert repr(cs[3086]) == (
        f"Mul(IsTransition, Mul(Sub(Const(1), {v(23)}), "
        f"Sub({v(L.a_prime_prime(1, 0, 0))}, {v(L.a(1, 0, 0), 1)})))")


def test_dag_facts():
    """keccak_air.md §9: every root is a new node created after all earlier roots, so the
    sorted constraint order is the emission order; rotation reads step_flags, preimage, a."""
    air = KeccakfAir()
    builder = DagBuilder()
    roots = []
    for c in air.symbolic().constraints:
        roots.append(builder.add(c))
        assert roots[-1] == len(builder.nodes) - 1
    dag = symbolic_dag(air)
    assert dag.constraint_idx == roots and dag.num_constraints == 3182
    assert len(dag.nodes) == len(builder.nodes)
    assert dag.need_rot
    width = TraceWidth(preprocessed=None, cached_mains=(), common_main=NUM_KECCAK_COLS)
    unused = dag.unused_variables(width)
    assert unused == [SymbolicVariable(Entry.MAIN, c, 0, 1) for c in [24, *range(225, 2633)]]


@pytest.fixture(scope="module")
def keccak_dag():
    return symbolic_dag(KeccakfAir())


@pytest.fixture(scope="module")
def valid_trace():
    return keccakf_trace(random_keccakf_inputs(2, seed=11))  # 48 rows -> 64


def test_valid_traces_satisfy_constraints(keccak_dag, valid_trace):
    air = KeccakfAir()
    check_constraints(air, valid_trace, [], dag=keccak_dag)
    check_constraints(air, keccakf_trace(random_keccakf_inputs(1, seed=12)), [], dag=keccak_dag)
    # export = 1 is allowed on a round-23 row
    t = valid_trace.copy()
    t[23, L.EXPORT] = 1
    check_constraints(air, t, [], dag=keccak_dag)


def _set(row, col, value):
    return lambda t: t.__setitem__((row, col), value)


def _add(row, col, delta):
    return lambda t: t.__setitem__((row, col), t[row, col] + delta)


@pytest.mark.parametrize(
    "tamper, constraint, row",
    [
        (_set(0, L.step_flag(0), 0), 0, 0),                         # first row flag
        (_set(5, L.step_flag(5), 0), 28, 4),                         # flag rotation
        (_add(0, L.a(2, 1, 3), 1), 48 + 4 * 11 + 3, 0),             # round 0: a = preimage
        (_add(12, L.preimage(1, 1, 1), 1), 148 + 4 * 6 + 1, 11),    # preimage fixed mid-permutation
        (_set(7, L.EXPORT, 1), 249, 7),                              # export off a final step
        (_set(9, L.EXPORT, 2), 248, 9),                              # export boolean
        (lambda t: t.__setitem__((20, L.c(1, 3)), 1 - t[20, L.c(1, 3)]), 250 + 64 + 4, 20),
        (lambda t: t.__setitem__((30, L.a_prime(1, 2, 7)), 1 - t[30, L.a_prime(1, 2, 7)]),
         890 + 68 * 7 + 64, 30),                                     # a' bit vs a limbs
        (_add(10, L.a(0, 3, 2), 1), 890 + 68 * 3 + 64 + 2, 10),     # a limb vs a' bits
        (_add(33, L.a_prime_prime(2, 4, 1), 1), 2910 + 4 * 14 + 1, 33),   # chi limb
        (_set(3, L.a_prime_prime_0_0_bit(5), 2), 3010 + 5, 3),      # A''[0][0] bit boolean
        (_add(3, L.a_prime_prime_prime_0_0_limb(0), 1), 3078, 3),   # iota output
        (_add(40, L.a_prime_prime(0, 1, 0), 1), 2910 + 4, 40),      # chi limb of lane (1, 0)
    ],
)
def test_tampered_traces_fail(keccak_dag, valid_trace, tamper, constraint, row):
    t = valid_trace.copy()
    tamper(t)
    with pytest.raises(ConstraintNotSatisfied) as info:
        check_constraints(KeccakfAir(), t, [], dag=keccak_dag)
    assert (info.value.constraint, info.value.row) == (constraint, row)


def test_tampered_output_chaining_fails(keccak_dag, valid_trace):
    """A row that is a valid round on its own, but of another state, breaks only the chaining
    of outputs into inputs (on the row before it and on its own row)."""
    t = valid_trace.copy()
    other = keccakf_trace(random_keccakf_inputs(1, seed=99))
    t[24 + 6] = other[6]
    t[24 + 6, slice(*L.group("preimage"))] = valid_trace[24 + 6, slice(*L.group("preimage"))]
    with pytest.raises(ConstraintNotSatisfied) as info:
        check_constraints(KeccakfAir(), t, [], dag=keccak_dag)
    assert (info.value.constraint, info.value.row) == (3082, 24 + 5)
