"""BabyBear and EF arithmetic against Python-int references."""
import random

import mlx.core as mx
import numpy as np
import pytest

from mlx_stark.field import EF, P, bb, ext, host, two_adic_generator
from mlx_stark.field.host import ef_array, ef_mul_np, ef_powers_np, ef_scale_np, ef_sum_np, ef_values

EDGE = [0, 1, 2, P - 1, P - 2, (P - 1) // 2, (P + 1) // 2, 2**31 - 2**27, 2**30, 12345]


def _operands(n, seed):
    rng = random.Random(seed)
    vals = EDGE + [rng.randrange(P) for _ in range(n)]
    a = [x for x in vals for _ in vals]
    b = [y for _ in vals for y in vals]
    return a, b


def _arr(xs):
    return mx.array(np.array(xs, dtype=np.uint32))


def _ints(a):
    return [int(v) for v in np.array(a).reshape(-1)]


def test_base_ops_match_python_ints(on_device):
    a, b = _operands(60, 1)
    A, B = _arr(a), _arr(b)
    assert _ints(bb.add(A, B)) == [(x + y) % P for x, y in zip(a, b)]
    assert _ints(bb.sub(A, B)) == [(x - y) % P for x, y in zip(a, b)]
    assert _ints(bb.neg(A)) == [(-x) % P for x in a]
    assert _ints(bb.mul(A, B)) == [x * y % P for x, y in zip(a, b)]
    assert _ints(bb.halve(A)) == [x * pow(2, P - 2, P) % P for x in a]
    assert _ints(bb.mont_mul(A, bb.to_mont(B))) == [x * y % P for x, y in zip(a, b)]


def test_products_near_2_62(on_device):
    # operands whose product is close to the uint64 limits used by the reductions
    a = [P - 1, P - 2, P - 3, 2**31 - 2**27 - 5]
    b = [P - 1, P - 1, P - 7, P - 11]
    assert _ints(bb.mul(_arr(a), _arr(b))) == [x * y % P for x, y in zip(a, b)]


def test_pow_and_inverse(on_device):
    xs = EDGE[1:] + [random.Random(2).randrange(1, P) for _ in range(50)]
    X = _arr(xs)
    assert _ints(bb.pow(X, 7)) == [pow(x, 7, P) for x in xs]
    assert _ints(bb.pow(X, 0)) == [1] * len(xs)
    inv = bb.inv(X)
    assert _ints(bb.mul(X, inv)) == [1] * len(xs)
    assert _ints(bb.inv(_arr([0]))) == [0]


def test_sum_and_powers(on_device):
    xs = [P - 1] * 1000 + list(range(100))
    assert int(bb.sum(_arr(xs)).item()) == sum(xs) % P
    g = 12345
    assert _ints(bb.powers(g, 37)) == [pow(g, i, P) for i in range(37)]


def _ef_ref_mul(a, b):
    out = [0] * 7
    for i in range(4):
        for j in range(4):
            out[i + j] += a[i] * b[j]
    return tuple((out[t] + 11 * (out[t + 4] if t + 4 < 7 else 0)) % P for t in range(4))


def test_ext_mul_matches_schoolbook(on_device):
    rng = random.Random(3)
    els = [(P - 1,) * 4, (0, 0, 0, 0), (1, 0, 0, 0), (0, 1, 0, 0), (0, 0, 0, P - 1)]
    els += [tuple(rng.randrange(P) for _ in range(4)) for _ in range(40)]
    a = [x for x in els for _ in els]
    b = [y for _ in els for y in els]
    A = mx.array(np.array(a, dtype=np.uint32))
    B = mx.array(np.array(b, dtype=np.uint32))
    got = np.array(ext.mul(A, B)).tolist()
    assert [tuple(r) for r in got] == [_ef_ref_mul(x, y) for x, y in zip(a, b)]
    # host class agrees with the schoolbook too
    assert all((EF(*x) * EF(*y)).c == _ef_ref_mul(x, y) for x, y in zip(a[:200], b[:200]))


def test_ext_inverse_and_pow(on_device):
    rng = random.Random(4)
    els = [(1, 0, 0, 0), (0, 1, 0, 0), (P - 1, P - 1, P - 1, P - 1)]
    els += [tuple(rng.randrange(P) for _ in range(4)) for _ in range(60)]
    A = mx.array(np.array(els, dtype=np.uint32))
    prod = np.array(ext.mul(A, ext.inv(A))).tolist()
    assert all(tuple(r) == (1, 0, 0, 0) for r in prod)
    for e in els[:10]:
        x = EF(*e)
        assert (x * x.inv()) == EF.one()
        assert ext.to_host(ext.pow(ext.constant(x)[None], 13))[0] == x ** 13
    zero_inv = np.array(ext.inv(ext.zeros((1,)))).tolist()
    assert zero_inv == [[0, 0, 0, 0]]


def test_ext_mul_base_and_embedding(on_device):
    a = ext.random((50,), seed=5)
    b = bb.random((50,), seed=6)
    left = ext.mul_base(a, b)
    right = ext.mul(a, ext.from_base(b))
    assert mx.array_equal(left, right).item()
    host_vals = ext.to_host(a)
    assert ext.to_host(ext.from_host(host_vals)) == host_vals


def test_ext_sum(on_device):
    a = ext.random((33, 5), seed=7)
    s = ext.sum(a, axis=0)
    hv = np.array(a).astype(object)
    assert np.array(s).tolist() == (hv.sum(axis=0) % P).tolist()


def test_host_batch_inv_and_horner():
    rng = random.Random(8)
    vals = [EF(*(rng.randrange(P) for _ in range(4))) for _ in range(20)]
    invs = host.batch_inv(vals)
    assert all(v * i == EF.one() for v, i in zip(vals, invs))
    x = vals[0]
    assert host.horner([EF(1), EF(2), EF(3)], x) == EF(1) + x * 2 + x * x * 3
    with pytest.raises(ZeroDivisionError):
        EF.zero().inv()


def test_two_adic_generators():
    assert two_adic_generator(27) == pow(31, 15, P)
    for b in range(28):
        g = two_adic_generator(b)
        assert pow(g, 2**b, P) == 1
        if b:
            assert pow(g, 2 ** (b - 1), P) != 1  # order exactly 2^b
            assert g * g % P == two_adic_generator(b - 1)  # chain property
    assert two_adic_generator(4) == 196396260
    with pytest.raises(ValueError):
        two_adic_generator(28)


def test_asarray_validation():
    with pytest.raises(ValueError):
        bb.asarray(np.array([P], dtype=np.uint32))
    with pytest.raises(TypeError):
        bb.asarray(np.array([1.5]))
    assert _ints(bb.asarray([P + 3, -1])) == [3, P - 1]


def test_ef_numpy_arrays_match_scalars():
    rng = random.Random(11)
    xs = [EF(*(rng.randrange(P) for _ in range(4))) for _ in range(37)]
    ys = [EF(*(rng.randrange(P) for _ in range(4))) for _ in range(37)]
    a, b = ef_array(xs), ef_array(ys)
    assert ef_values(ef_mul_np(a, b)) == [x * y for x, y in zip(xs, ys)]
    s = [rng.randrange(P) for _ in range(37)]
    assert ef_values(ef_scale_np(a, np.array(s))) == [x * c for x, c in zip(xs, s)]
    assert ef_values(ef_powers_np(xs[0], 37)) == [xs[0] ** i for i in range(37)]
    assert ef_powers_np(xs[0], 0).shape == (0, 4)
    total = EF.zero()
    for x in xs:
        total = total + x
    assert ef_sum_np(a) == total
    assert ef_array([3, EF(P - 1, 0, 0, 1)]).tolist() == [[3, 0, 0, 0], [P - 1, 0, 0, 1]]
