"""Per-trace data of the constraint stage: a present trace's *table*, its layout, where the
DAG's leaves read it, and the linear forms every stage evaluates (constraints.md §6.1).

Every column the AIR reads — trace columns, rotated columns and the three selector columns —
is a column of one logical table ``(H, W_tot)`` uint32: ``[parts in proof order | the same
rotated by one row (if need_rot) | is_first, is_last, is_transition]``. Only the parts are
stored (``TraceData.table``, the input matrix itself for a trace of one part); the rotated and
selector columns are built for the rows a stage reads (:meth:`TraceData.columns`). Every stage
evaluates λ-, eq3b- and
β-combinations of the DAG's outputs (:mod:`mlx_stark.air.forms`,
:mod:`mlx_stark.prover.constraint_eval`) on the table columns the DAG reads (``needed``); only
the points change (the GKR leaves here: the rows; round 0 and the multilinear rounds: see
:mod:`.round0`, :mod:`.mle_rounds`).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, List, Optional, Tuple

import mlx.core as mx

from ... import arrays, custom_kernels
from ...air.dag import NodeKind, SymbolicConstraintsDag
from ...air.evaluate import DagInputs
from ...air.expr import Entry
from ...air.forms import Form, Leaves
from ...errors import InvalidInputError, ProverError
from ...field.bb import P, U32
from ...field.host import EF
from ...layout import trace_parts
from ..constraint_eval import DagEvaluator


# ------------------------------------------------------------------ per-trace data
class _Cols:
    """Columns of one trace part as the DAG interpreter indexes them: ``cols[c]`` is input
    row ``pos[base + c]`` (``pos``: table column -> input row)."""

    __slots__ = ("get", "pos", "base")

    def __init__(self, get, pos: dict, base: int):
        self.get, self.pos, self.base = get, pos, base

    def __getitem__(self, c: int):
        return self.get(self.pos[self.base + c])


@dataclass
class TraceData:
    """One present trace, in sorted order, with its table layout (module docstring).

    ``needed``: the table columns the DAG reads (ascending): the rows of every evaluation's
    input. ``leaves``: where the DAG's leaves read those rows. ``evaluator`` evaluates
    constraints and interactions, ``interactions_evaluator`` interactions only."""

    air_id: int
    vk: Any
    dag: SymbolicConstraintsDag
    log_height: int
    n: int  # relative dimension h − l (may be negative)
    nt: int  # ñ = max(n, 0)
    table: Optional[mx.array]  # (H, wall) uint32, the parts only (see columns); None in a
    # description (describe_trace)
    part_offsets: List[int]  # proof part -> first table column
    part_widths: List[int]
    wall: int  # columns of all parts
    need_rot: bool
    public_values: List[int]
    norm: int  # (2^(−n))^(−1) for n < 0, else 1
    needed: List[int] = field(default_factory=list)
    leaves: Optional[Leaves] = None
    evaluator: Optional[DagEvaluator] = None
    interactions_evaluator: Optional[DagEvaluator] = None

    @property
    def height(self) -> int:
        return 1 << self.log_height

    @property
    def selector_offset(self) -> int:
        return self.wall * (2 if self.need_rot else 1)

    @property
    def width_total(self) -> int:
        """``W_tot``: columns of the logical table (parts, rotated parts, selectors)."""
        return self.selector_offset + len(_SELECTORS)

    @property
    def degree(self) -> int:
        return self.vk.max_constraint_degree

    @property
    def num_interactions(self) -> int:
        return len(self.dag.interactions)

    def column_of(self, node) -> int:
        """Table column of a trace-variable or selector node (§1.1 part numbering)."""
        if node.kind in _SELECTORS:
            return self.selector_offset + _SELECTORS[node.kind]
        var = node.var
        if var.entry == Entry.MAIN:
            base = self.part_offsets[self.vk.dag_main_part_index_to_commit_index(var.part_index)]
        elif var.entry == Entry.PREPROCESSED:
            base = self.part_offsets[1]
        else:
            raise ProverError(f"AIR {self.air_id}: unsupported variable {var!r}")
        return base + var.index + (self.wall if var.offset else 0)

    def opening_columns(self) -> List[List[Tuple[int, Optional[int]]]]:
        """Per proof part, its opened table columns in §6.7 order: ``(column, rotated column)``
        per column, the rotation ``None`` where the trace has none."""
        return [[(off + c, self.wall + off + c if self.need_rot else None) for c in range(w)]
                for off, w in zip(self.part_offsets, self.part_widths)]

    def openings(self, values: List[EF]) -> List[List[EF]]:
        """Per proof part, the flat opening list of §6.7 from the folded table's values
        ``values`` (``W_tot`` host EF, one per table column)."""
        return [[values[k] for pair in part for k in pair if k is not None]
                for part in self.opening_columns()]

    def columns(self, cols, lo: int = 0, hi: Optional[int] = None) -> mx.array:
        """Rows ``lo..hi`` (default: all ``H``) of the logical table's columns ``cols``
        (ascending): ``(hi − lo, len(cols))`` uint32. A rotated column reads its part column at
        rows ``lo+1..hi+1`` (cyclically); the selectors come from the row index."""
        h, wall, sel0 = self.height, self.wall, self.selector_offset
        hi = h if hi is None else hi
        cols = list(cols)
        direct = [c for c in cols if c < wall]
        rot = [c - wall for c in cols if wall <= c < sel0]
        sel = [c - sel0 for c in cols if c >= sel0]
        pieces = []
        if direct:
            pieces.append(_take_columns(self.table[lo:hi], direct))
        if rot:
            pieces.append(_take_columns(self.table[lo + 1:hi + 1], rot))
            if hi == h:  # the last row's successor is row 0
                pieces[-1] = mx.concatenate([pieces[-1], _take_columns(self.table[:1], rot)])
        if sel:
            rows = mx.arange(lo, hi, dtype=U32)
            last = (rows == h - 1).astype(U32)
            flags = [(rows == 0).astype(U32), last, 1 - last]
            pieces.append(mx.stack([flags[k] for k in sel], axis=1))
        return mx.concatenate(pieces, axis=1) if len(pieces) > 1 else pieces[0]

    def column_block(self, cols, lo: int = 0, n: Optional[int] = None) -> mx.array:
        """The logical table's columns ``cols`` (ascending) at rows ``lo .. lo + n − 1`` taken
        cyclically (``n`` rows, default ``H``; ``n > H`` from ``lo = 0`` is the table lifted,
        §0.3), transposed: ``(len(cols), n)`` uint32. One launch with native kernels."""
        h = self.height
        n = h if n is None else n
        kernel = custom_kernels.native("traces.column_block")
        if kernel is not None:
            return kernel(self.table, list(cols), lo, n, self.wall, self.selector_offset)
        if lo + n <= h:
            return arrays.transpose(self.columns(cols, lo, lo + n))
        return arrays.transpose(lift(self.columns(cols), -(-(lo + n) // h) * h)[lo:lo + n])

    # ---------------------------------------------------------------- linear forms
    def constraint_form(self, lam_powers: List[EF]) -> Form:
        """``Σ_i λ^i·C_i``."""
        return Form([(("c", i), lam_powers[i]) for i in range(len(self.dag.constraint_idx))],
                    EF.zero())

    def interaction_forms(self, eq3b: List[EF], beta: EF) -> List[Form]:
        """``[norm·Σ_σ eq3b_σ·count_σ, Σ_σ eq3b_σ·h_σ]`` (§6.1; ``h_σ`` without ``α``)."""
        num, den, const = [], [], EF.zero()
        for s, (it, w) in enumerate(zip(self.dag.interactions, eq3b)):
            num.append((("n", s), w * self.norm))
            bp = w
            for j in range(len(it.message)):
                den.append((("m", s, j), bp))
                bp = bp * beta
            const = const + bp * (it.bus_index + 1)
        return [Form(num, EF.zero()), Form(den, const)]

    def round_forms(self, lam_powers: List[EF], eq3b: List[EF], beta: EF) -> List[Form]:
        """``[Σ_i λ^i·C_i, numerator, denominator]``: what the multilinear rounds evaluate."""
        return [self.constraint_form(lam_powers)] + self.interaction_forms(eq3b, beta)

    def gkr_forms(self, beta: EF) -> List[Form]:
        """``[norm·count_σ, Σ_j β^j·m_{σ,j} + β^len·(bus_σ + 1)]`` per interaction ``σ``: the
        GKR leaves' numerator and denominator (§5.2, without ``α``)."""
        forms = []
        for s, it in enumerate(self.dag.interactions):
            ws, bp = [], EF.one()
            for j in range(len(it.message)):
                ws.append((("m", s, j), bp))
                bp = bp * beta
            forms += [Form([(("n", s), EF(self.norm))], EF.zero()),
                      Form(ws, bp * (it.bus_index + 1))]
        return forms


