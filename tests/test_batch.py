"""``prove-batch`` / ``verify-batch``: manifests, failures that do not stop the batch, resume,
atomic writes, and two ranks through ``mlx.launch`` (ring backend on loopback) giving the
single-process proof bytes."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import mlx_stark as ms
from mlx_stark import workloads
from mlx_stark.batch import load_manifest, prove_batch, verify_batch

JOBS = [{"name": "lu-1", "workload": "logup", "size": 1},
        {"name": "lu-2", "workload": "logup", "size": 2},
        {"name": "lu-4", "workload": "logup", "size": 4},
        {"name": "lu-1b", "workload": "logup", "size": 1}]


def _file_jobs(tmp: Path):
    """A valid and an invalid (unbalanced) job from trace files and a key file."""
    w = workloads.logup(2)
    _, vk = ms.keygen(w.airs, w.params)
    (tmp / "lu.vk").write_bytes(vk.to_bytes())
    for i, inp in enumerate(w.inputs):
        np.save(tmp / f"t{i}.npy", inp.common_main)
    bad = w.inputs[0].common_main.copy()
    bad[1, 0] += 1  # a sent count changes: the bus no longer balances
    np.save(tmp / "bad0.npy", bad)
    good = {"name": "files", "workload": "logup", "key": "lu.vk",
            "inputs": [{"trace": "t0.npy"}, {"trace": "t1.npy"}]}
    invalid = {"name": "unbalanced", "workload": "logup", "key": "lu.vk",
               "inputs": [{"trace": "bad0.npy"}, {"trace": "t1.npy"}]}
    return [good, invalid]


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    """One single-process run of a manifest (4 workload jobs, 2 file jobs, one invalid)."""
    tmp = tmp_path_factory.mktemp("batch")
    manifest = tmp / "jobs.json"
    manifest.write_text(json.dumps({"jobs": JOBS + _file_jobs(tmp)}))
    summary = prove_batch(manifest, tmp / "out", check=True)
    return tmp, manifest, summary


def _expected_bytes(job: dict, tmp: Path) -> bytes:
    """The proof a plain ``ms.prove`` call gives for a job."""
    if "inputs" in job:
        w = workloads.logup(2)
        pk, _ = ms.keygen(w.airs, w.params)
        inputs = [ms.AirInput(np.load(tmp / i["trace"])) for i in job["inputs"]]
    else:
        w = workloads.logup(job["size"])
        pk, _ = ms.keygen(w.airs, w.params)
        inputs = w.inputs
    return ms.prove(pk, inputs).to_bytes()


def test_batch_proves_every_valid_job_and_reports_the_invalid_one(batch):
    tmp, _, summary = batch
    status = {j["name"]: j["status"] for j in summary.jobs}
    assert status == {"lu-1": "proved", "lu-2": "proved", "lu-4": "proved", "lu-1b": "proved",
                      "files": "proved", "unbalanced": "failed"}
    (failed,) = summary.failed
    assert failed["error"].startswith("UnbalancedInteractions") and "bus 0" in failed["error"]
    out = tmp / "out"
    assert not (out / "unbalanced.proof").exists()
    assert not list(out.glob(".*.tmp"))  # atomic writes leave no temporaries
    # keys were generated once per distinct workload key and shared by the jobs using them
    assert sorted(p.name for p in (out / "keys").iterdir()) == ["logup-x1.vk", "logup-x2.vk",
                                                               "logup-x4.vk"]
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk["ranks"] == 1 and len(on_disk["jobs"]) == 6
    assert on_disk["per_rank"][0]["proved"] == 5


def test_batch_proofs_equal_single_process_proofs(batch):
    tmp, manifest, _ = batch
    jobs = json.loads(manifest.read_text())["jobs"]
    for job in (jobs[0], jobs[2], jobs[4]):
        assert (tmp / "out" / f"{job['name']}.proof").read_bytes() == _expected_bytes(job, tmp)


def test_verify_batch_accepts_the_batch_and_rejects_a_tampered_proof(batch, tmp_path):
    tmp, _, _ = batch
    rows = verify_batch(tmp / "out")
    assert [r["name"] for r in rows] == ["lu-1", "lu-2", "lu-4", "lu-1b", "files"]
    assert all(r["ok"] for r in rows)
    copy = tmp_path / "out"
    shutil.copytree(tmp / "out", copy)
    data = bytearray((copy / "lu-2.proof").read_bytes())
    data[len(data) // 2] ^= 1
    (copy / "lu-2.proof").write_bytes(bytes(data))
    rows = {r["name"]: r for r in verify_batch(copy)}
    assert not rows["lu-2"]["ok"] and rows["lu-2"]["error"].startswith("VerificationError")
    assert rows["lu-1"]["ok"]


def test_rerun_skips_verified_proofs_and_redoes_missing_or_bad_ones(batch, tmp_path):
    tmp, manifest, _ = batch
    out = tmp_path / "out"
    shutil.copytree(tmp / "out", out)
    reference = {p.name: p.read_bytes() for p in out.glob("*.proof")}
    (out / "lu-2.proof").unlink()
    (out / "lu-4.proof").write_bytes(b"torn")  # not a proof: proved again
    summary = prove_batch(manifest, out)
    status = {j["name"]: j["status"] for j in summary.jobs}
    assert status == {"lu-1": "skipped", "lu-2": "proved", "lu-4": "proved", "lu-1b": "skipped",
                      "files": "skipped", "unbalanced": "failed"}
    assert {p.name: p.read_bytes() for p in out.glob("*.proof")} == reference


def test_manifest_errors_are_clear(tmp_path):
    def bad(data, match, name="m.json"):
        p = tmp_path / name
        p.write_text(data if isinstance(data, str) else json.dumps(data))
        with pytest.raises(ms.InvalidInputError, match=match):
            load_manifest(p)

    bad("{", "manifest")
    bad({"jobs": []}, "non-empty list")
    bad({"jobs": [{"name": "../x", "workload": "fib"}]}, "'name'")
    bad({"jobs": [{"name": "a", "workload": "fib"}, {"name": "a", "workload": "fib"}]}, "twice")
    bad({"jobs": [{"name": "a", "workload": "sha"}]}, "'workload'")
    bad({"jobs": [{"name": "a", "workload": "logup", "size": 3}]}, "power of two")
    bad({"jobs": [{"name": "a", "workload": "fib", "key": "k.vk"}]}, "go together")
    bad({"jobs": [{"name": "a", "workload": "fib", "colour": 1}]}, "unknown fields")
    p = tmp_path / "m.toml"
    p.write_text('[[jobs]]\nname = "a"\nworkload = "logup"\nsize = 2\n')
    (job,) = load_manifest(p)
    assert (job.name, job.workload, job.size, job.key_id) == ("a", "logup", 2, "logup-x2")


def _cli(*args) -> list:
    return [sys.executable, "-m", "mlx_stark.cli", *args]


def _launcher() -> str:
    found = shutil.which("mlx.launch") or str(Path(sys.executable).with_name("mlx.launch"))
    if not Path(found).exists():
        pytest.skip("mlx.launch is not installed")
    return found


def test_two_ranks_share_the_batch_and_give_the_same_bytes(batch, tmp_path):
    tmp, manifest, _ = batch
    out = tmp_path / "out"
    run = subprocess.run([_launcher(), "-n", "2", "--backend", "ring", "--",
                          *_cli("prove-batch", str(manifest), "--out", str(out))],
                         capture_output=True, text=True, timeout=900, cwd=tmp_path)
    summary = json.loads((out / "summary.json").read_text())
    assert [j["name"] for j in summary["jobs"] if j["status"] == "failed"] == ["unbalanced"], run.stderr
    assert summary["ranks"] == 2
    assert [j["rank"] for j in summary["jobs"]] == [0, 1, 0, 1, 0, 1]  # round robin
    assert [r["jobs"] for r in summary["per_rank"]] == [3, 3]
    for p in (tmp / "out").glob("*.proof"):
        assert (out / p.name).read_bytes() == p.read_bytes()
    assert all(r["ok"] for r in verify_batch(out))


def test_a_killed_batch_resumes(batch, tmp_path):
    tmp, manifest, _ = batch
    out = tmp_path / "out"
    proc = subprocess.Popen(_cli("prove-batch", str(manifest), "--out", str(out)),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    while not list(out.glob("*.proof")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    summary = prove_batch(manifest, out)
    assert {j["name"] for j in summary.jobs if j["status"] == "skipped"}  # kept what was done
    for p in (tmp / "out").glob("*.proof"):
        assert (out / p.name).read_bytes() == p.read_bytes()
    assert not list(out.glob(".*.tmp"))  # a write cut by the kill is cleaned up by the rerun


def test_local_ranks_start_a_ring_group_without_the_launcher(batch, tmp_path):
    tmp, manifest, _ = batch
    out = tmp_path / "out"
    run = subprocess.run(_cli("prove-batch", str(manifest), "--out", str(out), "--local-ranks", "2"),
                         capture_output=True, text=True, timeout=900)
    assert run.returncode == 1, run.stderr  # the invalid job; every other job proved
    summary = json.loads((out / "summary.json").read_text())
    assert summary["ranks"] == 2 and [r["jobs"] for r in summary["per_rank"]] == [3, 3]
    assert "2 rank(s), 6 jobs, 1 failed" in run.stdout
    for p in (tmp / "out").glob("*.proof"):
        assert (out / p.name).read_bytes() == p.read_bytes()
