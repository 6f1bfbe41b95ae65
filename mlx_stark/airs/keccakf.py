"""Keccak-f[1600] AIR (Plonky3 0.4.3 ``KeccakAir``) and its trace generator (keccak_air.md).

One row per round: the 24 rounds of a permutation fill 24 consecutive rows, each holding the
round's input state ``A`` (16-bit limbs), the theta column parities ``C`` / ``C'`` (bits), the
theta output ``A'`` (bits), the chi output ``A''`` (limbs, plus the bits of lane (0, 0)) and the
iota output of lane (0, 0) (limbs). The trace is padded to a power-of-two height with zero-state
permutations (§5).

Lanes are numbered ``i = x + 5·y`` (FIPS 202 order); every ``[y][x]`` column group is y-major,
so its flat order is lane order. Limbs and bits are little-endian.
"""
from __future__ import annotations

import numpy as np

from ..air import Air, Constant, expr_sum
from ..errors import InvalidInputError

NUM_ROUNDS = 24
U64_LIMBS = 4
BITS_PER_LIMB = 16

# Rotation offsets R[x][y] (rho), keccak_air.md §1.
R = (
    (0, 36, 3, 41, 18),
    (1, 44, 10, 45, 2),
    (62, 6, 43, 15, 61),
    (28, 55, 25, 21, 56),
    (27, 20, 39, 8, 14),
)

# Round constants RC[r] (iota), keccak_air.md §1.
RC = (
    0x0000000000000001, 0x0000000000008082, 0x800000000000808A, 0x8000000080008000,
    0x000000000000808B, 0x0000000080000001, 0x8000000080008081, 0x8000000000008009,
    0x000000000000008A, 0x0000000000000088, 0x0000000080008009, 0x000000008000000A,
    0x000000008000808B, 0x800000000000008B, 0x8000000000008089, 0x8000000000008003,
    0x8000000000008002, 0x8000000000000080, 0x000000000000800A, 0x800000008000000A,
    0x8000000080008081, 0x8000000000008080, 0x0000000080000001, 0x8000000080008008,
)


class KeccakLayout:
    """Column indices of ``KeccakCols`` (keccak_air.md §3); shared by the trace generator and
    the AIR. Group starts are class constants; the methods give single columns and
    :meth:`group` gives ``(start, stop)`` of a whole group."""

    STEP_FLAGS = 0
    EXPORT = 24
    PREIMAGE = 25
    A = 125
    C = 225
    C_PRIME = 545
    A_PRIME = 865
    A_PRIME_PRIME = 2465
    A_PRIME_PRIME_0_0_BITS = 2565
    A_PRIME_PRIME_PRIME_0_0_LIMBS = 2629
    WIDTH = 2633

    _GROUPS = {
        "step_flags": (0, 24),
        "export": (24, 25),
        "preimage": (25, 125),
        "a": (125, 225),
        "c": (225, 545),
        "c_prime": (545, 865),
        "a_prime": (865, 2465),
        "a_prime_prime": (2465, 2565),
        "a_prime_prime_0_0_bits": (2565, 2629),
        "a_prime_prime_prime_0_0_limbs": (2629, 2633),
    }

    @classmethod
    def group(cls, name: str) -> tuple:
        """``(start, stop)`` column range of the named group."""
        return cls._GROUPS[name]

    @staticmethod
    def step_flag(r: int) -> int:
        return r

    @classmethod
    def preimage(cls, y: int, x: int, limb: int) -> int:
        return cls.PREIMAGE + 4 * (x + 5 * y) + limb

    @classmethod
    def a(cls, y: int, x: int, limb: int) -> int:
        return cls.A + 4 * (x + 5 * y) + limb

    @classmethod
    def c(cls, x: int, z: int) -> int:
        return cls.C + 64 * x + z

    @classmethod
    def c_prime(cls, x: int, z: int) -> int:
        return cls.C_PRIME + 64 * x + z

    @classmethod
    def a_prime(cls, y: int, x: int, z: int) -> int:
        return cls.A_PRIME + 64 * (x + 5 * y) + z

    @classmethod
    def a_prime_prime(cls, y: int, x: int, limb: int) -> int:
        return cls.A_PRIME_PRIME + 4 * (x + 5 * y) + limb

    @classmethod
    def a_prime_prime_0_0_bit(cls, z: int) -> int:
        return cls.A_PRIME_PRIME_0_0_BITS + z

    @classmethod
    def a_prime_prime_prime_0_0_limb(cls, limb: int) -> int:
        return cls.A_PRIME_PRIME_PRIME_0_0_LIMBS + limb

    @classmethod
    def a_prime_prime_prime(cls, y: int, x: int, limb: int) -> int:
        """Column of the round output ``A'''[x][y]`` limb: lane (0, 0) has its own group, the
        other lanes are unchanged by iota and read from ``a_prime_prime``."""
        if x == 0 and y == 0:
            return cls.a_prime_prime_prime_0_0_limb(limb)
        return cls.a_prime_prime(y, x, limb)

    @classmethod
    def b(cls, x: int, y: int, z: int) -> int:
        """``a_prime`` column holding bit ``z`` of the rho/pi output ``B[x][y]``."""
        src_x = (x + 3 * y) % 5
        return cls.a_prime(x, src_x, (z - R[src_x][x]) % 64)


