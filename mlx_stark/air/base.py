"""The ``Air`` base class users subclass (constraints.md §1.1).

An AIR declares its trace widths and public-value count as class (or instance) attributes and
writes its constraints in ``eval(b)`` against a :class:`~mlx_stark.air.builder.SymbolicBuilder`::

    class FibonacciAir(Air):
        width = 2
        num_public_values = 3

        def eval(self, b):
            cur, nxt = b.local, b.next
            a, x, y = b.public_values
            b.when_first_row().assert_eq(cur[0], a)
            ...
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Optional, Tuple

import numpy as np

from .builder import SymbolicBuilder


class Air(ABC):
    """Base class of every AIR.

    Attributes (override on the subclass or set per instance):

    * ``width`` — width of the common main part (part index ``len(cached_widths)`` in the DAG).
    * ``cached_widths`` — widths of the cached main parts, in declaration order (parts ``0..``).
    * ``num_public_values`` — number of public values read through ``b.public_values``.
    * ``is_required`` — whether every proof must contain a trace for this AIR.
    * ``name`` — display name (defaults to the class name; not part of the verifying key).

    Override :meth:`preprocessed_trace` for a fixed preprocessed trace, and write the
    constraints in :meth:`eval`, whose argument ``b`` is a
    :class:`~mlx_stark.air.builder.SymbolicBuilder` (``help(SymbolicBuilder)`` documents each
    method):

    * rows: ``b.local[c]``, ``b.next[c]`` (common main, this row / next row),
      ``b.cached_local[k][c]``, ``b.cached_next[k][c]``, ``b.preprocessed_local[c]``,
      ``b.preprocessed_next[c]``, ``b.public_values[j]``;
    * selectors: ``b.is_first_row``, ``b.is_last_row``, ``b.is_transition``;
    * constraints: ``b.assert_zero(e)``, ``b.assert_eq(x, y)``, ``b.assert_one(x)``,
      ``b.assert_bool(x)``, ``b.assert_zeros(es)``, ``b.assert_bools(xs)``;
    * filters (the assertion holds only where the condition is non-zero):
      ``b.when(cond)``, ``b.when_ne(x, y)``, ``b.when_first_row()``, ``b.when_last_row()``,
      ``b.when_transition()`` (use it for constraints that read ``b.next``);
    * interactions: ``b.push_interaction(bus, message, count, count_weight=1)``, or
      :class:`~mlx_stark.air.builder.PermutationCheckBus` / :class:`~mlx_stark.air.builder.LookupBus`;
    * expressions: ``+``, ``-``, ``*``, unary ``-``, Python ints, and the helpers of
      :class:`~mlx_stark.air.expr.Expr` (``square``, ``cube``, ``xor``, ``xor3``, ``andn``,
      ``bool_check``, ``exp_u64``).

    Check a trace against the AIR with :func:`mlx_stark.check_constraints` before proving.
    """

    width: int = 0
    cached_widths: Tuple[int, ...] = ()
    num_public_values: int = 0
    is_required: bool = False

    @property
    def name(self) -> str:
        return type(self).__name__

    def preprocessed_trace(self) -> Optional[np.ndarray]:
        """The fixed preprocessed trace as a ``(height, width)`` uint32 array, or ``None``."""
        return None

    def preprocessed_width(self) -> Optional[int]:
        trace = self.preprocessed_trace()
        return None if trace is None else int(trace.shape[1])

    @property
    def main_width(self) -> int:
        return sum(self.cached_widths) + self.width

    @abstractmethod
    def eval(self, b: SymbolicBuilder) -> None:
        """Record this AIR's constraints and interactions on ``b`` (a
        :class:`~mlx_stark.air.builder.SymbolicBuilder`; the class docstring lists its API).
        It runs on symbolic variables, not on trace values: the recorded expressions define
        the AIR."""

    def symbolic(self) -> SymbolicBuilder:
        """Run ``eval`` on a fresh symbolic builder and return it (constraints, interactions)."""
        b = SymbolicBuilder(
            common_width=self.width,
            cached_widths=tuple(self.cached_widths),
            preprocessed_width=self.preprocessed_width(),
            num_public_values=self.num_public_values,
        )
        self.eval(b)
        return b

    def __repr__(self) -> str:
        return f"{self.name}(width={self.width}, cached_widths={tuple(self.cached_widths)})"
