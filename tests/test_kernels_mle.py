"""The multilinear-rounds mode of the generated constraint kernels
(``mle_rounds.head_values``): the kernel reads the column-major folded table directly.

- layout: the column-major fold and transpose of the multilinear rounds equal the row-major
  ones (MLX ops);
- sources: the mle-mode kernel renders in both dialects for every test AIR and KeccakfAir
  (checked as any generated kernel: tests/test_constraint_kernels.py), shares the template
  code of the plain extension kernel (only the point decode and the input reads differ) and
  has its own name;
- emulation (needs g++): the rendered sources run as C++ on the CPU (tests/kernel_helpers.py)
  and equal the MLX-ops evaluation of the points ``X = 1..d`` built from the table, per point
  and after the eq-weighted contraction of ``_head_values``, at ``M = 1, 2, 8``; whole proofs
  with the emulated kernels give the golden fingerprints;
- device: on a GPU with native kernels, ``_head_values`` (kernel) equals the ops path on the
  CPU. Whole proofs on the device are covered by tests/test_golden_fingerprints.py.
"""
import re
from types import SimpleNamespace

import mlx.core as mx
import numpy as np
import pytest

from mlx_stark import custom_kernels
from mlx_stark.airs import KeccakfAir, keccakf_trace, random_keccakf_inputs
from mlx_stark.custom_kernels import constraints as kc
from mlx_stark.custom_kernels import sizing
from mlx_stark.field import bb
from mlx_stark.field.bb import U32
from mlx_stark.poly import fold_lowest
from mlx_stark.prover.batch_constraints import mle_rounds

from .kernel_helpers import emulation, needs_native, route
from .test_constraint_kernels import FIXTURES, _eq, _form_sets, _rand_ef, _traces, check_generated


@pytest.fixture(scope="module")
def fixture_traces():
    return [tr for fx in FIXTURES.values() for tr in _traces(fx().airs, fx().traces)]


@pytest.fixture(scope="module")
def keccak_trace():
    trace = keccakf_trace(random_keccakf_inputs(1, 5))
    return _traces([KeccakfAir()], [SimpleNamespace(common_main=trace, cached_mains=(), public_values=())])[0]


def _case(tr, m: int, seed: int):
    """Random forms (as the prover builds them), column-major folded table ``(W_tot, 2M, 4)``,
    column map and eq-weights ``(M, 4)``."""
    forms = _form_sets(tr, seed)["rounds"][1]
    table = bb.random((tr.width_total, 2 * m, 4), seed)
    weights = bb.random((m, 4), seed + 1)
    return forms, table, mx.array(tr.needed, dtype=U32), weights


def _ops_points(tr, forms, table, degree: int) -> list:
    """The forms at the points ``(X, y)`` built from the table with MLX ops (reference)."""
    v = np.array(table)[np.array(tr.needed)].astype(np.int64)  # (Wn, 2M, 4)
    lo, hi = v[:, 0::2], v[:, 1::2]
    pts = np.stack([(lo + x * (hi - lo)) % bb.P for x in range(1, degree + 1)], axis=1)
    cols = mx.array(pts.reshape(len(tr.needed), -1, 4).astype(np.uint32))
    return tr.evaluator.evaluate(forms, cols, base=False)


# ---------------------------------------------------------------- layout (ops)
def test_column_major_fold_equals_row_major():
    rng = np.random.default_rng(3)
    for rows, w in ((2, 1), (8, 5), (32, 7)):
        row_major = bb.random((rows, w, 4), rows + w)
        col_major = mle_rounds._column_major(row_major)
        assert _eq([col_major], [mx.swapaxes(row_major, 0, 1)])
        r = _rand_ef(rng)
        assert _eq([mle_rounds._fold_rows(col_major, r)],
                   [mx.swapaxes(fold_lowest(row_major, r), 0, 1)])


# ---------------------------------------------------------------- sources
def _shared_lines(body: str) -> list:
    """The body without the point decode and the input reads."""
    lines = body.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("acc4 s0"))
    read = re.compile(r"const (uint64_t a\d+ = |ef v\d+ = (ef_in|EF_LINE)\()")
    return [line for line in lines[start:] if not read.match(line)]


