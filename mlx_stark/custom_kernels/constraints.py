"""Constraint-evaluation kernels generated from an AIR's DAG (constraints.md §6): linear forms
of the DAG's outputs (:mod:`mlx_stark.air.forms`: ``Σ_i λ^i·C_i``, the eq3b-weighted counts,
the eq3b/β-weighted message fields) at many points, bit-equal to the MLX-ops evaluation of the
same forms. Used for the GKR leaves, round 0 (base-field points) and the multilinear rounds
(extension-field points; the rounds' folded tables are read directly in the ``mle`` mode
below). The generator takes the DAG, the leaves' description
(:class:`~mlx_stark.air.forms.Leaves`) and the forms: data, no prover objects.

A kernel evaluates, at one point per thread, every output *slot* of the forms and accumulates
it times its host weight. The weights (``λ`` powers, eq3b and β products) and the public
values are input arrays, so a kernel depends only on the DAG and the slot structure of the
forms: it is generated once per (DAG, slot structure, field), kept in the DAG's cache, and
named by a blake3 digest of the DAG and the source (compiled kernels are cached by name).

*Templates.* Each slot's node is computed from its own sub-DAG (its closure). Slots whose
sub-DAGs have the same shape (the same operations, wiring and literal constants, only the
columns read differ) form a template: straight-line code for one instance, in a loop over a
table of instances (the columns, public-value indices and weight row of each). AIRs repeat
their constraints over columns, so this keeps the code small: KeccakfAir's 3182 constraints
are 15 templates of at most 208 nodes, 9% more operations than the shared DAG (39k nodes);
straight-line code for the whole DAG compiled far slower and spilled (docs/tracking/kernel-notes.md).

Values are in Montgomery form inside the kernel (``x·2^32 mod p``; a product is one
Montgomery reduction), base-field values as ``uint32_t``, extension values as ``ef``. In an
extension-field kernel, nodes that do not depend on a trace column (constants, public values
and what is built from them) stay in the base field. Accumulators are 64-bit per coefficient:
a Montgomery-form value times a canonical weight adds ``v·R·w``, kept below ``p·2^32`` by a
conditional subtraction, and one final reduction gives the canonical ``Σ v·w``.

*Parts.* Block row ``k`` of a launch (``K`` rows, chosen per launch from the number of points so
that small launches still fill the GPU) takes every ``K``-th instance (numbered over all
templates) and writes its partial sums; the ``K`` partial sums are added afterwards.

Layouts: ``cols`` ``(Q, Wn, X)`` (base) or ``(Q, Wn, X, 4)`` (extension) uint32 canonical:
``P = Q·X`` points ``(q, x)``, one row per needed column in each block ``q``, so that the
threads of a warp read consecutive points; ``prog`` the instance tables; ``consts`` the runtime
leaves (Montgomery form); ``weights`` one row per slot, ``[w0..w3]`` (base) or
``[w0..w3, W·w1, W·w2, W·w3, 0]`` (extension) canonical, then each form's constant term (4
words, canonical); ``params = [P, K, X, Wn]``; output ``(K, F, P, 4)``: the partial sums per
part and form, part 0's with the constant term. Every stage passes ``Q = 1`` (the plain
``(Wn, P)``); blocks let a caller evaluate data laid out ``(blocks, Wn, X)`` without a
transpose. (Round 0 keeps its ``(Wn, X·cosets·N)`` layout: building ``(N, Wn, X)`` from the
trace rows with one MLX transpose failed to launch on CUDA at the keccakf-1024 shape.)

*Multilinear rounds* (``mle`` mode, extension field). A round evaluates the forms at
``X = 1..d`` on the lowest variable of a trace's folded table, kept column-major on the device:
``table`` ``(W_tot, 2M, 4)`` uint32 canonical (every table column, not only the needed ones),
``colmap`` ``(Wn,)`` (input row -> table column). Point ``gid < d·M`` is ``X = gid / M + 1``,
``y = gid % M`` (a warp reads consecutive ``y``), and a column read is the line
``lo + X·(hi − lo)`` through ``lo = table[c, 2y]``, ``hi = table[c, 2y + 1]``: one 64-bit sum
``lo·(1 − X)·2^64 + hi·X·2^64`` and one reduction per coefficient gives its Montgomery form.
``params = [d·M, K, M, (1 − X)·2^64, X·2^64 for X = 1..d]`` (mod p); the output is as above
with ``P = d·M`` points in ``(X, y)`` order. The template code is shared; only the point
decode and the input reads differ (and the kernel's name).
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple

import blake3
import mlx.core as mx
import numpy as np

from ..air.dag import NodeKind, SymbolicConstraintsDag
from ..air.forms import Form, Leaves, slot_node
from ..field import bb, ext
from ..field.bb import P
from ..field.host import EF, W
from . import KernelSource, launch
from . import params as _params
from .prelude import EXTENSION, R2, literal, mont
from .sizing import grid_x, plan_parts

THREADS = 128  # smaller blocks than sizing.THREADS: these kernels use many registers
MAX_PARTS = 1 << 12
# form lists whose kernels a DAG's kernel cache remembers by identity (a proof uses about five
# per DAG: the GKR leaves, round 0 and the multilinear rounds)
_RECENT_FORMS = 16


# ---------------------------------------------------------------- templates
@dataclass(frozen=True)
class Template:
    """Instances of one sub-DAG shape feeding form ``form``. ``nodes``: the shape in evaluation
    order, each ``("in",)`` (a column), ``("rt",)`` (a runtime leaf), ``("lit", value)`` or
    ``(kind, operand positions...)``; the last node is the slot's value. Instance ``j``'s
    parameters are ``prog[offset + j·stride ...]``: the column row of every ``in`` and the
    ``consts`` index of every ``rt`` (in node order), then the weight row."""

    form: int
    nodes: Tuple[tuple, ...]
    count: int
    start: int  # instances of the previous templates
    offset: int
    stride: int


_OP_NAMES = {NodeKind.ADD: "add", NodeKind.SUB: "sub", NodeKind.MUL: "mul", NodeKind.NEG: "neg"}


def build_templates(dag: SymbolicConstraintsDag, form_nodes: Sequence[Sequence[int]],
                    leaf) -> Tuple[List[Template], np.ndarray, List[int]]:
    """Templates of the slots ``form_nodes[f][k]`` (node of slot ``k`` of form ``f``; weight
    rows are numbered over all forms in order). ``leaf(i) -> (is_input, value)`` as in
    :class:`~mlx_stark.air.forms.Leaves`. Returns the templates, the instance table ``prog``
    (uint32) and the runtime leaves (node indices in ``consts`` order)."""
    groups: Dict[tuple, List[List[int]]] = {}
    runtime: Dict[int, int] = {}
    slot = 0
    for f, nodes in enumerate(form_nodes):
        for root in nodes:
            local: Dict[int, int] = {}
            shape, params = [], []
            for i in dag.closure([root]):
                node = dag.nodes[i]
                local[i] = len(local)
                kids = dag.children(i)
                if kids:
                    shape.append((_OP_NAMES[node.kind],) + tuple(local[c] for c in kids))
                elif node.kind == NodeKind.CONSTANT:
                    shape.append(("lit", node.value))
                else:
                    is_input, value = leaf(i)
                    if is_input:
                        shape.append(("in",))
                        params.append(value)
                    else:
                        shape.append(("rt",))
                        params.append(runtime.setdefault(i, len(runtime)))
            groups.setdefault((f, tuple(shape)), []).append(params + [slot])
            slot += 1
    templates, tables, start, offset = [], [], 0, 0
    for (f, shape), rows in groups.items():
        stride = len(rows[0])
        templates.append(Template(f, shape, len(rows), start, offset, stride))
        tables.append(np.array(rows, dtype=np.uint32).reshape(-1))
        start += len(rows)
        offset += len(rows) * stride
    prog = np.concatenate(tables) if tables else np.zeros(1, dtype=np.uint32)
    return templates, prog, list(runtime)


# ---------------------------------------------------------------- generation
def _template_code(tpl: Template, extension: bool, mle: bool = False) -> List[str]:
    """The loop over the instances of ``tpl`` taken by this block row (``mle``: columns read
    from the folded table, module docstring)."""
    width = 8 if extension else 4
    # instance j of this template is instance start + j overall, taken by block row
    # (start + j) mod parts: the parts share every template's remainder evenly
    lines = [f"for (uint32_t j = (bid_y + parts - {tpl.start}u % parts) % parts; j < {tpl.count}u; j += parts) {{",
             f"const uint32_t t = {tpl.offset}u + j * {tpl.stride}u;"]
    is_ext: List[bool] = []
    param = 0
    for k, node in enumerate(tpl.nodes):
        v = f"v{k}"
        op = node[0]
        if op == "lit":
            is_ext.append(False)
            lines.append(f"const uint32_t {v} = {literal(mont(node[1]))};")
            continue
        if op in ("in", "rt"):
            at = f"prog[t + {param}u]"
            param += 1
            if op == "rt":
                is_ext.append(False)
                lines.append(f"const uint32_t {v} = consts[{at}];")
            elif mle:
                is_ext.append(True)
                lines.append(f"const uint64_t a{k} = (uint64_t)colmap[{at}] * col_words + yo;")
                lines.append(f"const ef {v} = EF_LINE(table, a{k}, cl, ch);")
            elif extension:
                is_ext.append(True)
                lines.append(f"const uint64_t a{k} = ((uint64_t){at} * xs + pt) * 4u;")
                lines.append(f"const ef {v} = ef_in(cols[a{k}], cols[a{k} + 1u], cols[a{k} + 2u], cols[a{k} + 3u]);")
            else:
                is_ext.append(False)
                lines.append(f"const uint32_t {v} = bb_to_mont(cols[(uint64_t){at} * xs + pt]);")
            continue
        ex = [is_ext[c] for c in node[1:]]
        a = f"v{node[1]}"
        if op == "neg":
            is_ext.append(ex[0])
            expr = f"{'ef' if ex[0] else 'bb'}_neg({a})"
        else:
            b = f"v{node[2]}"
            is_ext.append(ex[0] or ex[1])
            if not is_ext[-1]:
                expr = {"add": "bb_add", "sub": "bb_sub", "mul": "bb_mont"}[op] + f"({a}, {b})"
            elif ex[0] and ex[1]:
                expr = f"ef_{op}({a}, {b})"
            elif op == "sub":
                expr = f"ef_sub_eb({a}, {b})" if ex[0] else f"ef_sub_be({a}, {b})"
            else:
                e, s = (a, b) if ex[0] else (b, a)
                expr = f"ef_{op}_b({e}, {s})"
        lines.append(f"const {'ef' if is_ext[-1] else 'uint32_t'} {v} = {expr};")
    last = len(tpl.nodes) - 1
    lines.append(f"const uint32_t w = prog[t + {param}u] * {width}u;")
    fn, count = ("acc_e", 7) if is_ext[last] else ("acc_b", 4)
    w = ", ".join(f"weights[w + {c}u]" for c in range(count))
    lines += [f"s{tpl.form} = {fn}(s{tpl.form}, v{last}, {w});", "}"]
    return lines


# lo + X·(hi − lo) in Montgomery form for canonical lo = t[a..a+3], hi = t[a+4..a+7] and
# cl = (1 − X)·2^64, ch = X·2^64 mod p: each sum of two products is below 2p^2 < p·2^32.
_MLE_HEADER = """\
#define EF_LINE(t, a, cl, ch) ef_make( \\
  bb_redc(mul_wide(t[(a)], cl) + mul_wide(t[(a) + 4u], ch)), \\
  bb_redc(mul_wide(t[(a) + 1u], cl) + mul_wide(t[(a) + 5u], ch)), \\
  bb_redc(mul_wide(t[(a) + 2u], cl) + mul_wide(t[(a) + 6u], ch)), \\
  bb_redc(mul_wide(t[(a) + 3u], cl) + mul_wide(t[(a) + 7u], ch)))
