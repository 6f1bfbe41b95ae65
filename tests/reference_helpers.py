"""Helpers for test_reference_suite.py, the port of stark-backend v2.0.1's shared backend test
suite (crates/backend-tests/src/lib.rs).

- :class:`RustStdRng` reproduces rand 0.9's ``StdRng`` (ChaCha12) bit for bit, so the tests that
  draw random parameters or matrices from a seeded RNG use the very same values as the reference.
- :func:`air_inputs`, :func:`keygen_and_prove`, :func:`run_test` mirror the reference's
  ``TestFixture::keygen_and_prove`` and ``StarkEngine::run_test``.
- :func:`random_z`, :func:`stacking_openings`, :func:`whir_prove`, :func:`whir_verify` mirror
  the reference's WHIR test helpers (``generate_random_z``, ``stacking_openings_for_matrix``,
  ``run_whir_test``).
"""
from __future__ import annotations

import struct
from typing import List, Optional, Sequence

import mlx.core as mx
import numpy as np

import mlx_stark as ms
from mlx_stark.air.check import AirTrace
from mlx_stark.airs import Fixture
from mlx_stark.field import ext
from mlx_stark.field.bb import P
from mlx_stark.field.host import EF
from mlx_stark.poly import fold_skip, host, mle_eval
from mlx_stark.prover.whir import prove_whir
from mlx_stark.transcript import Transcript
from mlx_stark.verifier.whir import verify_whir

MASK32 = (1 << 32) - 1
MASK64 = (1 << 64) - 1


# ---------------------------------------------------------------- rand 0.9 StdRng
def _rotl32(x: int, n: int) -> int:
    return ((x << n) | (x >> (32 - n))) & MASK32


def chacha_block(key: Sequence[int], counter: int, nonce: int = 0, double_rounds: int = 6) -> List[int]:
    """One ChaCha block (16 output words): 256-bit ``key`` (8 LE words), 64-bit block counter
    (words 12-13) and 64-bit nonce (words 14-15), as rand_chacha lays them out.
    ``double_rounds = 6`` is ChaCha12, 10 is ChaCha20."""
    init = [0x61707865, 0x3320646E, 0x79622D32, 0x6B206574, *key,
            counter & MASK32, counter >> 32, nonce & MASK32, nonce >> 32]
    x = list(init)

    def qr(a, b, c, d):
        x[a] = (x[a] + x[b]) & MASK32; x[d] = _rotl32(x[d] ^ x[a], 16)
        x[c] = (x[c] + x[d]) & MASK32; x[b] = _rotl32(x[b] ^ x[c], 12)
        x[a] = (x[a] + x[b]) & MASK32; x[d] = _rotl32(x[d] ^ x[a], 8)
        x[c] = (x[c] + x[d]) & MASK32; x[b] = _rotl32(x[b] ^ x[c], 7)

    for _ in range(double_rounds):
        qr(0, 4, 8, 12); qr(1, 5, 9, 13); qr(2, 6, 10, 14); qr(3, 7, 11, 15)
        qr(0, 5, 10, 15); qr(1, 6, 11, 12); qr(2, 7, 8, 13); qr(3, 4, 9, 14)
    return [(a + b) & MASK32 for a, b in zip(x, init)]


class RustStdRng:
    """rand 0.9 ``StdRng``: the ChaCha12 key stream read as little-endian ``u32`` words
    (``next_u64`` = two consecutive words, low first), with rand's integer-range sampler."""

    def __init__(self, seed: bytes, double_rounds: int = 6):
        if len(seed) != 32:
            raise ValueError("a StdRng seed is 32 bytes")
        self._key = struct.unpack("<8I", bytes(seed))
        self._double_rounds = double_rounds
        self._block = 0
        self._words: List[int] = []

    @classmethod
    def seed_from_u64(cls, state: int) -> "RustStdRng":
        """rand_core's ``SeedableRng::seed_from_u64``: the seed is 8 outputs of PCG32."""
        seed = bytearray()
        for _ in range(8):
            state = (state * 6364136223846793005 + 11634580027462260723) & MASK64
            xorshifted = (((state >> 18) ^ state) >> 27) & MASK32
            rot = state >> 59
            seed += struct.pack("<I", ((xorshifted >> rot) | (xorshifted << (32 - rot))) & MASK32)
        return cls(bytes(seed))

    def next_u32(self) -> int:
        if not self._words:
            self._words = chacha_block(self._key, self._block, 0, self._double_rounds)[::-1]
            self._block += 1
        return self._words.pop()

    def next_u64(self) -> int:
        lo = self.next_u32()
        return lo | (self.next_u32() << 32)

    def random_range(self, low: int, high: int) -> int:
        """``rng.random_range(low..=high)`` for ``usize`` (rand 0.9 ``UniformUsize``: sampled
        as ``u32`` when ``high`` fits, with the biased-but-widening single-sample method)."""
        if high > MASK64 or low > high or low < 0:
            raise ValueError("bad range")
        bits = 32 if high <= MASK32 else 64
        mask = (1 << bits) - 1
        draw = self.next_u32 if bits == 32 else self.next_u64
        rng = (high - low + 1) & mask
        if rng == 0:
            return draw()
        wide = draw() * rng
        result, lo_order = wide >> bits, wide & mask
        if lo_order > (-rng) & mask:
            new_hi = (draw() * rng) >> bits
            result += (lo_order + new_hi) > mask
        return low + result