NUM_KECCAK_COLS = KeccakLayout.WIDTH
# RC_BITS[r][z] = bit z of RC[r]
RC_BITS = tuple(tuple((RC[r] >> z) & 1 for z in range(64)) for r in range(NUM_ROUNDS))


# ---------------------------------------------------------------------------- constraints
class KeccakfAir(Air):
    """Plonky3 0.4.3 ``KeccakAir``: 2633 main columns, no public values, no interactions, no
    preprocessed trace; 3182 constraints of degree ≤ 3 (keccak_air.md §7).

    ``eval`` follows the reference expression by expression, so that the recorded trees (and
    hence the DAG and the verifying key) are the reference's: ``pack16`` is the Horner fold
    ``acc.double() + bit`` from ``Constant(0)`` and the highest bit down, ``rcbit`` is the
    ``+=`` fold ``Σ step_flags[r]·Constant(RCbit(r, z))`` from ``Constant(0)``.
    """

    width = NUM_KECCAK_COLS

    def eval(self, b) -> None:
        L = KeccakLayout
        local, nxt = b.local, b.next

        def limb_from_bits(get_bit, limb: int):
            acc = Constant(0)
            for z in reversed(range(limb * BITS_PER_LIMB, (limb + 1) * BITS_PER_LIMB)):
                acc = acc.double() + get_bit(z)
            return acc

        # round flags: (1, 0, ..., 0) on the first row, rotating by one position per row
        b.when_first_row().assert_one(local[L.step_flag(0)])
        b.when_first_row().assert_zeros(local[L.step_flag(r)] for r in range(1, NUM_ROUNDS))
        b.when_transition().assert_zeros(
            local[L.step_flag(r)] - nxt[L.step_flag((r + 1) % NUM_ROUNDS)]
            for r in range(NUM_ROUNDS)
        )

        first_step = local[L.step_flag(0)]
        not_final_step = Constant(1) - local[L.step_flag(NUM_ROUNDS - 1)]

        # round 0 reads the preimage; the preimage is constant within a permutation
        for y in range(5):
            for x in range(5):
                b.when(first_step).assert_zeros(
                    local[L.preimage(y, x, l)] - local[L.a(y, x, l)] for l in range(U64_LIMBS)
                )
        for y in range(5):
            for x in range(5):
                b.when(not_final_step).when_transition().assert_zeros(
                    local[L.preimage(y, x, l)] - nxt[L.preimage(y, x, l)]
                    for l in range(U64_LIMBS)
                )

        # export is boolean and only set on final steps
        b.assert_bool(local[L.EXPORT])
        b.when(not_final_step).assert_zero(local[L.EXPORT])

        # C'[x][z] = xor3(C[x][z], C[x-1][z], C[x+1][z-1]); boolean C makes C' boolean too
        for x in range(5):
            b.assert_bools(local[L.c(x, z)] for z in range(64))
            b.assert_zeros(
                local[L.c_prime(x, z)]
                - local[L.c(x, z)].xor3(
                    local[L.c((x + 4) % 5, z)], local[L.c((x + 1) % 5, (z + 63) % 64)]
                )
                for z in range(64)
            )

        # A = A' ^ C ^ C' limb by limb; boolean A' also range-checks the limbs of A
        for y in range(5):
            for x in range(5):
                def theta_bit(z, x=x, y=y):
                    return local[L.a_prime(y, x, z)].xor3(local[L.c(x, z)], local[L.c_prime(x, z)])

                b.assert_bools(local[L.a_prime(y, x, z)] for z in range(64))
                b.assert_zeros(
                    limb_from_bits(theta_bit, l) - local[L.a(y, x, l)] for l in range(U64_LIMBS)
                )

        # Σ_y A'[x][y][z] ≡ C'[x][z] (mod 2): diff ∈ {0, 2, 4}
        for x in range(5):
            four = Constant(2).double()
            for z in range(64):
                diff = expr_sum(local[L.a_prime(y, x, z)] for y in range(5)) - local[L.c_prime(x, z)]
                b.assert_zero(diff * (diff - Constant(2)) * (diff - four))

        # chi: A''[x][y] = xor(andn(B[x+1][y], B[x+2][y]), B[x][y])
        for y in range(5):
            for x in range(5):
                def chi_bit(z, x=x, y=y):
                    andn = local[L.b((x + 1) % 5, y, z)].andn(local[L.b((x + 2) % 5, y, z)])
                    return andn.xor(local[L.b(x, y, z)])

                b.assert_zeros(
                    limb_from_bits(chi_bit, l) - local[L.a_prime_prime(y, x, l)]
                    for l in range(U64_LIMBS)
                )

        # iota on lane (0, 0) through its bits
        b.assert_bools(local[L.a_prime_prime_0_0_bit(z)] for z in range(64))
        b.assert_zeros(
            limb_from_bits(lambda z: local[L.a_prime_prime_0_0_bit(z)], l)
            - local[L.a_prime_prime(0, 0, l)]
            for l in range(U64_LIMBS)
        )

        def iota_bit(z):
            rc_bit = Constant(0)
            for r in range(NUM_ROUNDS):
                rc_bit = rc_bit + local[L.step_flag(r)] * Constant(RC_BITS[r][z])
            return rc_bit.xor(local[L.a_prime_prime_0_0_bit(z)])

        b.assert_zeros(
            limb_from_bits(iota_bit, l) - local[L.a_prime_prime_prime_0_0_limb(l)]
            for l in range(U64_LIMBS)
        )

        # this round's output is the next round's input (x outer, as in the reference)
        for x in range(5):
            for y in range(5):
                b.when_transition().when(not_final_step).assert_zeros(
                    local[L.a_prime_prime_prime(y, x, l)] - nxt[L.a(y, x, l)]
                    for l in range(U64_LIMBS)
                )