"""


def generate(templates: Sequence[Template], num_forms: int, extension: bool, dag_digest: str,
             mle: bool = False) -> KernelSource:
    """The kernel of ``templates`` (arrays in the module docstring); ``dag_digest`` names the
    DAG it came from. ``mle``: the multilinear-rounds input mode (extension field)."""
    if mle and not extension:
        raise ValueError("the multilinear-rounds mode evaluates extension-field points")
    body = [
        "const uint64_t np = params[0];",
        "const uint32_t parts = params[1];",
        "if (gid >= params[0]) return;",
    ]
    if mle:
        body += [
            "// point gid = (X, y), X = gid / M + 1, read from table (W_tot, 2M, 4)",
            "const uint32_t m = params[2];",
            "const uint32_t x = gid / m;",
            "const uint64_t col_words = (uint64_t)m * 8u;  // 2M·4 words per table column",
            "const uint64_t yo = (uint64_t)(gid - x * m) * 8u;",
            "const uint32_t cl = params[3u + 2u * x];",
            "const uint32_t ch = params[4u + 2u * x];",
        ]
    else:
        body += [
            "const uint32_t xs = params[2];",
            "// element (column row 0, point gid) of cols (Q, Wn, X)",
            "const uint64_t pt = (uint64_t)(gid / xs) * params[3] * xs + gid % xs;",
        ]
    body += [f"acc4 s{f} = acc_zero();" for f in range(num_forms)]
    for tpl in templates:
        body += _template_code(tpl, extension, mle)
    # the forms' constant terms (canonical, after the weight rows), added by part 0
    consts = sum(t.count for t in templates) * (8 if extension else 4)
    body.append("const bool first = bid_y == 0u;")
    for f in range(num_forms):
        body.append(f"const uint64_t o{f} = (((uint64_t)bid_y * {num_forms}u + {f}u) * np + gid) * 4u;")
        body += [f"out[o{f} + {c}u] = bb_add(bb_redc(s{f}.c{c}), first ? weights[{consts + 4 * f + c}u] : 0u);"
                 for c in range(4)]
    src = "\n".join(body) + "\n"
    header = EXTENSION + (_MLE_HEADER if mle else "")
    digest = blake3.blake3((dag_digest + "\0" + header + "\0" + src).encode()).hexdigest()[:16]
    kind = "mle" if mle else "ef" if extension else "bb"
    data = ("table", "colmap") if mle else ("cols",)
    return KernelSource(f"air_eval_{kind}_{digest}", data + ("prog", "consts", "weights", "params"),
                        ("out",), header, src)


def dag_digest(dag: SymbolicConstraintsDag) -> str:
    """blake3 of the DAG's nodes, constraints and interactions."""
    text = repr((dag.nodes, dag.constraint_idx, dag.interactions))
    return blake3.blake3(text.encode()).hexdigest()


