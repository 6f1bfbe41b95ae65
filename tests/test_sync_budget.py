"""Host round trips of a proof: every device→host read goes through ``tracing.read`` / ``wait``
and is counted; a small proof stays within its budget, and so does the fib workload."""
import mlx_stark as ms
from mlx_stark import tracing, workloads

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
