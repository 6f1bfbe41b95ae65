"""Byte codec primitives of the proof encoding (pcs.md §10.2, constraints.md §7.2).

All integers are little-endian. ``u32``: 4 bytes; ``usize``: encoded as a ``u32`` (an
encoding error if it does not fit); ``u8``, ``bool``: 1 byte (a ``bool`` decodes non-zero as
true); ``F``: the canonical value as a ``u32`` (decoding rejects values ``>= p``); ``EF``: its
coefficients ``c0..c3`` as ``F``; ``Digest``: 8 ``F``. A *slice* is a ``usize`` length then the
elements; an *iter* is the elements alone (the length is known to both sides).

:class:`Writer` raises :class:`~mlx_stark.errors.InvalidInputError` for a value it cannot
encode. :class:`Reader` raises :class:`~mlx_stark.errors.ProofDecodeError` (a
``VerificationError``) for truncated input, non-canonical field elements and, in
:meth:`Reader.finish`, trailing bytes. Before reading ``count`` elements it checks that enough
bytes remain, so a hostile length prefix cannot make it allocate or loop beyond the input size.

Bulk data (opened rows, Merkle paths, codeword values) travels as NumPy ``uint32`` arrays
with the element layout along the last axes: ``F`` arrays ``(...)``, ``EF`` arrays
``(..., 4)``, digest arrays ``(..., 8)``.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..errors import InvalidInputError, ProofDecodeError
from ..field.bb import P
from ..field.host import EF

U32_MAX = (1 << 32) - 1
F_BYTES = 4
EF_BYTES = 16
DIGEST_LEN = 8
DIGEST_BYTES = 32


def _canonical_array(values, what: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.size and (arr.dtype.kind not in "ui" or arr.min() < 0 or arr.max() >= P):
        raise InvalidInputError(f"{what}: field elements must be canonical integers in [0, p)")
    return arr.astype("<u4", copy=False)


class Writer:
    """Accumulates the encoding; :meth:`getvalue` returns the bytes."""

    __slots__ = ("_buf",)

    def __init__(self):
        self._buf = bytearray()

    def getvalue(self) -> bytes:
        return bytes(self._buf)

    # ---------------------------------------------------------------- scalars
    def u32(self, v: int) -> None:
        v = int(v)
        if not 0 <= v <= U32_MAX:
            raise InvalidInputError(f"u32 out of range: {v}")
        self._buf += struct.pack("<I", v)

    def usize(self, v: int) -> None:
        """A length or count, encoded as ``u32``."""
        self.u32(v)

    def u8(self, v: int) -> None:
        v = int(v)
        if not 0 <= v <= 255:
            raise InvalidInputError(f"u8 out of range: {v}")
        self._buf.append(v)

    def bool(self, v: bool) -> None:
        self._buf.append(1 if v else 0)

    def f(self, x: int) -> None:
        x = int(x)
        if not 0 <= x < P:
            raise InvalidInputError(f"field element not canonical: {x}")
        self._buf += struct.pack("<I", x)

    def ef(self, e: EF) -> None:
        self._buf += struct.pack("<4I", *EF.lift(e).c)

    def digest(self, d) -> None:
        d = tuple(d)
        if len(d) != DIGEST_LEN:
            raise InvalidInputError(f"a digest has 8 elements, got {len(d)}")
        for x in d:
            self.f(x)

    # ---------------------------------------------------------------- sequences without prefix
    def f_iter(self, values) -> None:
        for x in values:
            self.f(x)

    def ef_iter(self, values) -> None:
        for e in values:
            self.ef(e)

    def digest_iter(self, values) -> None:
        for d in values:
            self.digest(d)

    def f_array(self, arr) -> None:
        """Every element of a NumPy/array-like of canonical ints, in C order (no prefix)."""
        self._buf += _canonical_array(arr, "F array").tobytes()

    # ---------------------------------------------------------------- slices (usize prefix)
    def f_slice(self, values) -> None:
        values = list(values)
        self.usize(len(values))
        self.f_iter(values)

    def ef_slice(self, values) -> None:
        values = list(values)
        self.usize(len(values))
        self.ef_iter(values)

    def digest_slice(self, values) -> None:
        values = list(values)
        self.usize(len(values))
        self.digest_iter(values)


@dataclass(frozen=True)
class DecodeLimits:
    """The largest value each length prefix of a proof may have under one verifying key
    (``None``: no limit). The decoder checks every length as it reads it, before allocating,
    so a well-formed but oversized proof costs no more than the key allows; exact lengths
    are checked afterwards by the verifier's proof-shape rules.
    """

    airs: Optional[int] = None  # AIRs in the key
    log_height: Optional[int] = None  # l_skip + n_stack
    cached_commitments: Optional[int] = None  # per AIR
    public_values: Optional[int] = None  # per AIR
    gkr_layers: Optional[int] = None
    batch_coeffs: Optional[int] = None  # univariate round of the batch constraint sumcheck
    batch_rounds: Optional[int] = None  # n_max
    batch_round_len: Optional[int] = None  # d + 1
    parts: Optional[int] = None  # opened parts per trace
    part_openings: Optional[int] = None  # opened values per part
    stacking_coeffs: Optional[int] = None
    stacking_rounds: Optional[int] = None  # n_stack
    commits: Optional[int] = None  # commitments in the commitment list
    stacked_width: Optional[int] = None  # w_stack
    whir_steps: Optional[int] = None  # k·R
    whir_rounds: Optional[int] = None  # R
    queries: Optional[int] = None  # per WHIR round
    merkle_depth: Optional[int] = None  # round 0
    final_poly: Optional[int] = None


NO_LIMITS = DecodeLimits()


class Reader:
    """Sequential decoder over ``data``; call :meth:`finish` to reject trailing bytes.
    ``limits`` bound the length prefixes (:meth:`length`)."""

    __slots__ = ("_data", "_pos", "limits")

    def __init__(self, data, limits: DecodeLimits = NO_LIMITS):
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise ProofDecodeError(f"proof bytes expected, got {type(data).__name__}")
        self._data = bytes(data)
        self._pos = 0
        self.limits = limits

    @property
    def remaining(self) -> int:
        return len(self._data) - self._pos

    def _take(self, n: int) -> bytes:
        if n < 0 or n > self.remaining:
            raise ProofDecodeError(f"truncated: need {n} bytes at offset {self._pos}, "
                                   f"{self.remaining} left")
        out = self._data[self._pos:self._pos + n]
        self._pos += n
        return out

    def require(self, count: int, elem_bytes: int, what: str) -> None:
        """Fail early unless ``count`` elements of ``elem_bytes`` bytes can still be read."""
        if count * elem_bytes > self.remaining:
            raise ProofDecodeError(f"truncated: {what} needs {count} x {elem_bytes} bytes, "
                                   f"{self.remaining} left")

    def finish(self) -> None:
        if self.remaining:
            raise ProofDecodeError(f"{self.remaining} trailing bytes after the proof")

    # ---------------------------------------------------------------- scalars
    def u32(self) -> int:
        return struct.unpack("<I", self._take(4))[0]

    def usize(self) -> int:
        return self.u32()

    def length(self, limit: Optional[int], what: str) -> int:
        """A ``usize`` length prefix, rejected above ``limit`` (a field of :attr:`limits`)."""
        n = self.usize()
        if limit is not None and n > limit:
            raise ProofDecodeError(f"{what}: the proof has {n}, the verifying key allows at most {limit}")
        return n

    def u8(self) -> int:
        return self._take(1)[0]

    def bool(self) -> bool:
        return self._take(1)[0] != 0

    def f(self) -> int:
        x = self.u32()
        if x >= P:
            raise ProofDecodeError(f"non-canonical field element {x}")
        return x

    def ef(self) -> EF:
        c = struct.unpack("<4I", self._take(EF_BYTES))
        if max(c) >= P:
            raise ProofDecodeError(f"non-canonical extension element {c}")
        return EF(*c)

    def digest(self) -> tuple:
        return tuple(self.f() for _ in range(DIGEST_LEN))

    # ---------------------------------------------------------------- sequences without prefix
    def f_n(self, n: int) -> list:
        self.require(n, F_BYTES, "F values")
        return [self.f() for _ in range(n)]

    def ef_n(self, n: int) -> list:
        self.require(n, EF_BYTES, "EF values")
        return [self.ef() for _ in range(n)]

    def digest_n(self, n: int) -> list:
        self.require(n, DIGEST_BYTES, "digests")
        return [self.digest() for _ in range(n)]

    def f_array(self, shape) -> np.ndarray:
        """A ``uint32`` array of the given shape (C order), every element canonical."""
        shape = tuple(int(s) for s in shape)
        count = 1
        for s in shape:
            count *= s
        self.require(count, F_BYTES, "F array")
        arr = np.frombuffer(self._take(count * F_BYTES), dtype="<u4").astype(np.uint32)
        if arr.size and int(arr.max()) >= P:
            raise ProofDecodeError("non-canonical field element in an array")
        return arr.reshape(shape)

    # ---------------------------------------------------------------- slices (usize prefix)
    def f_vec(self, limit: Optional[int] = None, what: str = "F values") -> list:
        return self.f_n(self.length(limit, what))

    def ef_vec(self, limit: Optional[int] = None, what: str = "EF values") -> list:
        return self.ef_n(self.length(limit, what))

    def digest_vec(self, limit: Optional[int] = None, what: str = "digests") -> list:
        return self.digest_n(self.length(limit, what))


class Encodable:
    """Byte round trip for proof objects that define ``encode(Writer)`` and
    ``decode(Reader)`` (classmethod); decoding must consume every byte."""

    def to_bytes(self) -> bytes:
        w = Writer()
        self.encode(w)
        return w.getvalue()

    @classmethod
    def from_bytes(cls, data, limits: DecodeLimits = NO_LIMITS):
        r = Reader(data, limits)
        out = cls.decode(r)
        r.finish()
        return out
