"""Poseidon2 over BabyBear, width 16 (PCS.md §2): Plonky3 v0.4.3 ``default_babybear_poseidon2_16``.

Two implementations of the same permutation:

- :func:`permute_host` — one state of 16 Python ints (the transcript, the verifier);
- :func:`permute` — a batch of states as an ``(n, 16)`` uint32 MLX array, whole-array work over
  the batch (the pure MLX-ops reference path). Internally the batch is lane-major ``(16, n)``
  so that every lane is a contiguous vector (:func:`permute_lanes`).

Constants are canonical ints loaded from the package data file
``data/poseidon2_babybear_w16.json``; :class:`Poseidon2Constants` also lets tests run the
structure with another constant set (the Plonky3 RNG-instance known-answer vector).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import mlx.core as mx
import numpy as np

from ..errors import InvalidInputError
from ..field.bb import P, U32, U64

WIDTH = 16
ROUNDS_F_HALF = 4  # full rounds before and after the partial rounds
ROUNDS_P = 13

# Internal diagonal V (PCS.md §2): -2, 1, 2, 1/2, 3, 4, -1/2, -3, -4, 1/2^8, 1/4, 1/8,
# 1/2^27, -1/2^8, -1/16, -1/2^27 as canonical field elements.
INTERNAL_DIAG = (
    P - 2, 1, 2, (P + 1) // 2, 3, 4, P - (P + 1) // 2, P - 3, P - 4,
    pow(2, -8, P), pow(4, -1, P), pow(8, -1, P), pow(2, -27, P),
    P - pow(2, -8, P), P - pow(16, -1, P), P - pow(2, -27, P),
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
    """``M_E``: M4 on each block of 4 lanes, then add the column sums ``S_{i mod 4}``.

    Works on unreduced ints and reduces once at the end (entries of M_E are at most 6).
    """
    t = []
    for c in range(0, WIDTH, 4):
        x0, x1, x2, x3 = s[c], s[c + 1], s[c + 2], s[c + 3]
        t.extend((2 * x0 + 3 * x1 + x2 + x3, x0 + 2 * x1 + 3 * x2 + x3,
                  x0 + x1 + 2 * x2 + 3 * x3, 3 * x0 + x1 + x2 + 2 * x3))
    sums = [t[r] + t[r + 4] + t[r + 8] + t[r + 12] for r in range(4)]
    return [(t[i] + sums[i & 3]) % P for i in range(WIDTH)]


def permute_host(state, constants: Poseidon2Constants = DEFAULT_CONSTANTS) -> list:
    """Poseidon2 permutation of one state: 16 canonical ints in, 16 canonical ints out."""
    s = [int(v) for v in state]
    if len(s) != WIDTH or not all(0 <= v < P for v in s):
        raise InvalidInputError("a Poseidon2 state is 16 canonical field elements")
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
# Every fused chain stays within MLX's CPU fusion limit (about 11 ops): the S-box x^7 is split
# into single multiplications, and the linear layers accumulate in uint64 (no intermediate
# reductions: M_E entries are <= 6 and sum to 35, M_I terms are < 16p + p^2 < 2^63) with a
# single `% p` at the end.

@mx.compile
def _mul(a: mx.array, b: mx.array) -> mx.array:
    return ((a.astype(U64) * b.astype(U64)) % P).astype(U32)


@mx.compile
def _add_rc_square(s: mx.array, rc: mx.array):
    x = s + rc  # s, rc < p: no uint32 overflow
    x = mx.minimum(x, x - P)
    return x, ((x.astype(U64) * x.astype(U64)) % P).astype(U32)


def _sbox(s: mx.array, rc: mx.array) -> mx.array:
    """``(s + rc)^7`` elementwise (rc broadcasts)."""
    x, x2 = _add_rc_square(s, rc)
    x3 = _mul(x2, x)
    return _mul(_mul(x3, x3), x)


@mx.compile
def _external_linear(s: mx.array) -> mx.array:
    """``M_E`` on lane-major states ``(16, n)`` uint32 -> ``(16, n)`` uint32."""
    n = s.shape[1]
    b = s.astype(U64).reshape(4, 4, n)  # (block c, lane r, state)
    x0, x1, x2, x3 = b[:, 0], b[:, 1], b[:, 2], b[:, 3]
    t01, t23 = x0 + x1, x2 + x3
    t0123 = t01 + t23
    t01123, t01233 = t0123 + x1, t0123 + x3
    # M4 rows [2,3,1,1], [1,2,3,1], [1,1,2,3], [3,1,1,2] (Plonky3's apply_mat4 addition chain)
    t = mx.stack([t01123 + t01, t01123 + 2 * x2, t01233 + t23, t01233 + 2 * x0], axis=1)
    return ((t + mx.sum(t, axis=0, keepdims=True)) % P).astype(U32).reshape(4 * 4, n)


@mx.compile
def _internal_linear(s0: mx.array, rest: mx.array, diag_rest: mx.array):
    """``M_I`` with lane 0 apart: ``s0 (n,)``, ``rest (15, n)`` -> same shapes.

    ``out[i] = sum(s) + V[i] s[i]``; ``V[0] = -2`` is applied as ``+ 2 (p - s0)``.
    """
    a0 = s0.astype(U64)
    r = rest.astype(U64)
    total = a0 + mx.sum(r, axis=0)
    new0 = ((total + 2 * (P - a0)) % P).astype(U32)
    new_rest = ((total + r * diag_rest) % P).astype(U32)
    return new0, new_rest


@lru_cache(maxsize=4)
def _device_constants(constants: Poseidon2Constants):
    def col(row):
        return mx.array(np.array(row, dtype=np.uint32).reshape(WIDTH, 1))

    ext_init = [col(r) for r in constants.ext_init]
    internal = [mx.array(np.array([c], dtype=np.uint32)) for c in constants.internal]
    ext_term = [col(r) for r in constants.ext_term]
    diag_rest = mx.array(np.array(INTERNAL_DIAG[1:], dtype=np.uint64).reshape(WIDTH - 1, 1))
    return ext_init, internal, ext_term, diag_rest


def permute_lanes(lanes: mx.array, constants: Poseidon2Constants = DEFAULT_CONSTANTS) -> mx.array:
    """Poseidon2 on lane-major states: ``(16, n)`` uint32 canonical -> ``(16, n)`` uint32.

    Column ``j`` is one state. Lazy: builds the graph, evaluates nothing.
    """
    ext_init, internal, ext_term, diag_rest = _device_constants(constants)
    s = _external_linear(lanes)
    for rc in ext_init:
        s = _external_linear(_sbox(s, rc))
    s0, rest = s[0], s[1:]
    for rc in internal:
        s0, rest = _internal_linear(_sbox(s0, rc), rest, diag_rest)
    s = mx.concatenate([s0[None], rest], axis=0)
    for rc in ext_term:
        s = _external_linear(_sbox(s, rc))
    return s


def permute(states: mx.array, constants: Poseidon2Constants = DEFAULT_CONSTANTS) -> mx.array:
    """Poseidon2 on a batch of states: ``(n, 16)`` uint32 canonical -> ``(n, 16)`` uint32."""
    if states.ndim != 2 or states.shape[1] != WIDTH:
        raise InvalidInputError(f"permute expects states of shape (n, 16), got {tuple(states.shape)}")
    if states.dtype != U32:
        raise InvalidInputError(f"permute expects uint32 states, got {states.dtype}")
    return permute_lanes(states.T, constants).T


# ---------------------------------------------------------------- proof-of-work search
_POW_FIRST_BATCH = 1 << 14
_POW_MAX_BATCH = 1 << 18


def find_pow_witness(state, absorb_idx: int, bits: int) -> int:
    """The smallest ``w`` in ``[0, p)`` with ``P(state with state[absorb_idx] = w)[7]`` having
    its low ``bits`` bits zero (the duplex sponge's ``check_witness``, PCS.md §4).

    ``state``: 16 canonical ints (host). Candidates are scanned in increasing order, in
    batches of lane-major states evaluated on the device; batches grow up to 2^18.
    """
    if not 0 <= absorb_idx < 8:
        raise InvalidInputError(f"absorb position must be in [0, 8), got {absorb_idx}")
    base = np.array([int(v) for v in state], dtype=np.uint32).reshape(WIDTH, 1)
    mask = (1 << bits) - 1
    start, batch = 0, _POW_FIRST_BATCH
    while start < P:
        count = min(batch, P - start)
        nonces = mx.arange(start, start + count, dtype=U32)
        lanes = mx.concatenate([
            mx.broadcast_to(mx.array(base[:absorb_idx]), (absorb_idx, count)),
            nonces[None],
            mx.broadcast_to(mx.array(base[absorb_idx + 1:]), (WIDTH - 1 - absorb_idx, count)),
        ], axis=0)
        out7 = permute_lanes(lanes)[7]
        hits = np.flatnonzero((np.array(out7) & mask) == 0)
        if hits.size:
            return start + int(hits[0])
        start += count
        batch = min(2 * batch, _POW_MAX_BATCH)
    raise RuntimeError(f"no proof-of-work witness for {bits} bits exists in the field")
