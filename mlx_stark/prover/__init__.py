"""Prover stages of SWIRL (constraints.md §4, pcs.md §6–§8)."""
