"""The test AIRs of constraints.md §9 and their trace generators.

Each AIR writes its constraints in exactly the reference's tree shapes (§9 lists them), so its
DAG and verifying-key hash match the reference. Trace generators return NumPy ``(H, w)``
uint32 matrices and are vectorised (recurrences are evaluated as prefix products).
"""
from __future__ import annotations

from typing import List, Sequence, Tuple

import numpy as np

from ..air import Air, Constant, Mul, Neg
from ..air.builder import SymbolicBuilder
from ..field.bb import P

NEG_ONE = P - 1


# ---------------------------------------------------------------- Fibonacci (§9.1, §9.2)
class FibonacciAir(Air):
    """Columns ``(left, right)``; public values ``(a, b, x)``: starts at ``(a, b)``, steps
    ``(l, r) -> (r, l + r)``, ends with ``right = x``."""

    width = 2
    num_public_values = 3

    def eval(self, b: SymbolicBuilder) -> None:
        (left, right), (next_left, next_right) = b.local, b.next
        a, x, y = b.public_values
        b.when_first_row().assert_eq(left, a)
        b.when_first_row().assert_eq(right, x)
        b.when_transition().assert_eq(right, next_left)
        b.when_transition().assert_eq(left + right, next_right)
        b.when_last_row().assert_eq(right, y)


def _scan_2x2(steps: np.ndarray) -> np.ndarray:
    """Inclusive prefix products ``Q[i] = M[i] · M[i-1] ⋯ M[0]`` of ``(n, 2, 2)`` matrices
    mod p (Hillis–Steele doubling: log2(n) whole-array passes)."""
    q = steps.astype(np.uint64) % P
    shift = 1
    while shift < q.shape[0]:
        later, earlier = q[shift:], q[:-shift]
        prod = np.empty_like(later)
        for i in range(2):
            for j in range(2):
                prod[:, i, j] = (
                    later[:, i, 0] * earlier[:, 0, j] % P + later[:, i, 1] * earlier[:, 1, j] % P
                ) % P
        q = np.concatenate([q[:shift], prod])
        shift *= 2
    return q


def _fib_rows(a: int, b: int, advance: np.ndarray) -> np.ndarray:
    """Rows ``s_0 = (a, b)``, ``s_i = A_{i-1} s_{i-1}`` with ``A = [[0,1],[1,1]]`` where
    ``advance[i-1]`` and the identity otherwise; ``(len(advance) + 1, 2)`` uint32."""
    fib = np.array([[0, 1], [1, 1]], dtype=np.uint64)
    ident = np.eye(2, dtype=np.uint64)
    steps = np.where(np.asarray(advance, dtype=bool)[:, None, None], fib, ident)
    s0 = np.array([a % P, b % P], dtype=np.uint64)
    rows = np.empty((len(advance) + 1, 2), dtype=np.uint64)
    rows[0] = s0
    if len(advance):
        q = _scan_2x2(steps)
        rows[1:] = (q[:, :, 0] * s0[0] % P + q[:, :, 1] * s0[1] % P) % P
    return rows.astype(np.uint32)


def fib_trace(a: int, b: int, n: int, on_device: bool = False) -> Tuple[np.ndarray, List[int]]:
    """``FibFixture(a, b, n)`` trace ``(n, 2)`` and public values ``(a, b, right of last row)``.
    A NumPy array, or with ``on_device`` an MLX array built on the default device (what
    ``prove`` then uses without an upload)."""
    _check_pow2(n, "Fibonacci trace height")
    if on_device:
        return _fib_rows_device(a % P, b % P, n), [a % P, b % P, _fib_last_right(a, b, n)]
    rows = _fib_rows(a, b, np.ones(n - 1, dtype=bool))
    return rows, [a % P, b % P, int(rows[-1, 1])]


