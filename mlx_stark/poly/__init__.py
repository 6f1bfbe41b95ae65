"""Polynomial toolkit: NTTs over two-adic subgroups (:mod:`ntt`), multilinear / prismalinear
tables on device (:mod:`mle`), and host formulas of the protocol's kernels (:mod:`host`: EF
scalars, no device arrays)."""
from . import host
from .mle import (
    eq_suffix_tables, eq_table, eq_table_squares, eval_univariate, ext_powers, fold_lowest, fold_skip,
    interpolate_at_integers, mle_eval, mobeq_table, mobius, product_table, zeta,
)
from .ntt import coset_lde, dft, idft, interpolate_cosets, lde

__all__ = [
    "host", "dft", "idft", "lde", "coset_lde", "zeta", "mobius", "product_table", "eq_table", "eq_suffix_tables",
    "eq_table_squares", "mobeq_table", "fold_lowest", "mle_eval", "ext_powers", "eval_univariate", "fold_skip",
    "interpolate_at_integers", "interpolate_cosets",
]
