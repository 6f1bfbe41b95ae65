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