def _fib_mul(m, s, add, mul):
    """The product of two powers of the step matrix ``[[0, 1], [1, 1]]``, each kept as its three
    entries ``(f(k−1), f(k), f(k+1))`` (the powers commute and are symmetric), with the field's
    ``add`` and ``mul``: host ints or device arrays."""
    return (add(mul(m[0], s[0]), mul(m[1], s[1])), add(mul(m[0], s[1]), mul(m[1], s[2])),
            add(mul(m[1], s[1]), mul(m[2], s[2])))


def _host_add(x: int, y: int) -> int:
    return (x + y) % P


def _host_mul(x: int, y: int) -> int:
    return x * y % P


def _fib_last_right(a: int, b: int, n: int) -> int:
    """``right`` of row ``n − 1``: ``(M^(n−1)·(a, b))_1``, by squaring on the host."""
    acc, sq, e = (1, 0, 1), (0, 1, 1), n - 1
    while e:
        if e & 1:
            acc = _fib_mul(acc, sq, _host_add, _host_mul)
        sq, e = _fib_mul(sq, sq, _host_add, _host_mul), e >> 1
    return (acc[1] * a + acc[2] * b) % P


def _fib_rows_device(a: int, b: int, n: int):
    """The ``(n, 2)`` uint32 rows ``M^k·(a, b)`` on the default device: the powers ``M^k``
    (three entry arrays) by doubling, ``log2(n)`` whole-array steps as :func:`bb.powers`."""
    import mlx.core as mx

    from ..field import bb

    def const(v: int):
        return mx.array(v, dtype=mx.uint32)

    p = tuple(mx.array([v], dtype=mx.uint32) for v in (1, 0, 1))  # M^0
    sq = (0, 1, 1)  # M^len, len = 1, 2, 4, ...
    while p[0].shape[0] < n:
        later = _fib_mul(p, tuple(const(v) for v in sq), bb.add, bb.mul)  # M^(len + k)
        p = tuple(mx.concatenate([x, y]) for x, y in zip(p, later))
        sq = _fib_mul(sq, sq, _host_add, _host_mul)
    left = bb.add(bb.mul(p[0], const(a)), bb.mul(p[1], const(b)))
    right = bb.add(bb.mul(p[1], const(a)), bb.mul(p[2], const(b)))
    return mx.stack([left, right], axis=1)


class FibonacciSelectorAir(Air):
    """Fibonacci that advances only on rows whose preprocessed selector is 1 (§9.2); with
    ``enable_interactions`` it also receives ``left + right`` on bus 0 with count ``-sel``."""

    width = 2
    num_public_values = 3

    def __init__(self, sels: Sequence[int], enable_interactions: bool = False):
        self.sels = [int(s) for s in sels]
        _check_pow2(len(self.sels), "selector length")
        self.enable_interactions = enable_interactions

    def preprocessed_trace(self) -> np.ndarray:
        return np.array(self.sels, dtype=np.uint32).reshape(-1, 1)

    def preprocessed_width(self) -> int:
        return 1

    def eval(self, b: SymbolicBuilder) -> None:
        (left, right), (next_left, next_right) = b.local, b.next
        sel = b.preprocessed_local[0]
        a, x, y = b.public_values
        b.when_first_row().assert_eq(left, a)
        b.when_first_row().assert_eq(right, x)
        b.when_transition().when(sel).assert_eq(right, next_left)
        b.when_transition().when(sel - 1).assert_eq(left, next_left)
        b.when_transition().when(sel).assert_eq(left + right, next_right)
        b.when_transition().when(sel - 1).assert_eq(right, next_right)
        b.when_last_row().assert_eq(right, y)
        if self.enable_interactions:
            b.push_interaction(0, [left + right], Neg(sel), 0)


def fib_selector_trace(a: int, b: int, sels: Sequence[int]) -> Tuple[np.ndarray, List[int]]:
    """``generate_trace_rows(a, b, sels)`` and public values ``(a, b, right of last row)``."""
    rows = _fib_rows(a, b, np.asarray(sels[:-1], dtype=bool))
    return rows, [a % P, b % P, int(rows[-1, 1])]


