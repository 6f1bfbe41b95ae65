"""Concrete AIRs: the test AIRs of constraints.md §9 and their fixtures."""
from .fixtures import (
    Fixture,
    cached_fixture_11,
    fib_fixture,
    interactions_fixture_11,
    mixture_fixture_standard,
    preprocessed_and_cached_fixture,
    preprocessed_fib_fixture,
    self_interaction_fixture,
    sum_fixture,
)
from .keccakf import KeccakfAir, keccakf_outputs, keccakf_trace, random_keccakf_inputs
from .test_airs import (
    DummyInteractionAir,
    EmptyAir,
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

__all__ = [
    "KeccakfAir", "keccakf_trace", "keccakf_outputs", "random_keccakf_inputs",
    "FibonacciAir", "FibonacciSelectorAir", "DummyInteractionAir", "SelfInteractionAir",
    "PreprocessedCachedAir", "SumAir", "EmptyAir", "fib_trace", "fib_selector_trace",
    "dummy_interaction_trace", "self_interaction_trace", "preprocessed_cached_trace", "sum_trace",
    "Fixture", "fib_fixture", "preprocessed_fib_fixture", "interactions_fixture_11",
    "cached_fixture_11", "self_interaction_fixture", "preprocessed_and_cached_fixture",
    "sum_fixture", "mixture_fixture_standard",
]