_SELECTORS = {NodeKind.IS_FIRST_ROW: 0, NodeKind.IS_LAST_ROW: 1, NodeKind.IS_TRANSITION: 2}


def _take_columns(matrix: mx.array, cols: List[int]) -> mx.array:
    """Columns ``cols`` (ascending) of ``matrix`` ``(R, C)``: a slice where they are
    contiguous (a gather is several times slower on the CPU), else a gather."""
    if cols[-1] - cols[0] + 1 == len(cols):
        return matrix[:, cols[0]:cols[-1] + 1]
    return arrays.take(matrix, cols, axis=1)


def lift(table: mx.array, rows: int) -> mx.array:
    """Cyclic repetition of a ``(H, …)`` table to ``rows ≥ H`` rows (§0.3)."""
    reps = rows // table.shape[0]
    return table if reps == 1 else mx.tile(table, (reps,) + (1,) * (table.ndim - 1))


def _reads_column(node) -> bool:
    return node.kind in _SELECTORS or (
        node.kind == NodeKind.VARIABLE and node.var.entry in (Entry.MAIN, Entry.PREPROCESSED))


def prepare_trace(pk, l_skip: int, t) -> TraceData:
    """Table, layout, leaves and evaluators of a present trace ``t`` (attributes ``air_id``,
    ``common_main``, ``cached_mains``, ``public_values``, ``log_height``; matrices ``(H, w)``
    uint32).

    The proof then holds the trace once: ``t.common_main`` and ``t.cached_mains`` become views
    of the table's columns (the same values), so the matrices they held can be freed (a trace
    of one part keeps its matrix as the table)."""
    width = pk.per_air[t.air_id].vk.params.width
    h = int(t.log_height)
    if len(t.cached_mains) != len(width.cached_mains):
        raise InvalidInputError(f"AIR {t.air_id}: {len(t.cached_mains)} cached mains, expected "
                                f"{len(width.cached_mains)}")
    tr = dataclasses.replace(describe_trace(pk, l_skip, t.air_id, h, t.public_values))
    parts = trace_parts(t.common_main, pk.per_air[t.air_id].preprocessed_trace
                        if width.preprocessed is not None else None, t.cached_mains)
    for m, w in zip(parts, tr.part_widths):
        if tuple(m.shape) != (1 << h, w):
            raise InvalidInputError(f"AIR {t.air_id}: a trace part has shape {tuple(m.shape)}, "
                                    f"expected {(1 << h, w)}")
    # one part: the input matrix itself, no copy
    tr.table = mx.concatenate([m.astype(U32) for m in parts], axis=1)
    offsets, widths = tr.part_offsets, tr.part_widths
    first_cached = len(widths) - len(width.cached_mains)
    t.common_main = tr.table[:, :widths[0]]
    t.cached_mains = [tr.table[:, offsets[k]:offsets[k] + widths[k]]
                      for k in range(first_cached, len(widths))]
    return tr


