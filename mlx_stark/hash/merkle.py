"""Leaf hash, 2-to-1 compression and Merkle trees with grouped leaves (PCS.md §3).

Host functions work on Python ints (digests are tuples of 8 ints).
"""
from __future__ import annotations

from ..errors import InvalidInputError
from .poseidon2 import WIDTH, permute_host

RATE = 8
DIGEST = 8


# ---------------------------------------------------------------- host (Python ints)
def hash_host(values) -> tuple:
    """Leaf hash ``H(v)``: Plonky3 ``PaddingFreeSponge<P, 16, 8, 8>`` (PCS.md §3.1).

    ``values``: any sequence of canonical base elements. Each block of up to 8 overwrites
    the front of the state (a short last block leaves the other lanes as they are), then the
    state is permuted. No padding: the empty input hashes to eight zeros.
    """
    v = [int(x) for x in values]
    state = [0] * WIDTH
    for start in range(0, len(v), RATE):
        block = v[start:start + RATE]
        state[:len(block)] = block
        state = permute_host(state)
    return tuple(state[:DIGEST])


def compress_host(left, right) -> tuple:
    """``C(a, b) = P(a || b)[0..8]``: Plonky3 ``TruncatedPermutation<P, 2, 8, 16>`` (PCS.md §3.2)."""
    a, b = list(left), list(right)
    if len(a) != DIGEST or len(b) != DIGEST:
        raise InvalidInputError("compression takes two digests of 8 elements")
    return tuple(permute_host(a + b)[:DIGEST])
