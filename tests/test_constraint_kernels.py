"""Generated constraint-evaluation kernels (mlx_stark.custom_kernels.constraints).

- sources: a kernel renders in both dialects for every test AIR and KeccakfAir (round-0, GKR
  and multilinear-round forms) with the structure of every kernel (tests/kernel_helpers.py),
  without pointers or barriers;
- emulation (needs g++): the rendered sources run as C++ on the CPU (see
  tests/kernel_helpers.py) and equal the MLX-ops evaluation of the same forms on random
  points, base and extension field, plain and blocked layouts, with one and with several
  parts per launch; whole proofs with the emulated kernels give the golden fingerprints;
- device: on a GPU with native kernels, the registry path of ``DagEvaluator.evaluate`` equals
  the ops path on the CPU on random points. Whole proofs with kernels on and off are covered by
  tests/test_golden_fingerprints.py, which runs on every device.
"""
import re
from types import SimpleNamespace

import mlx.core as mx
import numpy as np
import pytest

from mlx_stark.air.forms import Form
from mlx_stark.airs import (
    KeccakfAir,
    cached_fixture_11,
    fib_fixture,
    interactions_fixture_11,
    keccakf_trace,
    preprocessed_and_cached_fixture,
    preprocessed_fib_fixture,
    random_keccakf_inputs,
    self_interaction_fixture,
    sum_fixture,
)
from mlx_stark.custom_kernels import constraints as kc
from mlx_stark.custom_kernels import sizing
from mlx_stark.field import bb
from mlx_stark.field.host import EF
from mlx_stark.keygen import keygen
from mlx_stark.params import default_test_params_small
from mlx_stark.prover.batch_constraints import prepare_trace

from .kernel_helpers import check_twins, emulation, needs_native, route

FIXTURES = {
    "fib": lambda: fib_fixture(0, 1, 16),
    "interactions": interactions_fixture_11,
    "cached": cached_fixture_11,
    "preprocessed-fib": lambda: preprocessed_fib_fixture(7, 3, [1, 0, 1, 1, 0, 0, 1, 0]),
    "self-interaction": lambda: self_interaction_fixture([4, 7], 3, 5),
    "preprocessed-cached": lambda: preprocessed_and_cached_fixture([1, 0, 0, 1, 1, 0, 1, 0], 3),
    "sum": sum_fixture,
}


def _traces(airs, traces) -> list:
    """:class:`TraceData` of every present trace (the prover's evaluators and layouts)."""
    params = default_test_params_small()
    pk, _ = keygen(airs, params)
    out = []
    for a, t in enumerate(traces):
        if t is None:
            continue
        common = mx.array(np.asarray(t.common_main, dtype=np.uint32))
        cached = [mx.array(np.asarray(c, dtype=np.uint32)) for c in t.cached_mains]
        h = common.shape[0].bit_length() - 1
        tr = SimpleNamespace(air_id=a, common_main=common, cached_mains=cached,
                             public_values=[int(v) for v in t.public_values], log_height=h)
        out.append(prepare_trace(pk, params.l_skip, tr))
    return out


@pytest.fixture(scope="module")
def fixture_traces():
    return {name: _traces(fx().airs, fx().traces) for name, fx in FIXTURES.items()}


@pytest.fixture(scope="module")
def keccak_trace():
    trace = keccakf_trace(random_keccakf_inputs(1, 3))
    return _traces([KeccakfAir()], [SimpleNamespace(common_main=trace, cached_mains=(), public_values=())])[0]


def _rand_ef(rng) -> EF:
    return EF(*(int(x) for x in rng.integers(0, bb.P, 4)))


def _form_sets(tr, seed: int) -> dict:
    """Forms as the prover builds them, with random weights: round 0 / multilinear rounds
    (``Σ λ^i·C_i`` and the two LogUp forms) and the GKR leaves (per interaction)."""
    rng = np.random.default_rng(seed)
    lam = [_rand_ef(rng) for _ in tr.dag.constraint_idx]
    eq3b = [_rand_ef(rng) for _ in tr.dag.interactions]
    rounds = [tr.constraint_form(lam)] + tr.interaction_forms(eq3b, _rand_ef(rng))
    gkr = []
    for s, it in enumerate(tr.dag.interactions):
        ws = [(("m", s, j), _rand_ef(rng)) for j in range(len(it.message))]
        gkr += [Form([(("n", s), EF(tr.norm))], EF.zero()), Form(ws, _rand_ef(rng))]
    return {"rounds": (tr.evaluator, rounds), "gkr": (tr.interactions_evaluator, gkr)}


