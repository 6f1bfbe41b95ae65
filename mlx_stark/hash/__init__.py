"""Poseidon2 (pcs.md §2), leaf hashing, compression and Merkle trees (pcs.md §3)."""
from .merkle import (MerkleTree, compress, compress_host, flatten_ext_rows, hash_host, hash_rows,
                     merkle_verify, merkle_verify_batch, tree_compress_host)
from .poseidon2 import permute, permute_host

__all__ = [
    "permute", "permute_host", "hash_rows", "hash_host", "compress", "compress_host",
    "tree_compress_host", "MerkleTree", "merkle_verify", "merkle_verify_batch", "flatten_ext_rows",
]