# ---------------------------------------------------------------- kernels per DAG
class FormsKernel:
    """The generated kernel of one (DAG, leaf layout, slot structure of the forms, field, input
    mode) and its instance table on the device. ``leaf`` as for :func:`build_templates`;
    runtime leaf values are read from the ``leaf`` passed to each call (public values change
    between proofs)."""

    def __init__(self, dag: SymbolicConstraintsDag, leaf, slots: Sequence[Sequence[tuple]],
                 extension: bool, digest: str, mle: bool = False):
        form_nodes = [[slot_node(dag, s) for s in form_slots] for form_slots in slots]
        self.templates, prog, self.runtime = build_templates(dag, form_nodes, leaf)
        self.num_forms = len(slots)
        self.extension = extension
        self.mle = mle
        self.max_count = max([t.count for t in self.templates], default=1)
        self.source = generate(self.templates, self.num_forms, extension, digest, mle)
        self.prog = mx.array(prog)
        self._last = ((), None)  # (forms, form_arrays(forms)) of the last call

    def form_arrays(self, forms: Sequence[Form]) -> mx.array:
        """The ``weights`` of ``forms``: the weight rows (module docstring), then the forms'
        constant terms (4 canonical words each). The last result is reused while the same form
        objects come back (every round of a proof evaluates the same forms)."""
        last, weights = self._last
        if weights is not None and len(last) == len(forms) and all(a is b for a, b in zip(last, forms)):
            return weights
        w = np.array([EF.lift(w).c for f in forms for _, w in f.terms], dtype=np.uint64).reshape(-1, 4)
        if self.extension:
            w = np.concatenate([w, w[:, 1:] * W % P, np.zeros((w.shape[0], 1), dtype=np.uint64)], axis=1)
        consts = np.array([EF.lift(form.const).c for form in forms], dtype=np.uint64)
        weights = mx.array(np.concatenate([w.reshape(-1), consts.reshape(-1)]).astype(np.uint32))
        self._last = (tuple(forms), weights)
        return weights

    def consts(self, leaf) -> mx.array:
        """The runtime leaves' values (Montgomery form) from ``leaf``, kept per values."""
        return _params(*([mont(leaf(i)[1] % P) for i in self.runtime] or [0]))

    def parts(self, points: int) -> int:
        """Block rows of a launch over ``points`` points (module docstring)."""
        return plan_parts(points, min(MAX_PARTS, self.max_count))

    def _run(self, forms: Sequence[Form], data: list, points: int, params: list, leaf,
             parts: bool = False):
        """Launch over ``points`` points with the input arrays ``data`` and ``params`` after
        ``[points, K]``: one ``(points, 4)`` array per form, or (``parts``) the launch's
        ``(K, F, points, 4)`` partial sums as they are."""
        if not forms:
            return ext.zeros((1, 0, points)) if parts else []
        if points == 0:
            return ext.zeros((1, len(forms), 0)) if parts else [ext.zeros((0,)) for _ in forms]
        k, f = self.parts(points), self.num_forms
        grid = grid_x(points, THREADS)
        params = _params(points, k, *params)
        weights, consts = _BOUND.get((self, id(forms))) or (self.form_arrays(forms), self.consts(leaf))
        out = launch(self.source, data + [self.prog, consts, weights, params],
                     (grid, k), THREADS, [(k, f, points, 4)])[0]
        if parts:
            return out
        sums = out[0, ...] if k == 1 else bb.sum(out, axis=0)
        return [sums[g, ...] for g in range(len(forms))]

    def __call__(self, forms: Sequence[Form], cols: mx.array, leaf, parts: bool = False):
        """Every form at the points of ``cols`` ``(Q, Wn, X[, 4])``: a list of ``(Q·X, 4)``,
        or (``parts``) the launch's partial sums ``(K, F, Q·X, 4)``."""
        if self.mle:
            raise ValueError("a multilinear-rounds kernel reads a folded table (see lines)")
        q, wn, xs = cols.shape[:3]
        return self._run(forms, [cols], q * xs, [xs, wn], leaf, parts)

    def lines(self, forms: Sequence[Form], table: mx.array, colmap: mx.array, degree: int,
              leaf) -> mx.array:
        """Every form at the points ``(X, y)``, ``X = 1..degree``, of the folded table ``table``
        ``(W_tot, 2M, 4)`` whose input rows are the table columns ``colmap`` ``(Wn,)`` uint32
        (module docstring): the partial sums ``(K, F, degree·M, 4)`` of the launch's ``K`` parts
        (their sum: a row per form, points in ``(X, y)`` order)."""
        if not self.mle:
            raise ValueError("only a multilinear-rounds kernel reads a folded table")
        w_tot, rows = table.shape[:2]
        if rows % 2 or table.shape[2:] != (4,) or w_tot * rows * 4 >= 1 << 32:
            raise ValueError(f"a folded table must be (W_tot, 2M, 4), got {tuple(table.shape)}")
        m = rows // 2
        line = []
        for x in range(1, degree + 1):
            line += [(1 - x) % P * R2 % P, x * R2 % P]
        return self._run(forms, [table, colmap], degree * m, [m] + line, leaf, parts=True)