# ---------------------------------------------------------------------------- trace generation
# The permutation runs on the host over 64-bit lanes; the trace's 2633 columns are the bits and
# 16-bit limbs of 112 lane words per row (every group below, in column order). Only the words
# cross to the device when the trace is built there: 1/12 of the trace's bytes.
_WORD_GROUPS = (  # (group, lanes per row, "bits" or "limbs")
    ("preimage", 25, "limbs"), ("a", 25, "limbs"), ("c", 5, "bits"), ("c_prime", 5, "bits"),
    ("a_prime", 25, "bits"), ("a_prime_prime", 25, "limbs"), ("a_prime_prime_0_0_bits", 1, "bits"),
    ("a_prime_prime_prime_0_0_limbs", 1, "limbs"),
)
_NUM_WORDS = sum(k for _, k, _ in _WORD_GROUPS)


def _rotl(v: np.ndarray, n: int) -> np.ndarray:
    if n == 0:
        return v
    return (v << np.uint64(n)) | (v >> np.uint64(64 - n))


def _round_words(states: np.ndarray) -> np.ndarray:
    """``(m, 25)`` uint64 states -> ``(m, 24, 112)`` uint64: each round row's lane words, in the
    order of :data:`_WORD_GROUPS`."""
    m = states.shape[0]
    words = np.empty((m, NUM_ROUNDS, _NUM_WORDS), dtype=np.uint64)
    words[:, :, 0:25] = states[:, None, :]
    a = states.copy()
    for k in range(NUM_ROUNDS):
        # theta, through C and C' = C ^ C[x-1] ^ rotl(C[x+1], 1) (§1 identity)
        c = a[:, 0:5] ^ a[:, 5:10] ^ a[:, 10:15] ^ a[:, 15:20] ^ a[:, 20:25]
        c_prime = c ^ np.roll(c, 1, axis=1) ^ _rotl(np.roll(c, -1, axis=1), 1)
        a_prime = a ^ np.tile(c ^ c_prime, 5)
        # rho + pi: B[X][Y] = rotl(A'[(X+3Y)%5][X], R[(X+3Y)%5][X]); lane i = X + 5Y
        b = np.empty_like(a_prime)
        for y in range(5):
            for x in range(5):
                sx = (x + 3 * y) % 5
                b[:, x + 5 * y] = _rotl(a_prime[:, sx + 5 * x], R[sx][x])
        # chi, row by row: A''[x][y] = B[x][y] ^ (~B[x+1][y] & B[x+2][y])
        b5 = b.reshape(m, 5, 5)  # [y][x]
        a2 = (b5 ^ (~np.roll(b5, -1, axis=2) & np.roll(b5, -2, axis=2))).reshape(m, 25)
        words[:, k, 25:110] = np.concatenate([a, c, c_prime, a_prime, a2], axis=1)
        words[:, k, 110] = a2[:, 0]
        a2[:, 0] ^= np.uint64(RC[k])  # iota
        words[:, k, 111] = a2[:, 0]
        a = a2
    return words


