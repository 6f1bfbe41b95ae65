"""The ``mlx-stark`` command line on small sizes (click's CliRunner)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import click
import mlx.core as mx
import pytest
from click.testing import CliRunner

import mlx_stark as ms
from mlx_stark import bench, device, workloads
from mlx_stark.bench import CALL, KPI_SPANS
from mlx_stark.cli import main

ROOT = str(Path(__file__).resolve().parents[1])


def test_info_reports_device_and_kernel_path():
    res = CliRunner().invoke(main, ["info", "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["backend"] in ("cpu", "cuda", "metal")
    assert isinstance(data["native_kernels"], bool)


def test_logup_prove_verify_roundtrip(tmp_path):
    runner = CliRunner()
    report, proof, trace = tmp_path / "r.json", tmp_path / "p.bin", tmp_path / "t.json"
    res = runner.invoke(main, ["logup", "--runs", "2", "--json", str(report), "--proof",
                               str(proof), "--trace", str(trace)])
    assert res.exit_code == 0, res.output
    data = json.loads(report.read_text())
    assert data["runs"] == 2 and len(data["raw"]) == 2 and len(data["calls"]) == 2
    assert list(data["summary"])[0] == CALL  # the plain call comes first
    assert set(data["summary"]) <= {CALL, *KPI_SPANS}
    for name in (CALL, "stark_prove_excluding_trace"):
        s = data["summary"][name]
        assert s["min"] <= s["median"] <= s["max"]
        assert s["syncs"] >= 1 and s["peak_mb"] > 0
    # the span tree carries the counters of every stage
    assert data["raw"][0]["counters"]["prover.rap_constraints.logup_gkr"]["syncs"] >= 1
    events = json.loads(trace.read_text())["traceEvents"]
    assert any(e["name"] == "prover.rap_constraints.logup_gkr" for e in events)

    ok = runner.invoke(main, ["verify", str(proof), "--air", "logup"])
    assert ok.exit_code == 0 and "OK" in ok.output
    blob = bytearray(proof.read_bytes())
    blob[-5] ^= 1
    proof.write_bytes(bytes(blob))
    bad = runner.invoke(main, ["verify", str(proof), "--air", "logup"])
    assert bad.exit_code == 1 and "REJECTED" in bad.output


def test_keccakf_single_permutation():
    res = CliRunner().invoke(main, ["keccakf", "--permutations", "1", "--runs", "1"])
    assert res.exit_code == 0, res.output
    assert "prover.main_trace_commit" in res.output and "verified" in res.output


def test_errors_are_one_line():
    res = CliRunner().invoke(main, ["logup", "--scale", "3"])
    assert res.exit_code != 0
    assert "InvalidInputError" in res.output and "Traceback" not in res.output


def test_fib_rejects_a_height_above_the_stacked_height():
    _one_line_error(CliRunner().invoke(main, ["fib", "--log-height", "21"]), "'--log-height'")


# ------------------------------------------------ issue 15: one-line errors, progress, polish
def _one_line_error(res, *needles):
    """A refused command: non-zero exit, one ``Error:`` line on stderr, nothing else."""
    assert res.exit_code != 0, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), res.stderr
    for n in needles:
        assert n in lines[0], lines[0]


@pytest.mark.parametrize("args, needle", [
    (["bench", "--warmup", "-1"], "'--warmup'"),
    (["bench", "--runs", "0"], "'--runs'"),
    (["logup", "--runs", "0"], "'--runs'"),
    (["logup", "--json", "no-such-dir/r.json"], "'--json'"),
    (["logup", "--trace", "no-such-dir/t.json"], "'--trace'"),
    (["logup", "--proof", "{file}/p.bin"], "is not a directory"),
    (["bench", "--out", "{file}/results"], "is not a directory"),
    (["keccakf", "--permutations", "1000000000"], "InsufficientMemoryError"),
    (["logup", "--scale", str(1 << 30)], "GiB available"),
])
def test_bad_arguments_fail_in_one_line_before_any_work(tmp_path, monkeypatch, args, needle):
    monkeypatch.chdir(tmp_path)
    Path("file").write_text("")
    res = CliRunner().invoke(main, [a.format(file="file") for a in args])
    _one_line_error(res, needle)
    assert not list(tmp_path.glob("*.json"))


def test_memory_estimate_refuses_what_does_not_fit(monkeypatch):
    # the case was keccakf 2048 under a 6 GB limit (it segfaulted after 31 s); since the
    # peak-memory work it needs ~5 GiB, so 4096 (~10 GiB) is the case that does not fit now
    monkeypatch.setattr(workloads, "available_memory", lambda: 6 << 30)
    with pytest.raises(ms.InsufficientMemoryError, match="needs about .* GiB, 6.0 GiB available"):
        workloads.keccakf(4096)
    workloads.check_memory("keccakf", (1 << 15) * 2633)  # keccakf 1024 (2.7 GiB measured) fits
    assert device.available_memory() > 0


@pytest.mark.skipif(mx.is_available(mx.gpu), reason="needs a CPU-only machine")
def test_gpu_on_cpu_only_machine():
    _one_line_error(CliRunner().invoke(main, ["logup", "--device", "gpu"]),
                    "ConfigError", "no GPU")


def test_bad_kernel_setting_shown_by_info_and_refused_by_provers():
    runner = CliRunner(env={"MLX_STARK_KERNELS": "fast"})
    res = runner.invoke(main, ["info"])
    assert res.exit_code == 1 and "kernel_mode: fast" in res.stdout
    assert "ConfigError: MLX_STARK_KERNELS must be one of" in res.stderr
    _one_line_error(runner.invoke(main, ["logup"]), "MLX_STARK_KERNELS")


def test_bad_device_setting_does_not_break_import():
    # MLX_STARK_DEVICE is read on `import mlx_stark`: a subprocess sees it from the start
    res = subprocess.run([sys.executable, "-m", "mlx_stark.cli", "info", "--json"],
                         capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": ROOT, "MLX_STARK_DEVICE": "tpu"})
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert "MLX_STARK_DEVICE=tpu" in json.loads(res.stdout)["config_error"]
    assert res.stderr.strip().startswith("Error: ConfigError: MLX_STARK_DEVICE=tpu")


def test_scripts_use_the_clean_error_wrapper():
    res = subprocess.run([sys.executable, "scripts/logup.py", "--runs", "0"], capture_output=True,
                         text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": ROOT})
    assert res.returncode != 0
    assert res.stderr.strip() == "Error: Invalid value for '--runs': 0 is not in the range x>=1."


def test_proof_file_is_the_last_timed_proof_and_progress_on_stderr(tmp_path, monkeypatch):
    proofs = []
    real_prove = bench.prove

    def prove(*args):
        proof = real_prove(*args)
        proofs.append(proof.to_bytes())
        return proof

    monkeypatch.setattr(bench, "prove", prove)
    path = tmp_path / "p.bin"
    res = CliRunner().invoke(main, ["logup", "--runs", "1", "--warmup", "1", "--progress",
                                    "--proof", str(path)])
    assert res.exit_code == 0, res.output
    # warm-up, a plain call and a span run, nothing after the table: the file holds the last
    assert len(proofs) == 3 and path.read_bytes() == proofs[-1]
    assert "warm-up 1/1" in res.stderr and "prover.rap_constraints" in res.stderr
    assert "call 1/1:" in res.stderr and "spans 1/1:" in res.stderr and "[" in res.stderr
    assert "warm-up" not in res.stdout and "[####" not in res.stdout


def test_no_progress_keeps_only_run_lines():
    res = CliRunner().invoke(main, ["logup", "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "logup-x1 call 1/1:" in res.stderr and "logup-x1 spans 1/1:" in res.stderr
    assert "prover.openings" not in res.stderr


def test_version_and_help_on_every_option():
    res = CliRunner().invoke(main, ["--version"])
    assert res.exit_code == 0 and ms.__version__ in res.stdout
    for name, cmd in main.commands.items():
        for p in cmd.params:
            if isinstance(p, click.Option):
                assert p.help, f"{name} {p.opts} has no help"


def test_missing_compiler_is_reported(monkeypatch):
    monkeypatch.setattr(device.shutil, "which", lambda name: None)
    monkeypatch.setattr(device, "backend", lambda: "cpu")
    res = CliRunner().invoke(main, ["info"])
    assert res.exit_code == 0 and "cxx_compiler: not found" in res.stdout
    assert "warning: g++ not found on PATH" in res.stderr


def test_keygen_file_and_verify_with_vk(tmp_path):
    runner = CliRunner()
    proof, key, other, broken = (tmp_path / n for n in ("p.bin", "k.vk", "o.vk", "b.vk"))
    assert runner.invoke(main, ["logup", "--no-verify", "--proof", str(proof)]).exit_code == 0
    res = runner.invoke(main, ["keygen", "--air", "logup", "--out", str(key)])
    assert res.exit_code == 0, res.output
    ok = runner.invoke(main, ["verify", str(proof), "--vk", str(key)])
    assert ok.exit_code == 0 and "OK" in ok.output, ok.output

    # a key of another size: the rejection names the proof's size
    assert runner.invoke(main, ["keygen", "--air", "logup", "--scale", "8", "--out", str(other)]).exit_code == 0
    bad = runner.invoke(main, ["verify", str(proof), "--vk", str(other)])
    assert bad.exit_code == 1 and "REJECTED" in bad.output and "n_stack" in bad.output
    assert "the proof has 8" in bad.output, bad.output

    broken.write_bytes(key.read_bytes()[:-1])
    res = runner.invoke(main, ["verify", str(proof), "--vk", str(broken)])
    assert res.exit_code != 0 and "KeyDecodeError" in res.output and "Traceback" not in res.output
    both = runner.invoke(main, ["verify", str(proof), "--vk", str(key), "--air", "logup"])
    assert both.exit_code != 0 and "exactly one of --vk and --air" in both.output


def test_warmup_proves_once_and_shows_the_caches(tmp_path, monkeypatch):
    monkeypatch.setenv("MLX_STARK_CACHE", str(tmp_path))
    res = CliRunner().invoke(main, ["warmup", "--workload", "logup", "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "logup-x1: ready in" in res.stdout
    assert f"cache root: {tmp_path}" in res.stdout and "cache  ptx:" in res.stdout
