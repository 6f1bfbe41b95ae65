"""Polynomial toolkit (device tables and host formulas) against naive Python references."""
import itertools
import random

import numpy as np
import pytest

from mlx_stark.field import EF, P, bb, ext, two_adic_generator
from mlx_stark.field.host import horner
from mlx_stark.poly import (
    eq_table, eval_univariate, ext_powers, fold_lowest, fold_skip, host, idft, mle_eval,
    mobeq_table, mobius, zeta,
)

RNG = random.Random(2024)


def _ef():
    return EF(*(RNG.randrange(P) for _ in range(4)))


def _bits(i, d):
    return [(i >> j) & 1 for j in range(d)]


def _ef_list(a):
    return ext.to_host(a)


# ------------------------------------------------------------------ host formulas
def test_eq_and_mobeq_on_points():
    x, y = [_ef() for _ in range(3)], [_ef() for _ in range(3)]
    assert host.eq(x, y) == host.eq(y, x)
    assert host.eq([], []) == EF.one()
    for i, j in itertools.product(range(8), repeat=2):
        assert host.eq(_bits(i, 3), _bits(j, 3)) == EF(int(i == j))
    # MobEq(u, b) on bits: b_j ? u_j : 1 − 2u_j
    b = [1, 0, 1]
    assert host.mobeq(x, b) == x[0] * (1 - x[1] * 2) * x[2]


@pytest.mark.parametrize("b", [0, 1, 2, 4])
def test_eq_d_closed_form_and_domain(b):
    n = 1 << b
    x, y = _ef(), _ef()
    closed = (1 + sum((x ** j * y ** (n - j) for j in range(1, n)), EF.zero())) / n
    assert host.eq_d(b, x, y) == closed
    w = two_adic_generator(b)
    for i, j in itertools.product(range(n), repeat=2):
        assert host.eq_d(b, pow(w, i, P), pow(w, j, P)) == EF(int(i == j))
    assert host.eq1(b, x) == host.eq_d(b, x, 1)
    assert host.lagrange_first(b, x) == sum((x ** j for j in range(n)), EF.zero()) / n
    assert host.lagrange_last(b, x) == host.eq_d(b, x, pow(w, n - 1, P))
    basis = host.lagrange_basis(b, x)
    assert basis == [host.eq_d(b, pow(w, i, P), x) for i in range(n)]
    assert sum(basis, EF.zero()) == EF.one()


def test_ind_on_domain():
    l = 3
    w = two_adic_generator(l)
    for n in (-3, -2, -1, 0, 2):
        step = 1 << max(0, -n)
        for k in range(1 << l):
            expect = 1 if n >= 0 or k % step == 0 else 0
            assert host.ind(l, n, pow(w, k, P)) == EF(expect)


def test_rotcube_and_kappa_on_points():
    d = 3
    for i, j in itertools.product(range(1 << d), repeat=2):
        e, rot = host.rotcube(_bits(i, d), _bits(j, d))
        assert e == EF(int(i == j))
        assert rot == EF(int(i == (j + 1) % (1 << d)))
    assert host.rotcube([], []) == (EF.one(), EF.one())
    # κ_b on prism points: 1 iff x is the cyclic next row after y (height 2^(b+d))
    b, d = 2, 2
    w = two_adic_generator(b)

    def point(row):
        return [pow(w, row % (1 << b), P)] + _bits(row >> b, d)

    h = 1 << (b + d)
    for rx, ry in itertools.product(range(h), repeat=2):
        assert host.kappa(b, point(rx), point(ry)) == EF(int(rx == (ry + 1) % h))
        assert host.eq_prism(b, point(rx), point(ry)) == EF(int(rx == ry))


def test_kappa_matches_multilinear_extension_off_points():
    # κ is linear in each cube coordinate of x: check against interpolation at random points.
    b, d = 1, 2
    y = [_ef() for _ in range(d + 1)]
    x0 = _ef()
    xs = [_ef() for _ in range(d)]
    interp = EF.zero()
    for c in range(1 << d):
        bits = _bits(c, d)
        interp = interp + host.eq(bits, xs) * host.kappa(b, [x0] + bits, y)
    assert host.kappa(b, [x0] + xs, y) == interp


@pytest.mark.parametrize("l", [0, 1, 2, 4])
def test_eq_sharp_coeffs(l):
    xi = [_ef() for _ in range(l + 1)]
    n = 1 << l
    vals = [host.eq(xi[:l], _bits(k, l)) for k in range(n)]
    coeffs = host.eq_sharp_coeffs(l, xi)
    assert coeffs == _ef_list(idft(ext.from_host(vals)))
    w = two_adic_generator(l)
    for k in range(n):
        assert horner(coeffs, pow(w, k, P)) == vals[k]


def test_quad():
    poly = [_ef(), _ef(), _ef()]
    e = [horner(poly, t) for t in (0, 1, 2)]
    x = _ef()
    assert host.quad(*e, x) == horner(poly, x)


# ------------------------------------------------------------------ device tables
def test_zeta_mobius_against_naive(on_device):
    d = 5
    x = bb.random((1 << d, 3), seed=1)
    xn = np.array(x).astype(object)
    ref = np.array([sum(xn[j] for j in range(1 << d) if j & i == j) % P for i in range(1 << d)])
    z = zeta(x)
    assert np.array_equal(np.array(z).astype(object), ref)
    assert np.array_equal(np.array(mobius(z)), np.array(x))
    # chosen bits only, on an extension table along axis 1
    y = ext.random((2, 16), seed=2)  # (2, 16, 4)
    part = zeta(y, bits=[0, 2], axis=1)
    yn = np.array(y).astype(object)
    for i in range(16):
        subs = [j for j in range(16) if j & i == j and (j ^ i) & 0b1010 == 0]
        assert np.array_equal(np.array(part[:, i]), sum(yn[:, j] for j in subs) % P)
    assert np.array_equal(np.array(mobius(part, bits=[2, 0], axis=1)), np.array(y))