# trace descriptions a DAG keeps (the last few height / public-value combinations)
_DESCRIPTIONS = 8


def describe_trace(pk, l_skip: int, air_id: int, log_height: int, public_values) -> TraceData:
    """A trace's layout, leaves, evaluators and forms, without its table (``table`` is
    ``None``): all that depends on the key, the height and the public values, not on the
    trace's data (what :mod:`mlx_stark.prover.precompile` needs to know a proof's kernels).

    Kept with the AIR's DAG for the last few (height, public values): walking a large DAG
    takes ~10 ms (keccakf's 39k nodes), every proof describes its traces, and the evaluators'
    plans and the leaves' input map live in the description. Shared: copy it before setting
    a table (:func:`prepare_trace`)."""
    vk = pk.per_air[air_id].vk
    key = (int(l_skip), int(log_height), tuple(int(v) for v in public_values))
    kept = vk.symbolic_constraints.cache.get("prover.trace_descriptions", dict)
    tr = kept.get(key)
    if tr is None:
        tr = kept[key] = _describe(vk, air_id, *key)
        if len(kept) > _DESCRIPTIONS:
            del kept[next(iter(kept))]
    return tr


def _describe(vk, air_id: int, l_skip: int, log_height: int, public_values: tuple) -> TraceData:
    width = vk.params.width
    h = int(log_height)
    expected = trace_parts(width.common_main, width.preprocessed, width.cached_mains)
    offsets, o = [], 0
    for w in expected:
        offsets.append(o)
        o += w
    need_rot = bool(vk.params.need_rot)
    dag = vk.symbolic_constraints
    n = h - l_skip
    tr = TraceData(
        air_id=air_id, vk=vk, dag=dag, log_height=h, n=n, nt=max(n, 0), table=None,
        part_offsets=offsets, part_widths=expected, wall=o, need_rot=need_rot,
        public_values=[int(v) for v in public_values],
        norm=pow(1 << -n, P - 2, P) if n < 0 else 1,
    )
    tr.needed = sorted({tr.column_of(node) for node in dag.nodes if _reads_column(node)})
    pos = {j: i for i, j in enumerate(tr.needed)}

    def leaf(i: int):
        node = dag.nodes[i]
        if _reads_column(node):
            return True, pos[tr.column_of(node)]
        if node.kind == NodeKind.CONSTANT:
            return False, node.value
        if node.kind == NodeKind.VARIABLE and node.var.entry == Entry.PUBLIC:
            return False, tr.public_values[node.var.index] % P
        raise ProverError(f"AIR {air_id}: unsupported DAG leaf {node!r}")

    kinds = {node.kind for node in dag.nodes}

    def make_inputs(get) -> DagInputs:
        def pair(base):
            return _Cols(get, pos, base), (_Cols(get, pos, base + tr.wall) if need_rot else None)

        s = tr.selector_offset
        return DagInputs(
            main=[pair(offsets[vk.dag_main_part_index_to_commit_index(k)])
                  for k in range(len(width.main_widths))],
            preprocessed=pair(offsets[1]) if width.preprocessed is not None else None,
            public_values=tr.public_values,
            is_first_row=get(pos[s]) if NodeKind.IS_FIRST_ROW in kinds else None,
            is_last_row=get(pos[s + 1]) if NodeKind.IS_LAST_ROW in kinds else None,
            is_transition=get(pos[s + 2]) if NodeKind.IS_TRANSITION in kinds else None,
        )

    tr.leaves = Leaves(dag, leaf, len(tr.needed), make_inputs)
    tr.evaluator = DagEvaluator(tr.leaves, True)
    tr.interactions_evaluator = DagEvaluator(tr.leaves, False)
    return tr


# ------------------------------------------------------------------ GKR leaves
def gkr_segments(tr: TraceData, l_skip: int, beta: EF) -> list:
    """``(p, h)`` per interaction of ``tr``, the GKR leaves of constraints.md §5.2 on the rows
    lifted to ``max(H, 2^l)``: ``p`` ``(rows,)`` uint32, ``h`` ``(rows, 4)`` uint32 (see
    :func:`~mlx_stark.prover.logup_gkr.fraction_leaves`)."""
    rows = tr.column_block(tr.needed)  # (Wn, H)
    forms = tr.gkr_forms(beta)
    values = tr.interactions_evaluator.evaluate(forms, rows, base=True)
    lifted = max(tr.height, 1 << l_skip)
    # the numerator is a base-field value: its first coefficient
    return [(lift(values[2 * s][:, 0], lifted), lift(values[2 * s + 1], lifted))
            for s in range(tr.num_interactions)]