def _inputs(tr, points: int, base: bool, seed: int, blocks: int = 1) -> mx.array:
    """Random needed-column values ``(Q, Wn, X)`` (``base``) or ``(Q, Wn, X, 4)``."""
    shape = (blocks, len(tr.needed), points) + (() if base else (4,))
    return bb.random(shape, seed)


def _eq(a, b) -> bool:
    return all(np.array_equal(np.array(x), np.array(y)) for x, y in zip(a, b)) and len(a) == len(b)


# ---------------------------------------------------------------- sources
def check_generated(src) -> None:
    """A generated kernel: the structure of every kernel, no pointer declarations at all, no
    barriers."""
    check_twins(src)
    assert not re.search(r"uint(32|64)_t\s*\*", src.header + src.body)
    assert "BARRIER" not in src.body


def test_sources_for_every_air(fixture_traces, keccak_trace):
    names = set()
    for tr in [t for trs in fixture_traces.values() for t in trs] + [keccak_trace]:
        for evaluator, forms in _form_sets(tr, 0).values():
            for base in (True, False):
                kernel = kc.kernel_for(evaluator.leaves, forms, base)
                src = kernel.source
                check_generated(src)
                assert src.name.startswith("air_eval_bb_" if base else "air_eval_ef_")
                assert kc.kernel_for(evaluator.leaves, forms, base) is kernel  # cached
                names.add(src.name)
    # KeccakfAir repeats its constraints over columns: a few small templates
    kernel = kc.kernel_for(keccak_trace.leaves, _form_sets(keccak_trace, 0)["rounds"][1], True)
    assert len(kernel.templates) <= 32 and max(len(t.nodes) for t in kernel.templates) < 512
    assert sum(t.count for t in kernel.templates) == len(keccak_trace.dag.constraint_idx)
    assert len(names) > 2 * len(FIXTURES)


def test_templates_reproduce_the_dag(fixture_traces):
    """Evaluating the templates' instances on the host gives each slot's node value."""
    from mlx_stark.air.evaluate import Host, evaluate_dag
    for tr in fixture_traces["preprocessed-cached"] + fixture_traces["interactions"]:
        evaluator, forms = _form_sets(tr, 1)["rounds"]
        kernel = kc.kernel_for(evaluator.leaves, forms, True)
        prog = np.array(kernel.prog)
        rng = np.random.default_rng(5)
        row_values = [int(x) for x in rng.integers(0, bb.P, len(tr.needed))]
        consts = [tr.leaves.leaf(i)[1] for i in kernel.runtime]
        got = {}
        for tpl in kernel.templates:
            for j in range(tpl.count):
                params = [int(x) for x in prog[tpl.offset + j * tpl.stride:][:tpl.stride]]
                vals, k = [], 0
                for node in tpl.nodes:
                    if node[0] in ("in", "rt"):
                        vals.append(row_values[params[k]] if node[0] == "in" else consts[params[k]])
                        k += 1
                    elif node[0] == "lit":
                        vals.append(node[1])
                    elif node[0] == "neg":
                        vals.append(-vals[node[1]] % bb.P)
                    else:
                        a, b = vals[node[1]], vals[node[2]]
                        vals.append({"add": a + b, "sub": a - b, "mul": a * b}[node[0]] % bb.P)
                got[params[-1]] = vals[-1]
        res = evaluate_dag(tr.dag, Host, tr.leaves.make_inputs(lambda r: row_values[r]))
        slots = [s for f in forms for s, _ in f.terms]
        for k, slot in enumerate(slots):
            if slot[0] == "c":
                want = res.constraints[slot[1]]
            elif slot[0] == "n":
                want = res.interactions[slot[1]][1]
            else:
                want = res.interactions[slot[1]][0][slot[2]]
            assert got[k] == want % bb.P, slot
        assert len(got) == len(slots)


# ---------------------------------------------------------------- CPU emulation
emulated = emulation(kc)
emulated_cuda = emulation(kc, dialects=("cuda",))


