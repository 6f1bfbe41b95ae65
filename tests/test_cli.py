"""The ``mlx-stark`` command line on small sizes (click's CliRunner)."""
import json

from click.testing import CliRunner

from mlx_stark.bench import CALL, KPI_SPANS
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
    res = CliRunner().invoke(main, ["fib", "--log-height", "21"])
    assert res.exit_code != 0
    assert "InvalidInputError" in res.output and "Traceback" not in res.output
