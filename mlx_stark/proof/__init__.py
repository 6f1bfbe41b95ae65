"""Proof objects and their byte encoding (pcs.md §10, constraints.md §7)."""
from .pcs import StackingProof, WhirProof

__all__ = ["StackingProof", "WhirProof"]