def _expand(xp, halves):
    """Trace rows from lane words, with ``xp`` NumPy or ``mlx.core``: ``halves (rows, 112, 2)``
    uint32 (each word's low and high 32 bits) -> ``(rows, 2633)`` uint32. The rows must
    start at a permutation's first row (the step flags repeat every 24 rows)."""
    rows = halves.shape[0]
    u32 = xp.uint32
    step = (xp.arange(rows, dtype=u32) % NUM_ROUNDS)[:, None] == xp.arange(NUM_ROUNDS, dtype=u32)[None]
    parts = [step.astype(u32), xp.zeros((rows, 1), dtype=u32)]  # step flags, export
    bit_shifts = xp.arange(32, dtype=u32)
    limb_shifts = xp.array([0, BITS_PER_LIMB], dtype=u32)
    w = 0
    for _, k, kind in _WORD_GROUPS:
        h = halves[:, w:w + k, :, None]
        if kind == "bits":
            parts.append(((h >> bit_shifts) & 1).reshape(rows, 64 * k))
        else:
            parts.append(((h >> limb_shifts) & 0xFFFF).reshape(rows, U64_LIMBS * k))
        w += k
    return xp.concatenate(parts, axis=1)


def keccakf_trace_height(n: int) -> int:
    """Rows of the :func:`keccakf_trace` of ``n`` permutations: ``next_power_of_two(24·n)``."""
    return 1 << (NUM_ROUNDS * n - 1).bit_length() if n else 1


def keccakf_trace(inputs: np.ndarray, on_device: bool = False):
    """Main trace of :class:`KeccakfAir` for ``n`` Keccak-f permutations (keccak_air.md §4–§5).

    ``inputs``: ``(n, 25)`` unsigned integer array of lanes (``i = x + 5y``), ``n ≥ 0``.
    Returns ``(N, 2633)`` uint32 with ``N = next_power_of_two(24·n)`` (1 when ``n = 0``):
    permutation ``j`` on rows ``24j ..``, then zero-state permutations up to ``N`` rows, the
    last one cut off after ``N mod 24`` rounds. A NumPy array, or with ``on_device`` an MLX
    array expanded on the default device (what ``prove`` then uses without an upload).
    """
    arr = np.asarray(inputs)
    if arr.ndim != 2 or arr.shape[1] != 25:
        raise InvalidInputError(f"keccakf_trace needs an (n, 25) array of lanes, got shape {arr.shape}")
    if arr.dtype != np.uint64:
        if not np.issubdtype(arr.dtype, np.integer) or (arr.size and int(arr.min()) < 0):
            raise InvalidInputError(f"keccakf_trace needs unsigned 64-bit lanes, got {arr.dtype}")
        arr = arr.astype(np.uint64)
    n = arr.shape[0]
    height = keccakf_trace_height(n)
    slots = -(-height // NUM_ROUNDS)
    # every padding slot is the same zero-state permutation: computed once, repeated
    words = _round_words(np.concatenate([arr, np.zeros((1, 25), dtype=np.uint64)]))
    words = np.concatenate([words[:n], np.broadcast_to(words[n:], (slots - n, NUM_ROUNDS, _NUM_WORDS))])
    halves = words.reshape(slots * NUM_ROUNDS, _NUM_WORDS)[:height].view(np.uint32)
    halves = halves.reshape(height, _NUM_WORDS, 2)  # little-endian: low half first
    if not on_device:
        return _expand(np, halves)
    import mlx.core as mx
    return _expand(mx, mx.array(halves))


_LIMB_SHIFTS = np.arange(U64_LIMBS, dtype=np.uint64) * np.uint64(BITS_PER_LIMB)


def keccakf_outputs(trace: np.ndarray, n: int) -> np.ndarray:
    """The ``(n, 25)`` uint64 outputs of the first ``n`` permutations of a trace (``A'''`` on
    each permutation's round-23 row)."""
    L = KeccakLayout
    last = trace[NUM_ROUNDS - 1: NUM_ROUNDS * n: NUM_ROUNDS].astype(np.uint64)
    cols = [L.a_prime_prime_prime(i // 5, i % 5, l) for i in range(25) for l in range(U64_LIMBS)]
    limbs = last[:, cols].reshape(n, 25, U64_LIMBS)
    return np.bitwise_or.reduce(limbs << _LIMB_SHIFTS, axis=-1)


def random_keccakf_inputs(n: int, seed: int = 0) -> np.ndarray:
    """``(n, 25)`` uint64 random permutation inputs, deterministic in ``seed``."""
    if n < 0:
        raise InvalidInputError(f"number of permutations must be non-negative, got {n}")
    rng = np.random.default_rng(seed)
    return rng.integers(0, 1 << 64, size=(n, 25), dtype=np.uint64, endpoint=False)
