"""Poseidon2 over BabyBear, width 16 (pcs.md §2): Plonky3 v0.4.3 ``default_babybear_poseidon2_16``.

Two implementations of the same permutation:

- :func:`permute_host` — one state of 16 Python ints (the transcript, the verifier);
- :func:`permute` — a batch of states as an ``(n, 16)`` uint32 MLX array, whole-array work over
  the batch (the pure MLX-ops reference path).

On the device a batch is held as 16 *lanes* (one ``(n,)`` uint32 array per state position, so
every elementwise kernel runs over contiguous memory) in Montgomery form ``x * 2^32 mod p``:
the S-box then costs four Montgomery multiplications, the fastest measured idiom, and the
linear layers, being integer-linear, are the same in either form. Sponges built on top
(leaf hashing, compression, proof-of-work search) stay in Montgomery form between
permutations and convert only what enters and leaves (:func:`to_mont_lanes`,
:func:`from_mont_lanes`, :func:`permute_mont_lanes`).

Constants are canonical ints loaded from the package data file
``data/poseidon2_babybear_w16.json``; :class:`Poseidon2Constants` also lets tests run the
structure with another constant set (the Plonky3 RNG-instance known-answer vector).
"""
from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import mlx.core as mx
import numpy as np

from .. import custom_kernels
from ..device import fused
from ..errors import InvalidInputError
from ..field import bb
from ..field.bb import U32, U64, P
from ..tracing import read
from . import host_native

WIDTH = 16
ROUNDS_F_HALF = 4  # full rounds before and after the partial rounds
ROUNDS_P = 13

# Internal diagonal V (pcs.md §2): -2, 1, 2, 1/2, 3, 4, -1/2, -3, -4, 1/2^8, 1/4, 1/8,
# 1/2^27, -1/2^8, -1/16, -1/2^27 as canonical field elements.
INTERNAL_DIAG = (
    P - 2, 1, 2, (P + 1) // 2, 3, 4, P - (P + 1) // 2, P - 3, P - 4,
    pow(2, -8, P), pow(4, -1, P), pow(8, -1, P), pow(2, -27, P),
    P - pow(2, -8, P), P - pow(16, -1, P), P - pow(2, -27, P),
)
# The same diagonal as (sign, numerator, log2 denominator): V[i] = sign * num / 2^k. The device
# applies it without multiplications (shifts and adds, see _internal_linear).
INTERNAL_DIAG_FORM = (
    (-1, 2, 0), (1, 1, 0), (1, 2, 0), (1, 1, 1), (1, 3, 0), (1, 4, 0), (-1, 1, 1), (-1, 3, 0),
    (-1, 4, 0), (1, 1, 8), (1, 1, 2), (1, 1, 3), (1, 1, 27), (-1, 1, 8), (-1, 1, 4), (-1, 1, 27),
)


@dataclass(frozen=True)
class Poseidon2Constants:
    """Round constants (canonical ints): ``ext_init`` 4x16, ``internal`` 13, ``ext_term`` 4x16."""

    ext_init: tuple
    internal: tuple
    ext_term: tuple

    @classmethod
    def from_dict(cls, d: dict) -> "Poseidon2Constants":
        c = cls(
            tuple(tuple(int(v) for v in row) for row in d["external_round_constants_initial"]),
            tuple(int(v) for v in d["internal_round_constants"]),
            tuple(tuple(int(v) for v in row) for row in d["external_round_constants_terminal"]),
        )
        shapes_ok = (
            len(c.ext_init) == ROUNDS_F_HALF and len(c.ext_term) == ROUNDS_F_HALF
            and all(len(r) == WIDTH for r in c.ext_init + c.ext_term)
            and len(c.internal) == ROUNDS_P
        )
        values = [v for r in c.ext_init + c.ext_term for v in r] + list(c.internal)
        if not shapes_ok or not all(0 <= v < P for v in values):
            raise InvalidInputError("Poseidon2 constants must be 4x16, 13 and 4x16 canonical elements")
        return c


def _load_default() -> Poseidon2Constants:
    text = resources.files("mlx_stark").joinpath("data/poseidon2_babybear_w16.json").read_text()
    return Poseidon2Constants.from_dict(json.loads(text))


DEFAULT_CONSTANTS = _load_default()