# (kernel, id of the forms list) -> (weights, runtime leaves' values) that the kernel reads
# for those forms instead of making them (bound)
_BOUND: Dict[tuple, tuple] = {}


@contextlib.contextmanager
def bound(arrays: Dict[tuple, tuple]):
    """Within the block, a kernel called with a forms list of ``arrays`` (keys ``(kernel,
    id(forms))``, the list itself passed to the kernel's calls) reads the given ``(weights,
    consts)`` device arrays (:meth:`FormsKernel.form_arrays`, :meth:`FormsKernel.consts` of
    those forms and the trace's leaves) instead of making them from the host values: a
    compiled segment takes them as inputs, so that its graph does not keep one proof's
    values. The caller keeps the forms lists alive for the block."""
    saved = dict(_BOUND)
    _BOUND.update(arrays)
    try:
        yield
    finally:
        _BOUND.clear()
        _BOUND.update(saved)


class _DagKernels:
    """The generated kernels of one DAG, kept in its cache (the DAG lives in the proving key,
    so the proofs of one key generate each kernel once): by the slots of the forms, the field,
    the columns the leaves read and the input mode. The kernels of the last few form lists are
    also remembered by the lists' identity (the rounds of a proof pass the same forms again),
    so those calls skip building and hashing the key (~10^4 slots)."""

    def __init__(self, dag: SymbolicConstraintsDag):
        self.dag = dag
        self.digest = dag_digest(dag)
        self.kernels: Dict[tuple, FormsKernel] = {}
        # (form ids, leaf-layout id, base, mle) -> (forms, layout, kernel); holding the forms
        # and the layout keeps their ids unique
        self.recent: Dict[tuple, tuple] = {}

    def get(self, leaves: Leaves, forms: Sequence[Form], base: bool, mle: bool) -> FormsKernel:
        layout = leaves.inputs()
        fast = (tuple(id(f) for f in forms), id(layout), base, mle)
        hit = self.recent.get(fast)
        if hit is not None:
            return hit[2]
        key = (tuple(tuple(s for s, _ in f.terms) for f in forms), base, layout, mle)
        kernel = self.kernels.get(key)
        if kernel is None:
            kernel = self.kernels[key] = FormsKernel(self.dag, leaves.leaf, key[0], not base,
                                                     self.digest, mle)
        self.recent[fast] = (tuple(forms), layout, kernel)
        if len(self.recent) > _RECENT_FORMS:
            del self.recent[next(iter(self.recent))]
        return kernel


