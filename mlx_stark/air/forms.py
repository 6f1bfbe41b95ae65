"""What the prover evaluates on a constraint DAG: linear forms of its outputs, and where the
DAG's leaves get their values.

The prover never needs single constraint values, only combinations with host EF weights:
``Σ_i λ^i·C_i``, ``Σ_σ eq3b_σ·count_σ``, ``Σ_σ eq3b_σ·Σ_j β^j·m_{σ,j} + const`` — a
:class:`Form` over output *slots*: ``("c", i)`` = constraint ``i`` in ``constraint_idx`` order,
``("n", σ)`` = the count of interaction ``σ``, ``("m", σ, j)`` = its message field ``j``.

The evaluated points are given as an input matrix ``(num_inputs, P)`` (base field) or
``(num_inputs, P, 4)`` (extension field): one row per trace column the DAG reads.
:class:`Leaves` says which row each leaf reads, or which constant it is.

Pure data and host code: both evaluators of forms — the MLX-ops interpreters
(:mod:`mlx_stark.prover.constraint_eval`) and the generated kernels
(:mod:`mlx_stark.custom_kernels.constraints`) — take these descriptions.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, List, Optional, Tuple

from ..field.host import EF
from .dag import SymbolicConstraintsDag
from .evaluate import DagInputs


@dataclass
class Form:
    """``const + Σ weight·value(slot)`` over ``terms = [(slot, weight)]`` (module docstring)."""

    terms: List[Tuple[tuple, EF]]
    const: EF


def slot_node(dag: SymbolicConstraintsDag, slot: tuple) -> int:
    """The DAG node of an output slot."""
    if slot[0] == "c":
        return dag.constraint_idx[slot[1]]
    it = dag.interactions[slot[1]]
    return it.count if slot[0] == "n" else it.message[slot[2]]


class Leaves:
    """Where the leaves of ``dag`` get their values, for one trace.

    ``leaf(i) -> (is_input, value)`` for a leaf node ``i``: ``(True, row)`` — the node's value
    is row ``row`` of the input matrix (``num_inputs`` rows) — or ``(False, c)`` — the node is
    the constant ``c`` (canonical int: a DAG constant or a public value).
    ``make_inputs(get) -> DagInputs``: the same leaves for the DAG interpreter
    (:func:`mlx_stark.air.evaluate.evaluate_dag`), reading input row ``k`` as ``get(k)``."""

    def __init__(self, dag: SymbolicConstraintsDag, leaf: Callable[[int], Tuple[bool, int]],
                 num_inputs: int, make_inputs: Callable[[Callable], DagInputs]):
        self.dag, self.leaf, self.num_inputs = dag, leaf, num_inputs
        self.make_inputs = make_inputs
        self._inputs: Optional[Tuple[Tuple[int, int], ...]] = None

    def inputs(self) -> Tuple[Tuple[int, int], ...]:
        """``((node, input row), ...)`` of every column-reading leaf of the DAG, ascending
        (computed on first use)."""
        if self._inputs is None:
            out = []
            for i in range(len(self.dag.nodes)):
                if not self.dag.children(i):
                    is_input, row = self.leaf(i)
                    if is_input:
                        out.append((i, row))
            self._inputs = tuple(out)
        return self._inputs
