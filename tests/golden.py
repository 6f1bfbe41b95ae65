"""Golden proof fingerprints: blake3 of the proof bytes of small fixed workloads.

They must not change unless the protocol (or a fixture) does; the same digests are expected on
every device and kernel path. ``python -m tests.golden`` prints the current digests.
"""
from __future__ import annotations

import blake3

import mlx_stark as ms
from mlx_stark import workloads
from mlx_stark.airs import fib_fixture, interactions_fixture_11, mixture_fixture_standard
from mlx_stark.params import default_test_params_small


def _fixture_workload(name, fx):
    inputs = [None if t is None else ms.AirInput(t.common_main, t.public_values, t.cached_mains)
              for t in fx.traces]
    return workloads.Workload(name, fx.airs, default_test_params_small(), inputs)


def golden_workloads():
    return [
        _fixture_workload("fib-16", fib_fixture(0, 1, 16)),
        _fixture_workload("interactions-11", interactions_fixture_11()),
        _fixture_workload("mixture-3", mixture_fixture_standard(3)),
        workloads.keccakf(1),
    ]


def fingerprint(w) -> str:
    pk, vk = ms.keygen(w.airs, w.params)
    blob = ms.prove(pk, w.inputs).to_bytes()
    ms.verify(vk, blob)
    return blake3.blake3(blob).hexdigest()


if __name__ == "__main__":
    import json

    print(json.dumps({w.name: fingerprint(w) for w in golden_workloads()}, indent=1))
