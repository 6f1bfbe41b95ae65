"""Named, nested spans for the prover's stages.

``with span("prover.main_trace_commit") as sp: ...; sp.produced(root, tree_arrays)``

Spans are always cheap to enter. When timing is enabled (:func:`timing`), a span evaluates the
arrays its stage declared with :meth:`Span.produced` and synchronises the device before it
stops its clock, so each figure is that stage's own cost and not deferred work landing in a
later span. Results are collected as a tree of :class:`SpanRecord`.

Counters explain the figures. ``syncs`` counts the prover's device→host read-backs, which all go
through :func:`read` (or :func:`wait`); ``launches`` counts custom-kernel launches
(:func:`mlx_stark.custom_kernels.launch`); ``peak_mb`` is the device's peak memory while the span
was open. ``syncs`` and ``launches`` are counted on every open span (a parent's count includes its
children's) and in process-wide totals (:func:`totals`) that run with timing off too. The syncs a
timed span makes at its end are the measurement's own and are not counted.
"""
from __future__ import annotations

import contextlib
import math
import threading
import time
from dataclasses import dataclass, field

import mlx.core as mx
import numpy as np

_state = threading.local()
_TOTALS = {"syncs": 0, "launches": 0}

# Called as ``listener(name, depth)`` when a timed span starts (depth 0 for a root): the CLI
# shows the stage names of a long proof from it. None: no listener.
listener = None


@dataclass
class SpanRecord:
    name: str
    start: float
    seconds: float = 0.0
    children: list = field(default_factory=list)
    counters: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "seconds": self.seconds,
            "counters": dict(self.counters),
            "children": [c.to_dict() for c in self.children],
        }

    def walk(self, depth: int = 0):
        yield depth, self
        for c in self.children:
            yield from c.walk(depth + 1)


def totals() -> dict:
    """Process-wide ``{"syncs": n, "launches": n}`` so far (timing on or off)."""
    return dict(_TOTALS)


def _bump(name: str, n: int = 1) -> None:
    _TOTALS[name] += n
    for rec in _stack() or ():
        rec.counters[name] = rec.counters.get(name, 0) + n


def count_launch(n: int = 1) -> None:
    """Count ``n`` custom-kernel launches."""
    _bump("launches", n)


def reset_launches(total: int) -> None:
    """Set the process-wide launch total back to ``total`` (with no span timed: a compiled
    segment's trace launches nothing, and its calls count the launches of its graph)."""
    _TOTALS["launches"] = total


# Reads of several small arrays of one dtype up to this many elements in all come back as one
# array, concatenated on the device (:func:`mlx_stark.arrays.concat_flat`, a launch per 32
# uint32 arrays on the GPU): on CUDA each conversion of a device array to NumPy costs tens of µs
# (the host touches the array's unified memory), more than a small copy.
_GATHER_READ_ELEMS = 1 << 20


class Rows:
    """Device arrays of one ``shape`` (uint32) that :func:`read` brings back as one
    ``(len, *shape)`` NumPy array: a stage's per-round values, read without stacking them on
    the device first (a copy launch per item, which the read's own gathering repeats)."""

    def __init__(self, items, shape: tuple):
        self.items, self.shape = list(items), tuple(shape)


def read(*arrays) -> list:
    """Bring ``arrays`` (MLX arrays or :class:`Rows`) to the host as NumPy arrays with one
    device synchronisation: the prover's single choke point for device→host reads (counted as
    ``syncs``). Small arrays of one dtype come back as one gathered array (one conversion)."""
    _bump("syncs")
    leaves = [x for a in arrays for x in (a.items if isinstance(a, Rows) else (a,))]
    values = None
    if (len(leaves) > 1 and len({x.dtype for x in leaves}) == 1
            and sum(x.size for x in leaves) <= _GATHER_READ_ELEMS):
        from .arrays import concat_flat  # (arrays -> custom_kernels -> tracing)
        flat = concat_flat(leaves)
        mx.eval(flat)
        values = np.array(flat)
    elif leaves:
        mx.eval(*leaves)
    out, at = [], 0
    for a in arrays:
        if isinstance(a, Rows):
            n, size = len(a.items), math.prod(a.shape)
            if values is not None:
                out.append(values[at:at + n * size].reshape((n,) + a.shape))
            else:
                out.append(np.stack([np.array(x) for x in a.items]) if n
                           else np.zeros((0,) + a.shape, dtype=np.uint32))
            at += n * size
        else:
            out.append(values[at:at + a.size].reshape(a.shape) if values is not None else np.array(a))
            at += a.size
    return out


def wait(*arrays: mx.array) -> None:
    """Evaluate ``arrays`` and wait for the device (a counted sync, no data copied)."""
    _bump("syncs")
    mx.eval(*arrays)


