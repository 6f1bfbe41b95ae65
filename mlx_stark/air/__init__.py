"""AIR model: the ``Air`` base class, symbolic expressions, the symbolic builder."""
from .base import Air
from .builder import FilteredBuilder, Interaction, LookupBus, PermutationCheckBus, Row, SymbolicBuilder
from .expr import (
    Add,
    Constant,
    Entry,
    Expr,
    IsFirstRow,
    IsLastRow,
    IsTransition,
    Mul,
    Neg,
    Sub,
    SymbolicVariable,
    Variable,
    andn,
    as_expr,
    bool_check,
    expr_product,
    expr_sum,
    xor,
    xor3,
)

__all__ = [
    "Air", "SymbolicBuilder", "FilteredBuilder", "Interaction", "LookupBus", "PermutationCheckBus",
    "Row", "Expr", "Variable", "IsFirstRow", "IsLastRow", "IsTransition", "Constant", "Add", "Sub",
    "Neg", "Mul", "Entry", "SymbolicVariable", "as_expr", "expr_sum", "expr_product", "xor",
    "xor3", "andn", "bool_check",
]