# ---------------------------------------------------------------- interactions (§9.3, §9.4)
class DummyInteractionAir(Air):
    """One interaction, no constraints (§9.3): message = the field columns, count = the count
    column (send) or ``Mul(Constant(p-1), count)`` (receive).

    Unpartitioned: common main ``[count, fields..]``. Partitioned: cached part 0 = fields,
    common main = ``[count]``.
    """

    def __init__(
        self,
        field_width: int,
        is_send: bool,
        bus_index: int,
        partitioned: bool = False,
        count_weight: int = 0,
    ):
        self.field_width = field_width
        self.is_send = is_send
        self.bus_index = bus_index
        self.partitioned = partitioned
        self.count_weight = count_weight
        if partitioned:
            self.cached_widths = (field_width,)
            self.width = 1
        else:
            self.cached_widths = ()
            self.width = 1 + field_width

    @property
    def name(self) -> str:
        return f"DummyInteractionAir({'send' if self.is_send else 'receive'}, bus {self.bus_index})"

    def eval(self, b: SymbolicBuilder) -> None:
        if self.partitioned:
            fields = list(b.cached_local[0])
            count = b.local[0]
        else:
            count = b.local[0]
            fields = list(b.local[1:])
        if not self.is_send:
            count = Mul(Constant(NEG_ONE), count)
        b.push_interaction(self.bus_index, fields, count, self.count_weight)


def dummy_interaction_trace(
    count: Sequence[int], fields: Sequence[Sequence[int]], partitioned: bool = False
) -> Tuple[np.ndarray, Tuple[np.ndarray, ...]]:
    """``DummyInteractionChip`` rows ``(count_i, fields_i..)`` padded with zero rows to a power
    of two. Returns ``(common_main, cached_mains)``: unpartitioned ``([count, fields..], ())``,
    partitioned ``([count], (fields,))``."""
    count = np.asarray(count, dtype=np.uint64).reshape(-1, 1)
    fields = np.asarray(fields, dtype=np.uint64).reshape(count.shape[0], -1)
    n = count.shape[0]
    height = 1 << max(n - 1, 0).bit_length()
    padded = np.zeros((height, 1 + fields.shape[1]), dtype=np.uint32)
    padded[:n, :1] = count % P
    padded[:n, 1:] = fields % P
    if partitioned:
        return padded[:, :1].copy(), (padded[:, 1:].copy(),)
    return padded, ()


class SelfInteractionAir(Air):
    """Eight interactions on one bus that balance cyclically (§9.4)."""

    def __init__(self, width: int, bus_index: int):
        self.width = width
        self.bus_index = bus_index

    @property
    def name(self) -> str:
        return f"SelfInteractionAir(width {self.width})"

    def eval(self, b: SymbolicBuilder) -> None:
        loc, nxt = list(b.local), list(b.next)
        local_sum = Constant(0)
        for c in loc:
            local_sum = local_sum + c
        # the reference builds the "next" sum from the local row as well
        next_sum = local_sum
        bus = self.bus_index
        b.push_interaction(bus, loc, Constant(1), 1)
        b.push_interaction(bus, nxt, Constant(NEG_ONE), 1)
        b.push_interaction(bus, loc, local_sum, 1)
        b.push_interaction(bus, nxt, Neg(next_sum), 1)
        b.push_interaction(bus, loc, loc[0], 1)
        b.push_interaction(bus, nxt, Neg(nxt[0]), 1)
        b.push_interaction(bus, loc[::-1], local_sum, 1)
        b.push_interaction(bus, nxt[::-1], Neg(next_sum), 1)


def self_interaction_trace(width: int, log_height: int) -> np.ndarray:
    """``T[r][c] = (r + c) mod width``, ``(2^log_height, width)`` uint32."""
    r = np.arange(1 << log_height, dtype=np.uint64)[:, None]
    c = np.arange(width, dtype=np.uint64)[None, :]
    return ((r + c) % width).astype(np.uint32)


