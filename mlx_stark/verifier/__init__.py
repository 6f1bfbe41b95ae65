"""Verifier of SWIRL (PCS.md §7–§8, §10.3; CONSTRAINTS.md §8). Independent of ``prover/``."""