# ---------------------------------------------------------------- proving like the reference
def air_inputs(fixture: Fixture) -> List[Optional[ms.AirInput]]:
    """The fixture's traces as ``ms.prove`` inputs (``None`` for an absent AIR)."""
    return [None if t is None else ms.AirInput(t.common_main, list(t.public_values),
                                               list(t.cached_mains))
            for t in fixture.traces]


def keygen_and_prove(fixture: Fixture, params):
    """``TestFixture::keygen_and_prove``: ``(pk, vk, proof)``."""
    pk, vk = ms.keygen(fixture.airs, params)
    return pk, vk, ms.prove(pk, air_inputs(fixture))


def prove_and_verify(fixture: Fixture, params):
    """Keygen, prove and verify (the reference's ``keygen_and_prove`` + ``engine.verify``)."""
    pk, vk, proof = keygen_and_prove(fixture, params)
    ms.verify(vk, proof)
    return vk, proof


def fixture_of(airs, traces) -> Fixture:
    """A fixture from AIRs and their common-main matrices (no public values, no cached parts),
    like the reference's ``AirProvingContext::simple_no_pis`` contexts."""
    return Fixture(list(airs), [AirTrace(a, np.asarray(t, dtype=np.uint32)) for a, t in zip(airs, traces)])


def run_test(airs, traces, params):
    """``StarkEngine::run_test``: keygen, prove and verify (raises whatever fails)."""
    return prove_and_verify(fixture_of(airs, traces), params)


def rows(values, width: int) -> np.ndarray:
    """A row-major ``RowMajorMatrix::new(values, width)`` as a ``(H, width)`` uint32 array."""
    return np.asarray(list(values), dtype=np.uint64).reshape(-1, width).astype(np.uint32)


# ---------------------------------------------------------------- proof shape
# ---------------------------------------------------------------- WHIR helpers
def random_z(params, rng: RustStdRng):
    """``generate_random_z``: ``z_prism`` = ``n_stack + 1`` base values (``EF::from_u64``) and
    ``z_cube = (z_0, z_0^2, …, z_0^{2^{l−1}}, z_1, …)``."""
    z_prism = [EF.lift(rng.next_u64() % P) for _ in range(params.n_stack + 1)]
    return z_prism, host.u_cube(params.l_skip, z_prism)


def stacking_openings(params, z_prism, matrix) -> List[EF]:
    """``stacking_openings_for_matrix``: every column of a ``(2^m, W)`` matrix as a
    prismalinear polynomial evaluated at ``z_prism``."""
    folded = fold_skip(mx.array(matrix), params.l_skip, z_prism[0])  # (2^n, W, 4)
    return ext.to_host(mle_eval(folded, z_prism[1:]))


def whir_prove(params, pcs_datas, z_cube):
    """WHIR prover run on a fresh transcript."""
    return prove_whir(params, Transcript(), pcs_datas, z_cube)


def whir_verify(params, proof, pcs_datas, openings, z_cube) -> None:
    """WHIR verifier run on a fresh transcript (the reference replays the prover's transcript
    log, which is the same sequence of sponge operations)."""
    verify_whir(params, Transcript(), proof, [p.commit for p in pcs_datas],
                [p.width for p in pcs_datas], openings, z_cube)