# ---------------------------------------------------------------- preprocessed + cached (§9.5)
class PreprocessedCachedAir(Air):
    """Preprocessed selector ``S``, cached parts ``Y_0..Y_{m-1}`` (width 1 each), common
    ``X`` (width 1): ``X`` counts rows from 0 and ``Y_k = prev + S`` with ``prev = X, Y_0, ..``."""

    width = 1

    def __init__(self, sels: Sequence[int], m: int):
        if m < 1:
            raise ValueError("PreprocessedCachedAir needs at least one cached part")
        self.sels = [int(s) for s in sels]
        _check_pow2(len(self.sels), "selector length")
        self.m = m
        self.cached_widths = (1,) * m

    def preprocessed_trace(self) -> np.ndarray:
        return np.array(self.sels, dtype=np.uint32).reshape(-1, 1)

    def preprocessed_width(self) -> int:
        return 1

    def eval(self, b: SymbolicBuilder) -> None:
        s, s_next = b.preprocessed_local[0], b.preprocessed_next[0]
        x, x_next = b.local[0], b.next[0]
        b.assert_bool(s)
        b.when_first_row().assert_zero(x)
        b.when_transition().assert_one(x_next - x)
        prev, prev_next = x, x_next
        for k in range(self.m):
            y, y_next = b.cached_local[k][0], b.cached_next[k][0]
            b.assert_eq(prev + s, y)
            b.when_transition().assert_eq(prev_next + s_next, y_next)
            prev, prev_next = y, y_next


def preprocessed_cached_trace(sels: Sequence[int], m: int) -> Tuple[np.ndarray, Tuple[np.ndarray, ...]]:
    """``X[i] = i`` (common main ``(H, 1)``) and ``Y_k[i] = i + (k+1)·sels[i]`` (cached)."""
    sel = np.asarray(sels, dtype=np.uint64)
    i = np.arange(len(sel), dtype=np.uint64)
    x = i.astype(np.uint32).reshape(-1, 1)
    ys = tuple(((i + (k + 1) * sel) % P).astype(np.uint32).reshape(-1, 1) for k in range(m))
    return x, ys


# ---------------------------------------------------------------- partitioned sum (§9.6)
class SumAir(Air):
    """Cached part 0 = ``y_0..y_{w-1}``, common main = ``x``; one constraint ``x = Σ y``."""

    width = 1

    def __init__(self, w: int):
        self.w = w
        self.cached_widths = (w,)

    def eval(self, b: SymbolicBuilder) -> None:
        total = Constant(0)
        for y in b.cached_local[0]:
            total = total + y
        b.assert_eq(b.local[0], total)


def sum_trace(w: int, height: int, seed: int = 0) -> Tuple[np.ndarray, Tuple[np.ndarray]]:
    """Random ``y`` in ``[0, 1000)`` and ``x = Σ y``: ``(x (H,1), (y (H,w),))``."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 1000, size=(height, w), dtype=np.uint32)
    x = y.astype(np.uint64).sum(axis=1, keepdims=True).astype(np.uint32)
    return x, (y,)


# ---------------------------------------------------------------- keygen validation (§9.6)
class EmptyAir(Air):
    """An AIR with the given common width and no constraints or interactions (only useful to
    test keygen's rejections)."""

    def __init__(self, width: int):
        self.width = width

    def eval(self, b: SymbolicBuilder) -> None:
        return None


def _check_pow2(n: int, what: str) -> None:
    if n < 1 or n & (n - 1):
        raise ValueError(f"{what} must be a power of two, got {n}")


__all__ = [
    "FibonacciAir", "FibonacciSelectorAir", "DummyInteractionAir", "SelfInteractionAir",
    "PreprocessedCachedAir", "SumAir", "EmptyAir", "fib_trace", "fib_selector_trace",
    "dummy_interaction_trace", "self_interaction_trace", "preprocessed_cached_trace", "sum_trace",
]
