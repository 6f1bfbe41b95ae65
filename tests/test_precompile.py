"""A proof's kernels compiled ahead (prover/precompile.py, custom_kernels.precompile, the cubin
cache's one-compile-per-kernel rule): the constraint kernels predicted before a proof are
exactly those its stages ask for, a kernel compiles once however many threads want it, and a
failed compile reaches every waiter.

The proofs here run on the MLX-ops path (no GPU): the constraint-kernel operations are routed
to recorders that note the kernel the native path would launch and return the ops result.
"""
import threading
import time

import mlx.core as mx
import pytest

import mlx_stark as ms
from mlx_stark import custom_kernels, workloads
from mlx_stark.custom_kernels import cubin
from mlx_stark.custom_kernels.constraints import kernel_for
from mlx_stark.custom_kernels import poseidon2
from mlx_stark.custom_kernels.poseidon2 import leaf_source
from mlx_stark.hash.merkle import MerkleTree
from mlx_stark.prover import precompile
from mlx_stark.prover.batch_constraints.mle_rounds import line_points
from mlx_stark.prover.constraint_eval import DagEvaluator

from .kernel_helpers import needs_native, ops_path, route


def _record_proof(monkeypatch, w) -> tuple:
    """Prove ``w`` on the ops path; returns (predicted sources, sources the stages asked for:
    constraint kernels and the commitments' leaf-group kernels)."""
    predicted, asked = [], set()

    def start(pk, traces, widths):
        predicted.extend(precompile.constraint_sources(pk, pk.params.l_skip, traces))
        predicted.extend(precompile.commit_sources(pk.params, widths))

    monkeypatch.setattr(precompile, "start", start)

    def commit(matrix, k):
        asked.add(leaf_source(*matrix.shape, k))
        return MerkleTree._blocks(matrix, k)

    def blocks(leaves, forms, cols, base):
        asked.add(kernel_for(leaves, forms, base).source)
        return ops_path(lambda: DagEvaluator(leaves, True).evaluate_blocks(forms, cols, base))

    def parts(leaves, forms, cols, base):  # one part
        asked.add(kernel_for(leaves, forms, base).source)
        return ops_path(lambda: mx.stack(DagEvaluator(leaves, True).evaluate_blocks(forms, cols, base)))[None]

    def head(leaves, forms, table, colmap, degree):
        asked.add(kernel_for(leaves, forms, False, mle=True).source)
        return ops_path(lambda: mx.stack(DagEvaluator(leaves, True).evaluate(
            forms, line_points(table, colmap, degree), base=False)))[None]  # one part

    pk, vk = ms.keygen(w.airs, w.params)  # (commits the preprocessed traces, if any)
    route(monkeypatch, {"constraint_eval.DagEvaluator.evaluate_blocks": blocks,
                        "constraint_eval.DagEvaluator.contracted": parts,
                        "mle_rounds.head_values": head, "merkle.MerkleTree.commit": commit})
    proof = ms.prove(pk, w.inputs)
    ms.verify(vk, proof)
    return predicted, asked


@pytest.mark.parametrize("split", [False, True])
@pytest.mark.parametrize("make", [lambda: workloads.fib(6), lambda: workloads.logup(2)],
                         ids=["fib", "logup"])
def test_predicted_constraint_kernels_are_those_the_proof_launches(monkeypatch, make, split):
    """``split``: the stacked commitments hash their rows apart from their leaf groups (as
    large ones do); else every commitment hashes its rows and leaf groups in one launch."""
    work = make()
    p = work.params
    monkeypatch.setattr(poseidon2, "FUSED_GROUP_ROWS",
                        1 << (p.log_stacked_height + p.log_blowup - (1 if split else 0)))
    predicted, asked = _record_proof(monkeypatch, work)
    assert asked  # the recorders were reached: the comparison means something
    assert set(predicted) == asked
    kinds = {s.name.split("_w")[0] for s in asked if s.name.startswith("p2_")}
    assert ("p2_hash_rows" in kinds) == split and ("p2_leaf_groups" in kinds) == (
        not split or p.num_whir_rounds > 1)


def test_cubin_compiles_once_for_concurrent_callers(tmp_path, monkeypatch):
    monkeypatch.setenv("MLX_STARK_CACHE", str(tmp_path))
    monkeypatch.setattr(cubin, "nvrtc", lambda: object())
    monkeypatch.setattr(cubin, "nvrtc_version", lambda lib: "0.0")
    calls = []

    def slow_compile(source, name, arch, lib=None):
        calls.append(name)
        time.sleep(0.2)
        return b"cubin:" + source.encode()

    monkeypatch.setattr(cubin, "compile_cubin", slow_compile)
    got = []
    threads = [threading.Thread(target=lambda: got.append(cubin.cached_cubin("src", "k", "sm_90")))
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == ["k"] and got == [b"cubin:src"] * 4
    assert [p.read_bytes() for p in (tmp_path / "cubin").glob("k_*.cubin")] == [b"cubin:src"]
    assert not cubin._PENDING


def test_a_failed_compile_reaches_every_waiter(tmp_path, monkeypatch):
    monkeypatch.setenv("MLX_STARK_CACHE", str(tmp_path))
    monkeypatch.setattr(cubin, "nvrtc", lambda: object())
    monkeypatch.setattr(cubin, "nvrtc_version", lambda lib: "0.0")

    def failing(source, name, arch, lib=None):
        time.sleep(0.2)
        raise cubin.CompileError("no")

    monkeypatch.setattr(cubin, "compile_cubin", failing)
    errors = []

    def call():
        try:
            cubin.cached_cubin("bad", "k", "sm_90")
        except cubin.CompileError as e:
            errors.append(str(e))

    threads = [threading.Thread(target=call) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == ["no"] * 3 and not cubin._PENDING
    assert not list(tmp_path.rglob("*.cubin"))


def test_precompile_submits_each_source_once(monkeypatch):
    monkeypatch.setattr(custom_kernels, "compiles_ahead", lambda: True)
    monkeypatch.setattr(cubin, "usable_arch", lambda: "sm_90")
    monkeypatch.setattr(custom_kernels, "_SUBMITTED", {})
    built = []
    monkeypatch.setattr(cubin, "build", lambda name, *a: built.append(name))
    sources = custom_kernels.fixed_sources()[:5]
    assert custom_kernels.precompile(sources, wait=False) == 0
    assert custom_kernels.precompile(sources[:3]) == 3  # waits; nothing compiles twice
    assert custom_kernels.precompiled() == 5
    assert sorted(built) == sorted(s.mangled() for s in sources)


@pytest.mark.skipif(mx.is_available(mx.gpu), reason="a GPU is here")
def test_off_cuda_nothing_compiles_ahead():
    assert not custom_kernels.compiles_ahead()
    assert custom_kernels.precompile(custom_kernels.fixed_sources()[:2]) == 0


@needs_native
def test_a_first_gpu_proof_hands_its_kernels_to_the_compile_pool():
    if not custom_kernels.compiles_ahead():
        pytest.skip("no cubin cache here (NVRTC or the driver query missing)")
    w = workloads.fib(6)
    pk, vk = ms.keygen(w.airs, w.params)
    ms.verify(vk, ms.prove(pk, w.inputs))
    launched = {k.source for apk in pk.per_air
                for k in apk.vk.symbolic_constraints.cache.get(
                    "custom_kernels.constraints", lambda: None).kernels.values()}
    assert launched and launched <= set(custom_kernels._SUBMITTED)
    assert custom_kernels.precompiled() == len(custom_kernels._SUBMITTED)
