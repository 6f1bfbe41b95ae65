"""AIR model: the ``Air`` base class, symbolic expressions and builder, the constraint DAG
(constraints.md §1) and its walks, its evaluation over algebras, the linear forms of its outputs
that the prover evaluates, and trace checks."""
from .base import Air
from .builder import (
    FilteredBuilder,
    Interaction,
    LookupBus,
    PermutationCheckBus,
    Row,
    SymbolicBuilder,
)
from .check import (
    AirTrace,
    ConstraintNotSatisfied,
    UnbalancedInteractions,
    check_constraints,
    check_interaction_balance,
    symbolic_dag,
    trace_inputs,
)
from .dag import (
    DagBuilder,
    DagInteraction,
    DagNode,
    DerivedCache,
    NodeKind,
    SymbolicConstraintsDag,
    TraceWidth,
    build_dag,
    max_constraint_degree,
)
from .evaluate import (BaseArrays, DagInputs, DagValues, ExtArrays, Host, evaluate_dag,
                       evaluate_dag_ef)
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
from .forms import Form, Leaves, slot_node

__all__ = [
    # AIR API
    "Air", "SymbolicBuilder", "FilteredBuilder", "Interaction", "LookupBus", "PermutationCheckBus",
    "Row",
    # expressions
    "Expr", "Variable", "IsFirstRow", "IsLastRow", "IsTransition", "Constant", "Add", "Sub",
    "Neg", "Mul", "Entry", "SymbolicVariable", "as_expr", "expr_sum", "expr_product", "xor",
    "xor3", "andn", "bool_check",
    # DAG
    "SymbolicConstraintsDag", "DagNode", "NodeKind", "DagInteraction", "DagBuilder", "TraceWidth",
    "DerivedCache", "build_dag", "max_constraint_degree",
    # linear forms of the DAG's outputs
    "Form", "Leaves", "slot_node",
    # evaluation and checks
    "evaluate_dag", "evaluate_dag_ef", "DagInputs", "DagValues", "BaseArrays", "ExtArrays", "Host",
    "check_constraints", "check_interaction_balance", "AirTrace", "ConstraintNotSatisfied",
    "UnbalancedInteractions", "symbolic_dag", "trace_inputs",
]
