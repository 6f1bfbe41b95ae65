"""Proof bytes are a deterministic function of (keys, traces, params): the same digests on
every device and kernel path, and across releases unless the protocol changes."""
import pytest

from .golden import fingerprint, golden_workloads

GOLDEN = {
    "fib-16": "760f5b688a2a1ad0efcee606d8ea6dfcaeac05412f35892f6c94aa62cf83fbb3",
    "interactions-11": "6a88221e4d25bcb482b863fbbd630a09bddb0fec2471428edd9c7f3e888550ea",
    "mixture-3": "582262e6eb6d44150b7ca203f58aea65ed65a90f5809ece7528c4bca2310215a",
    "keccakf-1": "d7d027cb857dffa5b8df7f2565e8ebfbe9b6954bad0f04fc2d4070c4b0ce4bb0",
}


@pytest.mark.parametrize("workload", golden_workloads(), ids=lambda w: w.name)
def test_golden_fingerprint(workload, on_device):
    assert fingerprint(workload) == GOLDEN[workload.name]