def kernel_for(leaves: Leaves, forms: Sequence[Form], base: bool, mle: bool = False) -> FormsKernel:
    """The cached :class:`FormsKernel` of ``leaves.dag`` for the slots of ``forms`` and the
    columns ``leaves`` reads (``mle``: the multilinear-rounds input mode, extension field)."""
    dag = leaves.dag
    return dag.cache.get("custom_kernels.constraints", lambda: _DagKernels(dag)).get(
        leaves, forms, base, mle)


def evaluate_forms(leaves: Leaves, forms: Sequence[Form], blocks: mx.array,
                   base: bool) -> List[mx.array]:
    """The forms at the points of ``blocks`` with a generated kernel: ``blocks`` ``(Q, Wn, X)``
    (``base``) or ``(Q, Wn, X, 4)`` uint32, block ``q`` holding the input rows of ``X`` points
    (``Wn = leaves.num_inputs``) -> one ``(Q·X, 4)`` uint32 array per form, points in
    ``(q, x)`` order (bit-equal to the MLX-ops evaluation)."""
    return kernel_for(leaves, forms, base)(forms, blocks, leaves.leaf)


def evaluate_parts(leaves: Leaves, forms: Sequence[Form], blocks: mx.array,
                   base: bool) -> mx.array:
    """:func:`evaluate_forms` as the launch's partial sums ``(K, F, Q·X, 4)`` uint32 (their
    sum over ``K``: a row per form), for a caller that sums them with its own weighting."""
    return kernel_for(leaves, forms, base)(forms, blocks, leaves.leaf, parts=True)


def evaluate_mle(leaves: Leaves, forms: Sequence[Form], table: mx.array,
                 colmap: mx.array, degree: int) -> mx.array:
    """A multilinear round's evaluations with a generated kernel reading the folded table
    directly: ``table`` ``(W_tot, 2M, 4)`` uint32 (column-major), ``colmap`` ``(Wn,)`` uint32
    (input row -> table column) -> ``(K, F, degree·M, 4)`` uint32, the ``K`` parts of a row per
    form: the forms at ``X = 1..degree`` on the lowest variable, points in ``(X, y)`` order.
    Their sum over the parts is bit-equal to :func:`evaluate_forms` of the points
    ``T[c, 2y] + X·(T[c, 2y+1] − T[c, 2y])``."""
    return kernel_for(leaves, forms, False, mle=True).lines(forms, table, colmap, degree,
                                                            leaves.leaf)
