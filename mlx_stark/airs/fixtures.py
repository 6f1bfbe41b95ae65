"""Multi-AIR test fixtures of constraints.md §9 (AIRs in AIR-id order plus their traces).

A :class:`Fixture` holds every AIR (what keygen sees) and, per AIR id, its
:class:`~mlx_stark.air.check.AirTrace` or ``None`` when that AIR is absent from the proof.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, List, Optional, Sequence

from ..air import Air
from ..air.check import AirTrace
from .test_airs import (
    DummyInteractionAir,
    FibonacciAir,
    FibonacciSelectorAir,
    PreprocessedCachedAir,
    SelfInteractionAir,
    SumAir,
    dummy_interaction_trace,
    fib_selector_trace,
    fib_trace,
    preprocessed_cached_trace,
    self_interaction_trace,
    sum_trace,
)


@dataclass
class Fixture:
    airs: List[Air]
    traces: List[Optional[AirTrace]]

    def __add__(self, other: "Fixture") -> "Fixture":
        return Fixture(self.airs + other.airs, self.traces + other.traces)

    def without(self, air_ids: Iterable[int]) -> "Fixture":
        """The same AIRs with the traces of ``air_ids`` absent."""
        drop = set(air_ids)
        return Fixture(self.airs, [None if i in drop else t for i, t in enumerate(self.traces)])


def fib_fixture(a: int, b: int, n: int, num_airs: int = 1) -> Fixture:
    """``FibFixture(a, b, n)`` (``new_with_num_airs`` for ``num_airs > 1``)."""
    trace, pv = fib_trace(a, b, n)
    airs = [FibonacciAir() for _ in range(num_airs)]
    return Fixture(airs, [AirTrace(air, trace, pv) for air in airs])


def preprocessed_fib_fixture(a: int, b: int, sels: Sequence[int]) -> Fixture:
    """``PreprocessedFibFixture``: FibonacciSelectorAir without interactions."""
    air = FibonacciSelectorAir(sels, enable_interactions=False)
    trace, pv = fib_selector_trace(a, b, sels)
    return Fixture([air], [AirTrace(air, trace, pv)])


SENDER_11 = ([0, 3, 7, 546], [[1], [5], [4], [889]])
RECEIVER_11 = ([1, 3, 4, 2, 0, 545, 1, 0], [[5], [4], [4], [5], [123], [889], [889], [456]])


def _interactions_11(partitioned: bool) -> Fixture:
    airs, traces = [], []
    for is_send, (count, fields) in ((True, SENDER_11), (False, RECEIVER_11)):
        air = DummyInteractionAir(1, is_send, 0, partitioned=partitioned)
        common, cached = dummy_interaction_trace(count, fields, partitioned=partitioned)
        airs.append(air)
        traces.append(AirTrace(air, common, (), cached))
    return Fixture(airs, traces)


def interactions_fixture_11() -> Fixture:
    """AIR 0 sends ``(count, field)`` rows of :data:`SENDER_11` on bus 0, AIR 1 receives
    :data:`RECEIVER_11` (unpartitioned)."""
    return _interactions_11(False)


def cached_fixture_11() -> Fixture:
    """:func:`interactions_fixture_11` with the fields in a cached part."""
    return _interactions_11(True)


def self_interaction_fixture(widths: Sequence[int], log_height: int, bus_index: int) -> Fixture:
    airs = [SelfInteractionAir(w, bus_index) for w in widths]
    return Fixture(airs, [AirTrace(a, self_interaction_trace(a.width, log_height)) for a in airs])


def preprocessed_and_cached_fixture(sels: Sequence[int], m: int) -> Fixture:
    air = PreprocessedCachedAir(sels, m)
    common, cached = preprocessed_cached_trace(sels, m)
    return Fixture([air], [AirTrace(air, common, (), cached)])


def sum_fixture(w: int = 5, height: int = 8, seed: int = 0) -> Fixture:
    air = SumAir(w)
    common, cached = sum_trace(w, height, seed)
    return Fixture([air], [AirTrace(air, common, (), cached)])


def mixture_fixture_standard(log_height: int) -> Fixture:
    """``MixtureFixture::standard``: 12 AIRs (fib, 2 dummy, 2 cached dummy, preprocessed fib,
    6 self-interaction)."""
    n = 1 << log_height
    return (
        fib_fixture(8, 8, n)
        + interactions_fixture_11()
        + cached_fixture_11()
        + preprocessed_fib_fixture(7, 3, [int(i % 2 == 0) for i in range(n)])
        + self_interaction_fixture([4, 7, 8, 8, 10, 100], log_height, 5)
    )
