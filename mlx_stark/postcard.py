"""Writer for the postcard 1.x wire format (serde), as far as the verifying-key prehash needs
it (constraints.md §2.4). Postcard is not self-describing: no field names, no struct framing.

* unsigned ``u16/u32/u64/usize``: LEB128 varint; ``u8``: one raw byte;
* signed ``isize/i64``: zigzag, then varint; ``bool``: one byte;
* ``Option``: ``00`` or ``01`` + value; sequences: varint length + elements; fixed arrays and
  tuples: elements only; enums: varint variant index + the variant's fields;
* BabyBear ``F``: varint of its Montgomery form ``v·2^32 mod p`` (Plonky3 0.4.3).
"""
from __future__ import annotations

from typing import Callable, Iterable, Optional, TypeVar

from .field.bb import P

T = TypeVar("T")


class PostcardWriter:
    def __init__(self):
        self._buf = bytearray()

    def bytes(self) -> bytes:
        return bytes(self._buf)

    def varint(self, v: int) -> "PostcardWriter":
        if v < 0:
            raise ValueError(f"varint of a negative value {v}")
        while True:
            byte = v & 0x7F
            v >>= 7
            if v:
                self._buf.append(byte | 0x80)
            else:
                self._buf.append(byte)
                return self

    def u8(self, v: int) -> "PostcardWriter":
        if not 0 <= v < 256:
            raise ValueError(f"u8 out of range: {v}")
        self._buf.append(v)
        return self

    def signed(self, v: int) -> "PostcardWriter":
        """``isize``/``i64``: zigzag ``(v << 1) ^ (v >> 63)`` (= 2v or −2v−1), then varint."""
        return self.varint(2 * v if v >= 0 else -2 * v - 1)

    def bool(self, v: bool) -> "PostcardWriter":
        self._buf.append(1 if v else 0)
        return self

    def field(self, v: int) -> "PostcardWriter":
        """A BabyBear element (canonical int) in Montgomery form."""
        return self.varint((v % P << 32) % P)

    def option(self, v: Optional[T], write: Callable[["PostcardWriter", T], object]):
        if v is None:
            self._buf.append(0)
        else:
            self._buf.append(1)
            write(self, v)
        return self

    def seq(self, items: Iterable[T], write: Callable[["PostcardWriter", T], object]):
        items = list(items)
        self.varint(len(items))
        for item in items:
            write(self, item)
        return self

    def variant(self, index: int) -> "PostcardWriter":
        return self.varint(index)


class PostcardReader:
    """Strict reader of what :class:`PostcardWriter` writes: minimal varints only, booleans and
    option tags 0 or 1, enum variants in range, field elements below p, no trailing bytes.
    Every failure raises ``error(message)``."""

    _MONT_INV = pow(1 << 32, -1, P)

    def __init__(self, data: bytes, error: Callable[[str], Exception]):
        self._data = bytes(data)
        self._pos = 0
        self._error = error

    def fail(self, message: str):
        raise self._error(f"{message} (at byte {self._pos})")

    def finish(self) -> None:
        if self._pos != len(self._data):
            self.fail(f"{len(self._data) - self._pos} trailing bytes")

    def _byte(self) -> int:
        if self._pos >= len(self._data):
            self.fail("truncated")
        b = self._data[self._pos]
        self._pos += 1
        return b

    def varint(self, limit: int = 1 << 64) -> int:
        data, pos = self._data, self._pos  # locals: a Keccak key holds 170k varints
        v = shift = 0
        while True:
            if pos >= len(data):
                self.fail("truncated")
            b = data[pos]
            pos += 1
            v |= (b & 0x7F) << shift
            if b < 0x80:
                if b == 0 and shift:
                    self._pos = pos
                    self.fail("non-minimal varint")
                break
            shift += 7
            if shift >= 70:
                self.fail("varint longer than 10 bytes")
        self._pos = pos
        if v >= limit:
            self.fail(f"value {v} out of range (< {limit})")
        return v

    def u8(self) -> int:
        return self._byte()

    def signed(self) -> int:
        z = self.varint()
        return z >> 1 if z & 1 == 0 else -((z + 1) >> 1)

    def bool(self) -> bool:
        b = self._byte()
        if b > 1:
            self.fail(f"bool byte {b}")
        return b == 1

    def field(self) -> int:
        return self.varint(P) * self._MONT_INV % P

    def option(self, read: Callable[["PostcardReader"], T]) -> Optional[T]:
        return read(self) if self.bool() else None

    def seq(self, read: Callable[["PostcardReader"], T]) -> list:
        # every element takes at least one byte: a length beyond the input is rejected at once
        n = self.varint(len(self._data) - self._pos + 1)
        return [read(self) for _ in range(n)]

    def variant(self, count: int) -> int:
        return self.varint(count)
