"""Prove Keccak-f permutations (same options as ``mlx-stark keccakf``)."""
from mlx_stark.cli import keccakf

if __name__ == "__main__":
    keccakf()