# ---------------------------------------------------------------- host (Python ints)
def _external_linear_host(s: list) -> list:
    """``M_E`` on 16 ints. With ``u_r = sum_c s[4c + r]``, block ``c`` of the result is
    ``M4 (B_c + u)`` (the block sums of M4 outputs are ``M4 u``); one reduction per lane."""
    x0, x1, x2, x3, x4, x5, x6, x7, x8, x9, x10, x11, x12, x13, x14, x15 = s
    u0, u1, u2, u3 = x0 + x4 + x8 + x12, x1 + x5 + x9 + x13, x2 + x6 + x10 + x14, x3 + x7 + x11 + x15
    out = []
    for a0, a1, a2, a3 in ((x0 + u0, x1 + u1, x2 + u2, x3 + u3), (x4 + u0, x5 + u1, x6 + u2, x7 + u3),
                           (x8 + u0, x9 + u1, x10 + u2, x11 + u3), (x12 + u0, x13 + u1, x14 + u2, x15 + u3)):
        # M4 rows [2,3,1,1], [1,2,3,1], [1,1,2,3], [3,1,1,2] (Plonky3's apply_mat4 addition chain)
        t01, t23 = a0 + a1, a2 + a3
        t0123 = t01 + t23
        t01123, t01233 = t0123 + a1, t0123 + a3
        out += ((t01123 + t01) % P, (t01123 + 2 * a2) % P, (t01233 + t23) % P, (t01233 + 2 * a0) % P)
    return out


def permute_host(state, constants: Poseidon2Constants = DEFAULT_CONSTANTS) -> list:
    """Poseidon2 permutation of one state: 16 canonical ints in, 16 canonical ints out.
    Native code where it can be built (:mod:`.host_native`), else :func:`permute_python`."""
    s = [int(v) for v in state]
    if len(s) != WIDTH or not all(0 <= v < P for v in s):
        raise InvalidInputError("a Poseidon2 state is 16 canonical field elements")
    lib = host_native.library(constants)
    return lib.permute_one(s) if lib is not None else permute_python(s, constants)


def permute_python(s: list, constants: Poseidon2Constants = DEFAULT_CONSTANTS) -> list:
    """The permutation in Python ints (16 canonical ints): the host reference."""
    s = _external_linear_host(s)
    for rc in constants.ext_init:
        s = _external_linear_host([pow(x + c, 7, P) for x, c in zip(s, rc)])
    diag = INTERNAL_DIAG
    for c in constants.internal:
        s[0] = pow(s[0] + c, 7, P)
        total = sum(s)
        s = [(total + d * x) % P for d, x in zip(diag, s)]
    for rc in constants.ext_term:
        s = _external_linear_host([pow(x + c, 7, P) for x, c in zip(s, rc)])
    return s


# ---------------------------------------------------------------- device (MLX arrays)
# Fused chains stay within MLX's CPU fusion limit (about 11 ops deep): one Montgomery
# multiplication per kernel in the S-box; the linear layers accumulate in uint64 without
# intermediate reductions (M4 rows sum to 7, so terms stay below 14p; M_I terms below 20p)
# and reduce each output lane once with `% p`.

R2 = (1 << 64) % P  # R^2 mod p for R = 2^32: mont_mul(x, R2) = x R


def _sbox(x: mx.array, rc: mx.array) -> mx.array:
    """``(x + rc)^7`` in Montgomery form (x, rc canonical Montgomery representatives)."""
    x = bb.add(x, rc)
    x2 = bb.mont_mul(x, x)
    x3 = bb.mont_mul(x2, x)
    return bb.mont_mul(bb.mont_mul(x3, x3), x)


@fused
def _column_sum(x0: mx.array, x1: mx.array, x2: mx.array, x3: mx.array) -> mx.array:
    """``(x0 + x1 + x2 + x3) mod p``."""
    return (((x0.astype(U64) + x1) + (x2.astype(U64) + x3)) % P).astype(U32)


def _m4_row_kernel(row):
    @fused
    def kernel(x0, x1, x2, x3, u0, u1, u2, u3):
        acc = None
        for coeff, x, u in zip(row, (x0, x1, x2, x3), (u0, u1, u2, u3)):
            v = x.astype(U64) + u
            v = v * coeff if coeff != 1 else v
            acc = v if acc is None else acc + v
        return (acc % P).astype(U32)

    return kernel


