"""The whole proof (constraints.md §7.1) and its byte encoding (§7.2 with pcs.md §10.2)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Tuple

from ..errors import ProofDecodeError
from .codec import NO_LIMITS, DecodeLimits, Encodable, Reader, Writer
from .constraints import BatchConstraintProof, GkrProof
from .pcs import StackingProof, WhirProof

CODEC_VERSION = 3


@dataclass
class TraceVData:
    """Per present AIR: its trace ``log_height`` (may be below ``l_skip``) and the roots of its
    cached-main commitments (tuples of 8 ints)."""

    log_height: int
    cached_commitments: List[Tuple[int, ...]] = field(default_factory=list)


@dataclass(eq=False)
class Proof(Encodable):
    common_main_commit: Tuple[int, ...]
    trace_vdata: List[Optional[TraceVData]]  # per AIR id; None = absent
    public_values: List[List[int]]  # per AIR id
    gkr_proof: GkrProof
    batch_constraint_proof: BatchConstraintProof
    stacking_proof: StackingProof
    whir_proof: WhirProof

    def __eq__(self, other) -> bool:
        return isinstance(other, Proof) and self.to_bytes() == other.to_bytes()

    def encode(self, w: Writer) -> None:
        w.u32(CODEC_VERSION)
        w.digest(self.common_main_commit)
        n = len(self.trace_vdata)
        w.usize(n)
        bitmap = bytearray((n + 7) // 8)
        for a, tv in enumerate(self.trace_vdata):
            if tv is not None:
                bitmap[a // 8] |= 1 << (a % 8)
        for b in bitmap:
            w.u8(b)
        for tv in self.trace_vdata:
            if tv is not None:
                w.usize(tv.log_height)
                w.digest_slice(tv.cached_commitments)
        w.usize(len(self.public_values))
        for pvs in self.public_values:
            w.f_slice(pvs)
        self.gkr_proof.encode(w)
        self.batch_constraint_proof.encode(w)
        self.stacking_proof.encode(w)
        self.whir_proof.encode(w)

    @classmethod
    def decode(cls, r: Reader) -> "Proof":
        version = r.u32()
        if version != CODEC_VERSION:
            raise ProofDecodeError(f"codec version {version}, expected {CODEC_VERSION}")
        commit = r.digest()
        lim = r.limits
        n = r.length(lim.airs, "AIRs")
        r.require((n + 7) // 8, 1, "presence bitmap")
        bitmap = [r.u8() for _ in range((n + 7) // 8)]
        if n % 8 and bitmap[-1] >> (n % 8):
            raise ProofDecodeError("presence bitmap has bits set beyond the number of AIRs")
        trace_vdata = []
        for a in range(n):
            if bitmap[a // 8] >> (a % 8) & 1:
                log_height = r.length(lim.log_height, "trace log height")
                num = r.length(lim.cached_commitments, "cached commitments")
                r.require(num, 32, "cached commitments")
                trace_vdata.append(TraceVData(log_height, r.digest_n(num)))
            else:
                trace_vdata.append(None)
        num_pv = r.length(lim.airs, "public-value lists")
        r.require(num_pv, 4, "public values")
        public_values = []
        for _ in range(num_pv):
            k = r.length(lim.public_values, "public values of an AIR")
            r.require(k, 4, "public values")
            public_values.append(r.f_n(k))
        return cls(commit, trace_vdata, public_values, GkrProof.decode(r),
                   BatchConstraintProof.decode(r), StackingProof.decode(r), WhirProof.decode(r))

    @classmethod
    def from_bytes(cls, data, limits: DecodeLimits = NO_LIMITS) -> "Proof":
        """Decode proof bytes; raises :class:`~mlx_stark.errors.ProofDecodeError` (a
        ``VerificationError``) on malformed input or a length above ``limits``. All bytes
        must be consumed."""
        try:
            return super().from_bytes(data, limits)
        except ProofDecodeError:
            raise
        except (ValueError, TypeError, IndexError, OverflowError, MemoryError) as e:
            raise ProofDecodeError(f"malformed proof bytes: {e}") from None
