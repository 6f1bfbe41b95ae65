"""Proof objects and their byte encoding (PCS.md §10, CONSTRAINTS.md §7)."""
from .pcs import StackingProof, WhirProof

__all__ = ["StackingProof", "WhirProof"]
