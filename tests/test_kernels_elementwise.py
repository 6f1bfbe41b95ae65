"""Field-arithmetic kernels (mlx_stark.custom_kernels.elementwise): the native paths of the
elementwise functions of field/bb.py and field/ext.py on CUDA.

- :func:`elementwise.plan`: broadcast shapes become at most four merged dimensions with the
  strides NumPy broadcasting implies (checked by indexing with them), and shapes it cannot
  serve go to the reference;
- emulation (needs g++): every kernel, rendered for CUDA and for Metal and run as C++ on the
  CPU, equals its MLX-ops reference over equal shapes, scalars, broadcasts on either side,
  non-contiguous operands and empty arrays;
- device: on a GPU with native kernels, the field functions equal the CPU reference.
"""
import mlx.core as mx
import numpy as np
import pytest

from mlx_stark.custom_kernels import elementwise as kew
from mlx_stark.field import bb, ext

from .kernel_helpers import check_twins, emulation, needs_native


def test_sources():
    for src in kew.sources():
        check_twins(src)
        assert "SHARED" not in src.body


def _offsets(shape, words):
    """The operand element offsets the kernel computes, for every output element in order."""
    total, dims = words[0], words[1]
    lens = words[2:2 + dims]
    out = []
    for k in range(len(words[2:]) // kew.MAX_DIMS - 1):
        strides = words[2 + kew.MAX_DIMS * (1 + k):2 + kew.MAX_DIMS * (1 + k) + dims]
        offs = np.zeros(total, dtype=np.int64)
        rest = np.arange(total, dtype=np.int64)
        for d in reversed(range(dims)):
            offs += (rest % lens[d]) * strides[d]
            rest //= lens[d]
        out.append(offs)
    return out


@pytest.mark.parametrize("shapes, dims", [
    (((5, 3), (5, 3)), 1),
    (((5, 3), ()), 1),
    (((5, 3), (3,)), 2),
    (((3, 1, 5), (4, 5)), 3),
    (((2, 3, 4), (2, 1, 4)), 3),
    (((1, 7), (6, 1)), 2),
    (((4, 1, 1, 6), (4, 3, 2, 6)), 3),
    (((), ()), 0),
])
def test_plan_matches_numpy_broadcasting(shapes, dims):
    out, total, words = kew.plan(shapes)
    assert out == np.broadcast_shapes(*shapes) and total == int(np.prod(out)) and words[1] == dims
    for shape, offs in zip(shapes, _offsets(out, words)):
        flat = np.arange(int(np.prod(shape)), dtype=np.int64).reshape(shape)
        np.testing.assert_array_equal(offs, np.broadcast_to(flat, out).reshape(-1))


def test_plan_declines():
    assert kew.plan(((3,), (4,))) is None  # no broadcast
    alternating = ((2, 1) * 4, (1, 2) * 4)  # eight dimensions, none mergeable
    assert kew.plan(alternating) is None
    assert kew.plan(((1 << 30,), ())) is None  # extension words beyond 32 bits
    assert kew.apply("add", mx.array([1, 2], dtype=mx.uint64), mx.array([1, 2], dtype=mx.uint32)) is None
    assert kew.apply("ext_mul", mx.zeros((3, 2), dtype=mx.uint32), mx.zeros((3, 4), dtype=mx.uint32)) is None


emulated = emulation(kew)

BASE_CASES = [((37,), (37,)), ((6, 5), ()), ((6, 5), (5,)), ((3, 1, 5), (4, 5)), ((0, 3), (3,)), ((1, 300), (300,))]
EXT_CASES = [((9,), (9,)), ((9,), ()), ((), (9,)), ((2, 1, 3), (5, 1)), ((0,), (0,))]


def _operands(shape_x, shape_y, seed, ext_x=False, ext_y=False):
    x = bb.random(tuple(shape_x) + ((4,) if ext_x else ()), seed)
    y = bb.random(tuple(shape_y) + ((4,) if ext_y else ()), seed + 1)
    return x, y


@pytest.mark.parametrize("op, ref", [("add", bb.add), ("sub", bb.sub), ("mul", bb.mul), ("mont_mul", bb.mont_mul)])
@pytest.mark.parametrize("case", BASE_CASES)
def test_emulated_base_binary(emulated, op, ref, case):
    x, y = _operands(*case, seed=len(op) + sum(map(len, case)))
    for a, b in ((x, y), (y, x)) if op in ("add", "mul") else ((x, y),):
        got = kew.apply(op, a, b)
        want = ref(a, b)
        assert got.shape == want.shape and got.dtype == mx.uint32
        np.testing.assert_array_equal(np.array(got), np.array(want))


@pytest.mark.parametrize("op, ref", [("neg", bb.neg), ("halve", bb.halve)])
def test_emulated_base_unary(emulated, op, ref):
    x = bb.random((7, 33), 5)
    x = mx.concatenate([x, mx.array([[0] * 33, [bb.P - 1] * 33, [1] * 33], dtype=mx.uint32)])
    for a in (x, x.T, x[::2, 3], x[0, 0]):  # contiguous, transposed, strided, scalar
        np.testing.assert_array_equal(np.array(kew.apply(op, a)), np.array(ref(a)))


@pytest.mark.parametrize("case", EXT_CASES)
def test_emulated_ext_mul(emulated, case):
    x, y = _operands(*case, seed=11, ext_x=True, ext_y=True)
    got = kew.apply("ext_mul", x, y)
    want = ext.mul(x, y)
    assert got.shape == want.shape
    np.testing.assert_array_equal(np.array(got), np.array(want))


@pytest.mark.parametrize("case", EXT_CASES)
def test_emulated_ext_mul_base(emulated, case):
    x, y = _operands(*case, seed=12, ext_x=True)
    got = kew.apply("ext_mul_base", x, y)
    want = ext.mul_base(x, y)
    assert got.shape == want.shape
    np.testing.assert_array_equal(np.array(got), np.array(want))


def test_emulated_non_contiguous_ext(emulated):
    x = bb.random((4, 6, 4), 3)
    y = mx.swapaxes(bb.random((6, 4, 4), 4), 0, 1)  # (4, 6, 4), not row-contiguous
    np.testing.assert_array_equal(np.array(kew.apply("ext_mul", x, y)), np.array(ext.mul(x, y)))
    np.testing.assert_array_equal(np.array(kew.apply("ext_mul_base", x[:, ::2], y[:, ::2, 1])),
                                  np.array(ext.mul_base(x[:, ::2], y[:, ::2, 1])))


@needs_native
def test_device_equals_ops(reference, monkeypatch):
    """The field functions on the GPU (native kernels where fusion is off) against the CPU
    reference."""
    monkeypatch.setenv("MLX_STARK_FUSE", "0")
    x, y = bb.random((1 << 14, 3), 1), bb.random((3,), 2)
    ex, ey = bb.random((1 << 12, 4), 3), bb.random((1 << 12, 1, 4), 4)
    cases = [(bb.add, (x, y)), (bb.sub, (y, x)), (bb.mul, (x, y)), (bb.mont_mul, (x, y)), (bb.neg, (x,)),
             (bb.halve, (x,)), (ext.mul, (ex, ey)), (ext.mul_base, (ex, x[:1 << 12, 0])), (ext.inv, (ex,))]
    for fn, args in cases:
        got = np.array(fn(*args))
        np.testing.assert_array_equal(got, reference(lambda: np.array(fn(*args))), fn.__name__)