class Span:
    def __init__(self, record: SpanRecord | None):
        self.record = record
        self._outputs: list = []

    def produced(self, *arrays) -> None:
        """Declare arrays this stage produced (evaluated at the span's end when timing)."""
        if self.record is not None:
            self._outputs.extend(a for a in arrays if isinstance(a, mx.array))

    def count(self, name: str, value: float = 1) -> None:
        if self.record is not None:
            self.record.counters[name] = self.record.counters.get(name, 0) + value


def _stack() -> list | None:
    return getattr(_state, "stack", None)


@contextlib.contextmanager
def timing():
    """Enable timing for the enclosed block; yields the root record list."""
    roots: list[SpanRecord] = []
    prev = _stack(), getattr(_state, "roots", None), getattr(_state, "peaks", None)
    _state.stack, _state.roots, _state.peaks = [], roots, []
    try:
        yield roots
    finally:
        _state.stack, _state.roots, _state.peaks = prev


def enabled() -> bool:
    return _stack() is not None


@contextlib.contextmanager
def span(name: str):
    stack = _stack()
    if stack is None:
        yield Span(None)
        return
    if listener is not None:
        listener(name, len(stack))
    rec = SpanRecord(name=name, start=time.perf_counter())
    (stack[-1].children if stack else _state.roots).append(rec)
    # peak memory per span: MLX keeps one peak, so a span resets it on entry after folding it
    # into its parent's running peak, and folds its own into the parent on exit
    peaks = _state.peaks
    if stack:
        peaks[-1] = max(peaks[-1], mx.get_peak_memory())
    mx.reset_peak_memory()
    stack.append(rec)
    peaks.append(0)
    sp = Span(rec)
    try:
        yield sp
    finally:
        if sp._outputs:
            mx.eval(*sp._outputs)
        mx.synchronize()
        rec.seconds = time.perf_counter() - rec.start
        stack.pop()
        peak = max(peaks.pop(), mx.get_peak_memory())
        rec.counters["peak_mb"] = round(peak / 2**20, 1)
        if peaks:
            peaks[-1] = max(peaks[-1], peak)


def flatten(roots: list[SpanRecord]) -> dict[str, float]:
    """Total seconds per span name (spans with the same name are added up)."""
    out: dict[str, float] = {}
    for root in roots:
        for _, rec in root.walk():
            out[rec.name] = out.get(rec.name, 0.0) + rec.seconds
    return out


def merge_counters(dicts) -> dict:
    """Counters of several spans together: counts add up, ``peak_mb`` is the largest."""
    out: dict = {}
    for d in dicts:
        for k, v in d.items():
            out[k] = max(out.get(k, 0), v) if k == "peak_mb" else out.get(k, 0) + v
    return out


def flatten_counters(roots: list[SpanRecord]) -> dict[str, dict]:
    """Counters per span name (spans with the same name merged, see :func:`merge_counters`)."""
    groups: dict = {}
    for root in roots:
        for _, rec in root.walk():
            groups.setdefault(rec.name, []).append(rec.counters)
    return {name: merge_counters(ds) for name, ds in groups.items()}


def format_tree(roots: list[SpanRecord]) -> str:
    """The span tree as text, one line per name under each parent: spans of the same name
    (a stage inside a loop) are added up and shown with their count."""
    lines = []

    def emit(group: list, depth: int) -> None:
        rec = group[0]
        seconds = sum(r.seconds for r in group)
        counters = merge_counters(r.counters for r in group)
        extra = "".join(f"  {k}={v:g}" for k, v in counters.items())
        times = f"  x{len(group)}" if len(group) > 1 else ""
        lines.append(f"{'  ' * depth}{rec.name:<{48 - 2 * depth}} {seconds * 1e3:10.2f} ms{times}{extra}")
        emit_children([c for r in group for c in r.children], depth + 1)

    def emit_children(children: list, depth: int) -> None:
        by_name: dict = {}
        for c in children:
            by_name.setdefault(c.name, []).append(c)
        for group in by_name.values():
            emit(group, depth)

    emit_children(list(roots), 0)
    return "\n".join(lines)


def to_chrome_trace(roots: list[SpanRecord]) -> dict:
    """Chrome-trace / Perfetto JSON (complete events, microseconds)."""
    if not roots:
        return {"traceEvents": []}
    t0 = min(r.start for r in roots)
    events = []
    for root in roots:
        for _, rec in root.walk():
            events.append({
                "name": rec.name, "ph": "X", "pid": 1, "tid": 1,
                "ts": (rec.start - t0) * 1e6, "dur": rec.seconds * 1e6,
                "args": dict(rec.counters),
            })
    return {"traceEvents": events, "displayTimeUnit": "ms"}
