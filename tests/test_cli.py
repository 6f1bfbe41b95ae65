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
