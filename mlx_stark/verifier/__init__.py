"""Verifier of SWIRL (pcs.md §7–§8, §10.3; constraints.md §8). Independent of ``prover/``."""
