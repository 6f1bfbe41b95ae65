"""Poseidon2 (PCS.md §2), leaf hashing, compression and Merkle trees (PCS.md §3)."""
from .merkle import compress_host, hash_host
from .poseidon2 import permute, permute_host

__all__ = ["permute", "permute_host", "hash_host", "compress_host"]
