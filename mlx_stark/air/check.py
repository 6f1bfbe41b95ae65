"""Debug-time checks of concrete traces against an AIR: every constraint on every row
(constraints.md §1.4) and bus balance of the interactions (§1.5, §3).

Both checks are whole-array work (the DAG interpreter over ``(H,)`` columns) and raise an
:class:`~mlx_stark.errors.InvalidInputError` subclass naming what fails.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, List, Optional, Sequence, Tuple

import mlx.core as mx
import numpy as np

from ..errors import ConstraintNotSatisfied, InvalidInputError, UnbalancedInteractions
from ..field.bb import P, U32
from .base import Air
from .dag import SymbolicConstraintsDag, build_dag
from .evaluate import BaseArrays, DagInputs, evaluate_dag


@dataclass
class AirTrace:
    """Concrete trace data of one AIR: the common main ``(H, width)`` uint32 matrix, its
    public values, and the cached main matrices ``(H, cached_widths[k])`` in declaration order.
    The preprocessed trace is the AIR's own (``air.preprocessed_trace()``)."""

    air: Air
    common_main: Any
    public_values: Sequence[int] = ()
    cached_mains: Sequence[Any] = field(default_factory=tuple)
    dag: Optional[SymbolicConstraintsDag] = None  # the AIR's DAG when already built (keygen)

    @property
    def height(self) -> int:
        return int(self.common_main.shape[0])


def symbolic_dag(air: Air) -> SymbolicConstraintsDag:
    """Run ``air.eval`` symbolically and build its DAG (§1.6)."""
    b = air.symbolic()
    return build_dag(b.constraints, b.interactions)


def _matrix(x, what: str, width: int) -> mx.array:
    """``x`` as a validated ``(H, width)`` canonical uint32 MLX array."""
    if isinstance(x, mx.array):
        if x.dtype not in (mx.uint8, mx.uint16, mx.uint32, mx.uint64):
            raise InvalidInputError(f"{what}: needs an unsigned integer dtype, got {x.dtype}")
        if x.ndim != 2:
            raise InvalidInputError(f"{what}: expected a (height, width) matrix, got shape {x.shape}")
        arr = x
        too_big = x.size and int(mx.max(x).item()) >= P
    else:
        a = np.asarray(x)
        if a.dtype.kind not in "ui":
            raise InvalidInputError(f"{what}: needs an integer dtype, got {a.dtype}")
        if a.ndim != 2:
            raise InvalidInputError(f"{what}: expected a (height, width) matrix, got shape {a.shape}")
        too_big = a.size and (a.min() < 0 or a.max() >= P)
        arr = mx.array(a.astype(np.uint32)) if not too_big else None
    if too_big:
        raise InvalidInputError(f"{what}: entries must be canonical field elements in [0, p)")
    if arr.shape[1] != width:
        raise InvalidInputError(f"{what}: width {arr.shape[1]}, the AIR declares {width}")
    if arr.shape[0] == 0:
        raise InvalidInputError(f"{what}: height 0")
    return arr.astype(U32)


def _local_next(m: mx.array) -> Tuple[mx.array, mx.array]:
    """Column-major ``(w, H)`` views of the rows and of the cyclically next rows."""
    cols = mx.transpose(m)
    nxt = mx.concatenate([cols[:, 1:], cols[:, :1]], axis=1)
    return cols, nxt


def trace_inputs(
    air: Air,
    common_main,
    public_values: Sequence[int],
    preprocessed=None,
    cached: Sequence = (),
) -> Tuple[DagInputs, int]:
    """Validate a trace and build the interpreter inputs over all ``H`` rows (next row cyclic,
    selectors of §1.4). Returns ``(inputs, H)``."""
    name = air.name
    if len(cached) != len(air.cached_widths):
        raise InvalidInputError(
            f"{name}: {len(cached)} cached main matrices given, the AIR declares "
            f"{len(air.cached_widths)}"
        )
    parts = [
        _matrix(c, f"{name} cached main {k}", w)
        for k, (c, w) in enumerate(zip(cached, air.cached_widths))
    ]
    if air.width:
        parts.append(_matrix(common_main, f"{name} common main", air.width))
    if preprocessed is None:
        preprocessed = air.preprocessed_trace()
    prep = None
    pw = air.preprocessed_width()
    if pw is not None:
        if preprocessed is None:
            raise InvalidInputError(f"{name}: the AIR has a preprocessed trace but none was given")
        prep = _matrix(preprocessed, f"{name} preprocessed trace", pw)
    heights = {int(m.shape[0]) for m in parts + ([prep] if prep is not None else [])}
    if len(heights) != 1:
        raise InvalidInputError(f"{name}: trace parts have different heights {sorted(heights)}")
    (height,) = heights
    pv = [int(v) for v in public_values]
    if len(pv) != air.num_public_values:
        raise InvalidInputError(
            f"{name}: {len(pv)} public values given, the AIR declares {air.num_public_values}"
        )
    if any(not 0 <= v < P for v in pv):
        raise InvalidInputError(f"{name}: public values must be canonical field elements")
    rows = mx.arange(height, dtype=U32)
    is_last = (rows == height - 1).astype(U32)
    inputs = DagInputs(
        main=[_local_next(m) for m in parts],
        preprocessed=_local_next(prep) if prep is not None else None,
        public_values=pv,
        is_first_row=(rows == 0).astype(U32),
        is_last_row=is_last,
        is_transition=1 - is_last,
    )
    return inputs, height