_M4 = ((2, 3, 1, 1), (1, 2, 3, 1), (1, 1, 2, 3), (3, 1, 1, 2))
_M4_ROWS = [_m4_row_kernel(row) for row in _M4]


def _external_linear(s: list) -> list:
    """``M_E`` on 16 lanes. With ``u_r = sum_c s[4c + r]`` the block sums of M4 outputs are
    ``M4 u``, so block ``c`` of the result is ``M4 (B_c + u)``: one kernel per output lane,
    each reading 8 contiguous lanes (MLX fuses per output array, so sharing intermediates
    between outputs would materialise them)."""
    u = [_column_sum(s[r], s[r + 4], s[r + 8], s[r + 12]) for r in range(4)]
    return [_M4_ROWS[r](*s[c:c + 4], *u) for c in range(0, WIDTH, 4) for r in range(4)]


def _times_diag(a: mx.array, sign: int, num: int, log_den: int) -> mx.array:
    """A uint64 value congruent to ``sign * num / 2^log_den * a`` for ``a < p``; at most 4p.

    Division by 2^k (k <= 27): p = 1 mod 2^k, so ``a + m p`` with ``m = -a mod 2^k`` is a
    multiple of 2^k, and ``(a + m p) >> k <= p``.
    """
    y = a * num if num != 1 else a
    if log_den:
        mask = (1 << log_den) - 1
        y = (y + (((mask + 1) - (y & mask)) & mask) * P) >> log_den
    return num * P - y if sign < 0 else y


@fused
def _lane_sum(*lanes: mx.array) -> mx.array:
    """``sum(lanes) mod p`` (pairwise tree: a shallow fused chain)."""
    a = [v.astype(U64) for v in lanes]
    while len(a) > 1:
        a = [a[i] + a[i + 1] for i in range(0, len(a), 2)]
    return (a[0] % P).astype(U32)


def _diag_kernel(form):
    @fused
    def kernel(total, x):
        return ((total.astype(U64) + _times_diag(x.astype(U64), *form)) % P).astype(U32)

    return kernel


_DIAG_KERNELS = [_diag_kernel(form) for form in INTERNAL_DIAG_FORM]


def _internal_linear(s: list) -> list:
    """``M_I`` on 16 lanes: ``out[i] = sum(s) + V[i] s[i]``, V applied with shifts and adds."""
    total = _lane_sum(*s)
    return [k(total, x) for k, x in zip(_DIAG_KERNELS, s)]


@lru_cache(maxsize=4)
def _device_constants(constants: Poseidon2Constants):
    """Round constants as Montgomery-form uint32 scalars (shared compiled kernels for all)."""
    def m(c):
        return mx.array((c << 32) % P, dtype=U32)

    return ([[m(c) for c in row] for row in constants.ext_init],
            [m(c) for c in constants.internal],
            [[m(c) for c in row] for row in constants.ext_term])


def permute_mont_lanes(lanes, constants: Poseidon2Constants = DEFAULT_CONSTANTS) -> list:
    """Poseidon2 on 16 Montgomery-form lanes (each ``(n,)`` uint32) -> 16 lanes. Lazy."""
    if len(lanes) != WIDTH:
        raise InvalidInputError(f"a Poseidon2 state has 16 lanes, got {len(lanes)}")
    ext_init, internal, ext_term = _device_constants(constants)
    s = _external_linear(list(lanes))
    for rcs in ext_init:
        s = _external_linear([_sbox(x, c) for x, c in zip(s, rcs)])
    for c in internal:
        s = _internal_linear([_sbox(s[0], c)] + s[1:])
    for rcs in ext_term:
        s = _external_linear([_sbox(x, c) for x, c in zip(s, rcs)])
    return s


_R2 = mx.array(R2, dtype=U32)
_ONE = mx.array(1, dtype=U32)


def to_mont_lanes(lanes) -> list:
    """Canonical uint32 arrays -> Montgomery form (``x R mod p``), elementwise."""
    return [bb.mont_mul(x, _R2) for x in lanes]


def from_mont_lanes(lanes) -> list:
    """Montgomery form -> canonical uint32 arrays, elementwise."""
    return [bb.mont_mul(x, _ONE) for x in lanes]


