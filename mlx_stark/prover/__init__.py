"""Prover stages of SWIRL (CONSTRAINTS.md §4, PCS.md §6–§8)."""