def test_mle_sources(fixture_traces, keccak_trace):
    names = set()
    for tr in fixture_traces + [keccak_trace]:
        forms = _form_sets(tr, 0)["rounds"][1]
        kernel = kc.kernel_for(tr.leaves, forms, False, mle=True)
        plain = kc.kernel_for(tr.leaves, forms, False)
        assert kernel is not plain and kc.kernel_for(tr.leaves, forms, False, mle=True) is kernel
        src = kernel.source
        check_generated(src)
        assert src.name.startswith("air_eval_mle_") and src.name != plain.source.name
        assert src.mangled() != plain.source.mangled()
        assert src.input_names[:2] == ("table", "colmap")
        assert _shared_lines(src.body) == _shared_lines(plain.source.body)
        reads = src.body.count("EF_LINE(")
        assert reads == plain.source.body.count("ef_in(") and reads > 0
        names.add(src.name)
    assert len(names) > len(FIXTURES)
    with pytest.raises(ValueError):
        kc.generate(kernel.templates, kernel.num_forms, False, "x", mle=True)


# ---------------------------------------------------------------- CPU emulation
emulated = emulation(kc)
emulated_cuda = emulation(kc, dialects=("cuda",))


def _compare(tr, m: int, degree: int, seed: int, monkeypatch) -> None:
    forms, table, colmap, weights = _case(tr, m, seed)
    parts = kc.evaluate_mle(tr.leaves, forms, table, colmap, degree)
    assert parts.shape[1:] == (len(forms), degree * m, 4)
    got = bb.sum(parts, axis=0)  # the launch's parts added
    assert _eq([got[g] for g in range(len(forms))], _ops_points(tr, forms, table, degree)), (m, degree)
    ref = mle_rounds._head_values(tr, forms, table, colmap, degree, weights)  # ops (CPU registry)
    with monkeypatch.context() as mp:
        calls = route(mp, {"mle_rounds.head_values": kc.evaluate_mle})
        head = mle_rounds._head_values(tr, forms, table, colmap, degree, weights)
    assert calls and _eq([head], [ref]), (m, degree)


def test_emulated_equals_ops(emulated, fixture_traces, monkeypatch):
    # one part per launch, then several (partial sums added), then the default plan
    for target in (1, 40, sizing.TARGET_THREADS):
        monkeypatch.setattr(sizing, "TARGET_THREADS", target)
        for k, tr in enumerate(fixture_traces):
            for m, degree in ((1, 3), (2, 2), (8, 3)):
                _compare(tr, m, degree, 10 * k + m + target, monkeypatch)


def test_emulated_keccakf(emulated, keccak_trace, monkeypatch):
    monkeypatch.setattr(sizing, "TARGET_THREADS", 3 * 24)
    for m in (1, 2, 8):
        _compare(keccak_trace, m, keccak_trace.degree, m, monkeypatch)


def test_emulated_proofs_match_golden(emulated_cuda, monkeypatch):
    """Whole proofs with the constraint kernels, the multilinear rounds in mle mode (emulated;
    the Metal twin is covered above), give the golden fingerprints."""
    from .golden import fingerprint, golden_workloads
    from .test_golden_fingerprints import GOLDEN

    calls = route(monkeypatch, {"mle_rounds.head_values": kc.evaluate_mle,
                                "constraint_eval.DagEvaluator.evaluate_blocks": kc.evaluate_forms,
                                "constraint_eval.DagEvaluator.contracted": kc.evaluate_parts})
    for w in golden_workloads():
        assert fingerprint(w) == GOLDEN[w.name], w.name
    assert "mle_rounds.head_values" in calls


# ---------------------------------------------------------------- on the GPU
@needs_native
def test_device_equals_ops(reference, fixture_traces, keccak_trace):
    assert custom_kernels.native("mle_rounds.head_values") is not None
    cases = [(tr, m, 3) for tr in fixture_traces for m in (1, 2, 8, 1000)]
    cases += [(keccak_trace, m, keccak_trace.degree) for m in (1, 2, 8, 1024)]
    for k, (tr, m, degree) in enumerate(cases):
        forms, table, colmap, weights = _case(tr, m, k)

        def run():
            return [mle_rounds._head_values(tr, forms, table, colmap, degree, weights),
                    mle_rounds._fold_rows(table, _rand_ef(np.random.default_rng(k)))]

        # the kernel on the GPU, MLX ops on the CPU
        assert _eq(run(), reference(run)), (tr.air_id, m)
