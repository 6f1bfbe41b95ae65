"""Named, nested spans for the prover's stages.

``with span("prover.main_trace_commit") as sp: ...; sp.produced(root, tree_arrays)``

Spans are always cheap to enter. When timing is enabled (:func:`timing`), a span evaluates the
arrays its stage declared with :meth:`Span.produced` and synchronises the device before it
stops its clock, so each figure is that stage's own cost and not deferred work landing in a
later span. Results are collected as a tree of :class:`SpanRecord`.
"""
from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass, field

import mlx.core as mx

_state = threading.local()

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
    prev = _stack(), getattr(_state, "roots", None)
    _state.stack, _state.roots = [], roots
    try:
        yield roots
    finally:
        _state.stack, _state.roots = prev


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
    stack.append(rec)
    sp = Span(rec)
    try:
        yield sp
    finally:
        if sp._outputs:
            mx.eval(*sp._outputs)
        mx.synchronize()
        rec.seconds = time.perf_counter() - rec.start
        stack.pop()


def flatten(roots: list[SpanRecord]) -> dict[str, float]:
    """Total seconds per span name (spans with the same name are added up)."""
    out: dict[str, float] = {}
    for root in roots:
        for _, rec in root.walk():
            out[rec.name] = out.get(rec.name, 0.0) + rec.seconds
    return out


def format_tree(roots: list[SpanRecord]) -> str:
    """The span tree as text, one line per name under each parent: spans of the same name
    (a stage inside a loop) are added up and shown with their count."""
    lines = []

    def emit(group: list, depth: int) -> None:
        rec = group[0]
        seconds = sum(r.seconds for r in group)
        counters: dict = {}
        for r in group:
            for k, v in r.counters.items():
                counters[k] = counters.get(k, 0) + v
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