def test_eq_and_mobeq_tables(on_device):
    point = [_ef() for _ in range(4)]
    table = _ef_list(eq_table(point))
    assert table == [host.eq(_bits(i, 4), point) for i in range(16)]
    assert _ef_list(mobeq_table(point)) == [host.mobeq(point, _bits(i, 4)) for i in range(16)]
    assert _ef_list(eq_table([])) == [EF.one()]


def test_fold_and_mle_eval(on_device):
    d = 4
    point = [_ef() for _ in range(d)]
    base = bb.random((1 << d, 3), seed=3)
    eqs = [host.eq(_bits(i, d), point) for i in range(1 << d)]
    bn = np.array(base)
    for c in range(3):
        expect = sum((eqs[i] * int(bn[i, c]) for i in range(1 << d)), EF.zero())
        assert ext.to_host(mle_eval(base, point, base=True)[c])[0] == expect
    e = ext.random((1 << d, 2), seed=4)
    en = ext.to_host(e.reshape(-1, 4))
    got = ext.to_host(mle_eval(e, point))
    for c in range(2):
        assert got[c] == sum((eqs[i] * en[2 * i + c] for i in range(1 << d)), EF.zero())
    r = point[0]
    folded = ext.to_host(fold_lowest(base[:, 0], r, base=True))
    col = [int(v) for v in bn[:, 0]]
    assert folded == [col[2 * y] + r * (col[2 * y + 1] - col[2 * y]) for y in range(8)]
    assert ext.to_host(mle_eval(e[:1], [])) == en[:2]


def test_ext_powers_and_eval_univariate(on_device):
    x = _ef()
    assert ext.to_host(ext_powers(x, 11)) == [x ** j for j in range(11)]
    coeffs = bb.random((9, 2), seed=5)
    cn = np.array(coeffs)
    got = ext.to_host(eval_univariate(coeffs, x, base=True))
    assert got == [horner([int(v) for v in cn[:, c]], x) for c in range(2)]
    ce = ext.random((6, 3), seed=6)
    ch = ext.to_host(ce.reshape(-1, 4))
    got = ext.to_host(eval_univariate(ce, x))
    assert got == [horner(ch[c::3], x) for c in range(3)]


def test_fold_skip_in_row_chunks(monkeypatch):
    """A base table folded a few row blocks at a time equals the table folded at once."""
    from mlx_stark.poly import mle
    t = bb.random((7 << 3, 3, 2), seed=31)
    z = _ef()
    whole = np.array(fold_skip(t, 3, z))
    monkeypatch.setattr(mle, "_FOLD_CHUNK_ELEMS", 2 * 6 << 3)  # 2 of the 7 blocks per chunk
    np.testing.assert_array_equal(np.array(fold_skip(t, 3, z)), whole)


@pytest.mark.parametrize("l", [0, 2, 3])
def test_fold_skip(on_device, l):
    blocks = 4
    z = _ef()
    t = bb.random((blocks << l, 2), seed=10 + l)
    coeffs = idft(t.reshape(blocks, 1 << l, 2), axis=1)  # Z-coefficients per block
    cn = np.array(coeffs)
    got = ext.to_host(fold_skip(t, l, z).reshape(-1, 4))
    expect = [horner([int(v) for v in cn[b, :, c]], z) for b in range(blocks) for c in range(2)]
    assert got == expect
    te = ext.random((blocks << l,), seed=20 + l)
    got = ext.to_host(fold_skip(te, l, z, base=False))
    ce = idft(te.reshape(blocks, 1 << l, 4), axis=1)
    expect = [horner(ext.to_host(ce[b]), z) for b in range(blocks)]
    assert got == expect


def test_interpolate_at_integers_on_device_equals_host():
    from mlx_stark.field import ext as ext_
    from mlx_stark.field.host import EF as EF_
    from mlx_stark.poly import interpolate_at_integers

    for n in (1, 2, 5):
        values = ext_.random((n,), n)
        host_values = ext_.to_host(values)
        for x in (EF_(3, 1, 4, 1), EF_.lift(n + 1), EF_.lift(0)):
            expect = host.interpolate_at_integers(host_values, x)
            assert ext_.to_host(interpolate_at_integers(values, x)) == [expect]  # host point
            assert ext_.to_host(interpolate_at_integers(values, ext_.constant(x))) == [expect]  # device


def test_eq_d_and_eq1_at_many_base_points_equal_the_scalar_forms():
    rng = random.Random(7)
    for b in range(0, 6):
        zs = [rng.randrange(P) for _ in range(9)] + [0, 1, P - 1]
        y = EF(*(rng.randrange(P) for _ in range(4)))
        got = host.eq_d_points(b, np.array(zs, dtype=np.uint64), y)
        assert [EF(*(int(c) for c in row)) for row in got] == [host.eq_d(b, z, y) for z in zs]
        got1 = host.eq1_points(b, np.array(zs, dtype=np.uint64))
        assert [int(v) for v in got1] == [host.eq1(b, z).c[0] for z in zs]
        assert all(host.eq1(b, z).c[1:] == (0, 0, 0) for z in zs)
