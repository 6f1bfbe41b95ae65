"""Host round trips of a proof: every device→host read goes through ``tracing.read`` / ``wait``
and is counted; a small proof stays within its budget, and so does the fib workload. And no
hidden device work: the prover never makes MLX gather by indexing with a bare integer."""
import traceback

import mlx.core as mx

import mlx_stark as ms
from mlx_stark import tracing, workloads
from mlx_stark.prover import constraint_eval

# Syncs of one warm logup(1) proof, measured on the MLX-ops (CPU) path when the counters came in;
# the budget leaves no room for a new per-round or per-matrix read-back to creep in unnoticed.
LOGUP_SYNC_BUDGET = 111


def _count(pk, inputs):
    before = tracing.totals()
    with tracing.timing() as roots:
        proof = ms.prove(pk, inputs)
    after = tracing.totals()
    return proof, after["syncs"] - before["syncs"], roots


def test_small_proof_sync_count_within_budget():
    w = workloads.logup(1)
    pk, vk = ms.keygen(w.airs, w.params)
    ms.prove(pk, w.inputs)  # first proof of the process: one-time tables (twiddles) are built
    proof, syncs, roots = _count(pk, w.inputs)
    assert 0 < syncs <= LOGUP_SYNC_BUDGET
    # the root span counts every sync of the proof, and its children add up to no more
    root = roots[0]
    assert root.name == "stark_prove_excluding_trace" and root.counters["syncs"] == syncs
    assert sum(c.counters.get("syncs", 0) for c in root.children) == syncs
    ms.verify(vk, proof.to_bytes())


def test_fib_workload_proves_and_verifies():
    w = workloads.fib(4)
    assert [a.name for a in w.airs][1:] == [
        "DummyInteractionAir(send, bus 0)", "DummyInteractionAir(receive, bus 0)",
        "DummyInteractionAir(send, bus 1)", "DummyInteractionAir(receive, bus 1)"]
    pk, vk = ms.keygen(w.airs, w.params)
    proof = ms.prove(pk, w.inputs)
    ms.verify(vk, proof.to_bytes())


def test_the_prover_never_indexes_a_device_array_with_a_bare_integer(monkeypatch):
    """``x[0]`` on an MLX array is a Gather (a kernel launch, and on CUDA a run-time compile of
    seconds in a machine's first proof); ``x[0, ...]`` is a view. Whole proofs of three
    workloads, with the level-by-level and the node-by-node constraint evaluators."""
    found = []
    getitem = mx.array.__getitem__

    def checked(self, key):
        if isinstance(key, int) and not isinstance(key, bool):
            frame = traceback.extract_stack(limit=2)[0]
            if "mlx_stark" in frame.filename:
                found.append(f"{frame.filename}:{frame.lineno}")
        return getitem(self, key)

    monkeypatch.setattr(mx.array, "__getitem__", checked)
    monkeypatch.setattr(constraint_eval, "_LEVEL_MAX_BASE_POINTS", 64)
    for w in (workloads.fib(8), workloads.logup(2), workloads.keccakf(2)):
        pk, vk = ms.keygen(w.airs, w.params)
        ms.verify(vk, ms.prove(pk, w.inputs))
    assert not found, sorted(set(found))