# MLX runs each CPU op on one thread, but every CPU stream has its own worker: batches split
# over two streams use both cores (measured about 1.7x when the cores are free).
_SPLIT_MIN_ROWS = 1 << 13
_streams = threading.local()


def map_rows(fn, *arrays: mx.array) -> mx.array:
    """``fn(*arrays)`` for a row-independent ``fn``, with the rows (axis 0) split in two halves
    run on two CPU streams when the batch is large and the device is the CPU. Lazy."""
    n = arrays[0].shape[0]
    if n < _SPLIT_MIN_ROWS or mx.default_device().type != mx.DeviceType.cpu:
        return fn(*arrays)
    if not hasattr(_streams, "pair"):  # streams belong to the thread that creates them
        _streams.pair = (mx.new_stream(mx.cpu), mx.new_stream(mx.cpu))
    half = n // 2
    parts = []
    for stream, (lo, hi) in zip(_streams.pair, ((0, half), (half, n))):
        with mx.stream(stream):
            parts.append(fn(*(a[lo:hi] for a in arrays)))
    return mx.concatenate(parts, axis=0)


def _permute_rows(states: mx.array, constants: Poseidon2Constants) -> mx.array:
    lanes = to_mont_lanes([states[:, i] for i in range(WIDTH)])
    return mx.stack(from_mont_lanes(permute_mont_lanes(lanes, constants)), axis=1)


def permute(states: mx.array, constants: Poseidon2Constants = DEFAULT_CONSTANTS) -> mx.array:
    """Poseidon2 on a batch of states: ``(n, 16)`` uint32 canonical -> ``(n, 16)`` uint32. Lazy."""
    if states.ndim != 2 or states.shape[1] != WIDTH:
        raise InvalidInputError(f"permute expects states of shape (n, 16), got {tuple(states.shape)}")
    if states.dtype != U32:
        raise InvalidInputError(f"permute expects uint32 states, got {states.dtype}")
    kernel = custom_kernels.native("poseidon2.permute")
    if kernel is not None:
        return kernel(states, constants)
    return map_rows(lambda s: _permute_rows(s, constants), states)


# ---------------------------------------------------------------- proof-of-work search
NO_HIT = 0xFFFFFFFF  # a device proof-of-work batch's result when it holds no witness
_POW_FIRST_BATCH = 1 << 14
_POW_MAX_BATCH = 1 << 18


def _pow_candidates(fixed: list, absorb_idx: int, nonces: mx.array) -> mx.array:
    """Lane 7 (canonical) of ``P(state with lane absorb_idx = nonce)`` for ``nonces (m, 1)``."""
    count = nonces.shape[0]
    lanes = [mx.broadcast_to(v, (count,)) for v in fixed]
    lanes[absorb_idx] = to_mont_lanes([nonces[:, 0]])[0]
    return from_mont_lanes([permute_mont_lanes(lanes)[7]])[0]


def find_pow_witness(state, absorb_idx: int, bits: int) -> int:
    """The smallest ``w`` in ``[0, p)`` such that ``P(state with state[absorb_idx] = w)[7]`` has
    its low ``bits`` bits zero (the duplex sponge's ``check_witness``, pcs.md §4).

    ``state``: 16 canonical ints (host). Candidates are scanned in increasing order, in
    batches evaluated on the device; batches double from 2^14 up to 2^18.
    """
    if not 0 <= absorb_idx < 8:
        raise InvalidInputError(f"absorb position must be in [0, 8), got {absorb_idx}")
    kernel = custom_kernels.native("poseidon2.find_pow_witness")
    if kernel is not None:
        return kernel(state, absorb_idx, bits)
    fixed = [mx.array((int(v) << 32) % P, dtype=U32) for v in state]  # Montgomery form
    mask = (1 << bits) - 1
    start, batch = 0, _POW_FIRST_BATCH
    while start < P:
        count = min(batch, P - start)
        nonces = mx.arange(start, start + count, dtype=U32)[:, None]
        out7 = map_rows(lambda w: _pow_candidates(fixed, absorb_idx, w), nonces)
        hits = np.flatnonzero((read(out7)[0] & mask) == 0)
        if hits.size:
            return start + int(hits[0])
        start += count
        batch = min(2 * batch, _POW_MAX_BATCH)
    raise RuntimeError(f"no proof-of-work witness for {bits} bits exists in the field")