def _compare(tr, points: int, seed: int) -> None:
    for evaluator, forms in _form_sets(tr, seed).values():
        for base in (True, False):
            for blocks in (1, 3):
                cols = _inputs(tr, points, base, seed, blocks)
                assert _eq(kc.evaluate_forms(evaluator.leaves, forms, cols, base),
                           evaluator.evaluate_blocks(forms, cols, base)), (base, blocks)


@pytest.mark.parametrize("name", list(FIXTURES))
def test_emulated_equals_ops(emulated, fixture_traces, name, monkeypatch):
    # one part per launch (each block row takes every instance), then up to three parts
    # (partial sums added), on 37 points (a partial block)
    for target in (37, 3 * 37):
        monkeypatch.setattr(sizing, "TARGET_THREADS", target)
        for k, tr in enumerate(fixture_traces[name]):
            _compare(tr, 37, k + target)


@pytest.mark.parametrize("name", ["fib", "interactions", "preprocessed-cached"])
def test_emulated_contracted_equals_ops(emulated, fixture_traces, name, monkeypatch):
    """The forms summed with a weighting (round 0): the kernel's parts (one, then several per
    launch) summed with the weights equal the ops path's forms contracted one by one."""
    for target in (24, 3 * 24):
        monkeypatch.setattr(sizing, "TARGET_THREADS", target)
        for k, tr in enumerate(fixture_traces[name]):
            for evaluator, forms in _form_sets(tr, k + target).values():
                if not forms:
                    continue
                cols = _inputs(tr, 24, True, k + target)[0]  # (Wn, X·S), X = 3, S = (2, 4)
                weights = bb.random((3, 4), k)
                route(monkeypatch, {})  # the ops path
                want = evaluator.contracted(forms, cols, True, weights, (2, 4))
                calls = route(monkeypatch, {"constraint_eval.DagEvaluator.contracted": kc.evaluate_parts})
                got = evaluator.contracted(forms, cols, True, weights, (2, 4))
                assert calls and got.shape == (len(forms), 2, 4, 4)
                assert np.array_equal(np.array(got), np.array(want)), (tr.air_id, target)


def test_emulated_keccakf(emulated, keccak_trace, monkeypatch):
    monkeypatch.setattr(sizing, "TARGET_THREADS", 4 * 5)
    evaluator, forms = _form_sets(keccak_trace, 7)["rounds"]
    for base in (True, False):
        cols = _inputs(keccak_trace, 5, base, 3, 2)
        assert _eq(kc.evaluate_forms(evaluator.leaves, forms, cols, base),
                   evaluator.evaluate_blocks(forms, cols, base))


def test_emulated_proofs_match_golden(emulated_cuda, monkeypatch):
    """Whole proofs with the constraint kernels (emulated; the Metal twin is covered above)
    give the golden fingerprints."""
    from .golden import fingerprint, golden_workloads
    from .test_golden_fingerprints import GOLDEN

    calls = route(monkeypatch, {"constraint_eval.DagEvaluator.evaluate_blocks": kc.evaluate_forms,
                                "constraint_eval.DagEvaluator.contracted": kc.evaluate_parts})
    for w in golden_workloads():
        assert fingerprint(w) == GOLDEN[w.name], w.name
    assert set(calls) == {"constraint_eval.DagEvaluator.evaluate_blocks",
                          "constraint_eval.DagEvaluator.contracted"}


# ---------------------------------------------------------------- on the GPU
def _device_compare(reference, tr, points: int, seed: int, blocks: int = 1) -> None:
    for evaluator, forms in _form_sets(tr, seed).values():
        for base in (True, False):
            cols = _inputs(tr, points, base, seed, blocks)
            got = evaluator.evaluate_blocks(forms, cols, base)  # native kernel on the GPU
            ref = reference(lambda: evaluator.evaluate_blocks(forms, cols, base))  # MLX ops on the CPU
            assert _eq(got, ref), (base, points, blocks)


@needs_native
def test_device_equals_ops(reference, fixture_traces, keccak_trace):
    for trs in fixture_traces.values():
        for k, tr in enumerate(trs):
            for points, blocks in ((1, 1), (129, 1), (5000, 1), (33, 5)):
                _device_compare(reference, tr, points, k + points, blocks)
    for points, blocks in ((1, 1), (3, 1), (130, 1), (7, 3)):
        _device_compare(reference, keccak_trace, points, points, blocks)
