"""The ``mlx-stark`` command line on small sizes (click's CliRunner)."""
import json

from click.testing import CliRunner

from mlx_stark.bench import KPI_SPANS
from mlx_stark.cli import main


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
    assert data["runs"] == 2 and len(data["raw"]) == 2
    assert set(data["summary"]) <= set(KPI_SPANS)
    assert "stark_prove_excluding_trace" in data["summary"]
    s = data["summary"]["stark_prove_excluding_trace"]
    assert s["min"] <= s["median"] <= s["max"]
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