_FLUSH = 128  # constraints whose pass/fail flags are evaluated together


def check_constraints(
    air: Air,
    trace,
    public_values: Sequence[int],
    preprocessed=None,
    cached: Sequence = (),
    dag: Optional[SymbolicConstraintsDag] = None,
) -> None:
    """Check every constraint of ``air`` on every row of the trace.

    ``trace``: the common main, ``(H, air.width)`` uint32 (NumPy or MLX); ``cached``: the
    cached main matrices; ``preprocessed`` defaults to ``air.preprocessed_trace()``.
    Raises :class:`ConstraintNotSatisfied` for the first failing constraint (in constraint
    order) at its first failing row, :class:`InvalidInputError` for malformed input; returns
    ``None`` when all constraints hold.
    """
    dag = dag or symbolic_dag(air)
    inputs, height = trace_inputs(air, trace, public_values, preprocessed, cached)
    found = first_violation(dag, inputs, height)
    if found is not None:
        i, row = found
        raise ConstraintNotSatisfied(air.name, i, dag.constraint_idx[i], row,
                                     dag.expression(dag.constraint_idx[i]))


def first_violation(dag: SymbolicConstraintsDag, inputs: DagInputs, height: int):
    """``(constraint position, first failing row)`` of the first constraint (in constraint
    order) that is nonzero on some of the ``height`` rows of ``inputs``, or ``None``."""
    pending: List[Tuple[int, Any, Any]] = []
    found: List[Tuple[int, int]] = []

    def flush():
        mx.eval([x for _, f, r in pending for x in (f, r)])
        found.extend((i, int(r.item())) for i, f, r in pending if f.item())
        pending.clear()

    def sink(i, v):
        if found:
            return
        if isinstance(v, int):  # a constant constraint: the same value on every row
            if v:
                found.append((i, 0))
            return
        nz = mx.broadcast_to(v != 0, (height,))
        pending.append((i, mx.any(nz), mx.argmax(nz.astype(U32))))
        if len(pending) >= _FLUSH:
            flush()

    evaluate_dag(dag, BaseArrays, inputs, constraint_sink=sink)
    flush()
    return min(found) if found else None


def check_interaction_balance(traces: Sequence[Optional[AirTrace]]) -> None:
    """Check that every bus balances over the present AIRs (``None`` entries are absent):
    for each ``(bus, message)``, the field sum of the counts over all rows is zero (§1.5).

    Exact multiset comparison on the host: one row of ``[bus, len, message..]`` per
    (interaction, row) with a nonzero count, grouped with ``np.unique``. Raises
    :class:`UnbalancedInteractions` listing the first unbalanced messages.
    """
    blocks: List[Tuple[int, int, np.ndarray]] = []  # (bus, len, [count, message..] rows)
    for t in traces:
        if t is None:
            continue
        dag = t.dag if t.dag is not None else symbolic_dag(t.air)
        if not dag.interactions:
            continue
        inputs, height = trace_inputs(t.air, t.common_main, t.public_values, cached=t.cached_mains)
        values = evaluate_dag(dag, BaseArrays, inputs, constraint_sink=lambda i, v: None)
        for it, (msg, count) in zip(dag.interactions, values.interactions):
            cols = [_column(v, height) for v in [count, *msg]]
            mx.eval(cols)
            arr = np.stack([np.array(c, dtype=np.uint64) for c in cols], axis=1)
            blocks.append((it.bus_index, len(msg), arr[arr[:, 0] != 0]))
    total_rows = sum(b[2].shape[0] for b in blocks)
    if total_rows == 0:
        return
    rows = np.zeros((total_rows, 2 + max(b[1] for b in blocks)), dtype=np.uint64)
    counts = np.empty(total_rows, dtype=np.uint64)
    at = 0
    for bus, length, arr in blocks:
        n = arr.shape[0]
        rows[at:at + n, 0] = bus
        rows[at:at + n, 1] = length
        rows[at:at + n, 2:2 + length] = arr[:, 1:]
        counts[at:at + n] = arr[:, 0]
        at += n
    uniq, inverse = np.unique(rows, axis=0, return_inverse=True)
    totals = np.zeros(uniq.shape[0], dtype=np.uint64)
    np.add.at(totals, inverse.reshape(-1), counts)  # < 2^31 per row: exact for < 2^33 rows
    bad = np.nonzero(totals % P)[0]
    if bad.size:
        shown = []
        for j in bad[:5]:
            bus, length = int(uniq[j, 0]), int(uniq[j, 1])
            net = int(totals[j] % P)
            net = net - P if net > P // 2 else net
            message = [int(x) for x in uniq[j, 2:2 + length]]
            shown.append(f"bus {bus} message {message}: net count {net}")
        raise UnbalancedInteractions(
            f"{bad.size} unbalanced (bus, message) pair(s): " + "; ".join(shown)
        )


def _column(v, height: int) -> mx.array:
    """A value of the base interpreter (host int or array) as an ``(H,)`` uint32 column."""
    if isinstance(v, int):
        return mx.full((height,), v, dtype=U32)
    return mx.broadcast_to(v, (height,))
