"""Fiat–Shamir transcript: the duplex sponge of pcs.md §4 (stark-backend ``DuplexSponge<F, P, 16, 8>``).

The state lives on the host (16 Python ints); one Poseidon2 permutation per 8 observations or
8 samples. Long runs of observations (:meth:`Transcript.observe_array`) absorb their full rate
blocks on the device where a native kernel exists; proof-of-work search
(:meth:`Transcript.grind`) runs batched on the device.
"""
from __future__ import annotations

import mlx.core as mx
import numpy as np

from . import custom_kernels
from .errors import InvalidInputError
from .field.bb import P, U32
from .field.host import EF
from .hash.poseidon2 import WIDTH, find_pow_witness, permute_host
from .tracing import read

RATE = 8


def _element(x) -> int:
    v = int(x)
    if not 0 <= v < P:
        raise InvalidInputError(f"transcript values must be canonical field elements, got {v}")
    return v


class Transcript:
    """Duplex sponge, width 16, rate 8, over Poseidon2/BabyBear.

    Observations overwrite ``st[absorb_idx]``; a full rate (8 observations) permutes. A sample
    first permutes if anything was absorbed since the last permutation (or the outputs are used
    up), then returns ``st[7], st[6], ..., st[0]`` in turn.
    """

    __slots__ = ("_state", "_absorb_idx", "_sample_idx")

    def __init__(self):
        self._state = [0] * WIDTH
        self._absorb_idx = 0
        self._sample_idx = 0

    def copy(self) -> "Transcript":
        t = Transcript.__new__(Transcript)
        t._state = list(self._state)
        t._absorb_idx = self._absorb_idx
        t._sample_idx = self._sample_idx
        return t

    # ------------------------------------------------------------ observe
    def observe(self, x) -> None:
        """Absorb one base element (canonical int)."""
        self._state[self._absorb_idx] = _element(x)
        self._absorb_idx += 1
        if self._absorb_idx == RATE:
            self._state = permute_host(self._state)
            self._absorb_idx = 0
            self._sample_idx = RATE

    def observe_many(self, values) -> None:
        for x in values:
            self.observe(x)

    def observe_array(self, values) -> None:
        """Absorb ``values`` (``(n,)`` uint32 canonical elements, an MLX array on the device or
        a NumPy array on the host) in order: the same as ``observe_many(values.tolist())``.

        Observations up to the next rate boundary and the last ``< 8`` run on the host; the
        full 8-blocks in between go through the ``transcript.absorb`` kernel when the device
        has one (one launch), else through the host permutation. Device values cost one
        read-back (the host part and the canonicity check together), plus the kernel's state.
        """
        if not isinstance(values, (mx.array, np.ndarray)) or values.ndim != 1 \
                or values.dtype not in (U32, np.uint32):
            what = (f"{values.dtype} of shape {tuple(values.shape)}"
                    if isinstance(values, (mx.array, np.ndarray)) else type(values).__name__)
            raise InvalidInputError(f"observe_array expects a 1-D uint32 array, got {what}")
        n = values.shape[0]
        if n == 0:
            return
        head = min(n, (RATE - self._absorb_idx) % RATE)
        blocks = (n - head) // RATE
        kernel = custom_kernels.native("transcript.absorb") if blocks else None
        end = head + blocks * RATE if kernel is not None else head
        if isinstance(values, np.ndarray):
            high, host = values.max(), np.concatenate([values[:head], values[end:]])
            values = mx.array(values[head:end])
        else:
            high, host = read(mx.max(values), mx.concatenate([values[:head], values[end:]]))
            values = values[head:end]
        if high >= P:
            raise InvalidInputError("transcript values must be canonical field elements")
        host = host.tolist()
        if kernel is None:
            self.observe_many(host)
            return
        self.observe_many(host[:head])
        self._state = kernel(self._state, values.reshape(blocks, RATE))
        self._sample_idx = RATE
        self.observe_many(host[head:])

    def observe_ext(self, e: EF) -> None:
        """Absorb an extension element as ``c0, c1, c2, c3``."""
        self.observe_many(EF.lift(e).c)

    def observe_commit(self, digest) -> None:
        """Absorb a digest of 8 base elements in order."""
        d = tuple(digest)
        if len(d) != RATE:
            raise InvalidInputError(f"a commitment digest has 8 elements, got {len(d)}")
        self.observe_many(d)

    # ------------------------------------------------------------ sample
    def sample(self) -> int:
        """Squeeze one base element."""
        if self._absorb_idx != 0 or self._sample_idx == 0:
            self._state = permute_host(self._state)
            self._absorb_idx = 0
            self._sample_idx = RATE
        self._sample_idx -= 1
        return self._state[self._sample_idx]

    def sample_ext(self) -> EF:
        """Four samples ``c0, c1, c2, c3``."""
        return EF(self.sample(), self.sample(), self.sample(), self.sample())

    def sample_bits(self, bits: int) -> int:
        """The low ``bits`` bits of one sample (``bits < 32`` and ``2^bits < p``)."""
        _check_bits(bits)
        return self.sample() & ((1 << bits) - 1)

    # ------------------------------------------------------------ proof of work
    def check_witness(self, bits: int, witness) -> bool:
        """Observe ``witness`` and accept iff the next ``sample_bits(bits)`` is 0.

        ``bits == 0`` accepts without touching the transcript.
        """
        _check_bits(bits)
        if bits == 0:
            return True
        self.observe(witness)
        return self.sample_bits(bits) == 0

    def grind(self, bits: int) -> int:
        """The smallest witness ``w`` that :meth:`check_witness` accepts, applied to this transcript.

        Candidates ``0, 1, 2, ...`` are evaluated in batches on the device
        (:func:`mlx_stark.hash.poseidon2.find_pow_witness`), so the witness is deterministic.
        """
        _check_bits(bits)
        if bits == 0:
            return 0
        # check_witness(w) = P(st with st[absorb_idx] = w)[7] has its low bits zero: after the
        # observe, either absorb_idx != 0 (the sample permutes) or the observe filled the rate
        # and permuted itself (the sample then reads st[7] without permuting). Same value.
        witness = find_pow_witness(self._state, self._absorb_idx, bits)
        if not self.check_witness(bits, witness):
            raise RuntimeError("proof-of-work search returned a witness the transcript rejects")
        return witness


def _check_bits(bits: int) -> None:
    if not (isinstance(bits, int) and 0 <= bits < 32 and (1 << bits) < P):
        raise InvalidInputError(f"sample_bits needs 0 <= bits < 31, got {bits!r}")
