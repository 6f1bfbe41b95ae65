"""Many independent proofs spread over the ranks of an ``mx.distributed`` group.

``mlx-stark prove-batch`` reads a manifest of jobs, each a workload of a size or trace files
with a key file, and proves every rank's share. Started alone it is a group of one; started
by ``mlx.launch`` (ring backend over TCP, MPI, or NCCL on CUDA, where the launcher pins one GPU
per rank) it is one rank of many. MLX's collectives do all the coordination:

1. every rank reads the same manifest and takes jobs ``rank, rank + size, …`` (round robin);
2. rank 0 generates each workload key once, writes it under ``keys/`` and broadcasts its bytes
   (an ``all_sum`` where the other ranks add zeros); the others rebuild the proving key from
   the verifying key (:meth:`~mlx_stark.keygen.MultiStarkProvingKey.from_vk`), so no keygen
   repeats;
3. each job: skipped when its proof file exists and verifies (a rerun resumes a batch),
   else proved and written atomically (a temporary file, then a rename), and optionally
   verified; a failure is recorded with its typed error and the batch goes on;
4. rank 0 gathers every rank's results (``all_gather``) and writes ``summary.json`` (per job:
   rank, seconds, status; per rank: proofs per second) and ``index.json`` (proof file and key
   file per job, for ``mlx-stark verify-batch``).

Proofs are deterministic, so each is byte-identical to the one a single process makes.

``--local-ranks N`` (:func:`launch_local`) starts N ranks on this host the way
``mlx.launch --backend ring`` does (``MLX_RANK`` and a loopback ``MLX_HOSTFILE``; the ring
backend does the rest), but lets them write straight to the terminal: ``mlx.launch`` relays
the ranks' output through a thread that polls their stdin pipes without blocking, which keeps
one core busy (measured on a 2-core host: two ranks ran slower than one).

Manifest (JSON, or TOML with a ``[[jobs]]`` table per job)::

    {"jobs": [
      {"name": "kf-8", "workload": "keccakf", "size": 8, "seed": 0},
      {"name": "fib-12", "workload": "fib", "size": 12},
      {"name": "mine", "workload": "fib", "key": "fib.vk",
       "inputs": [{"trace": "fib.npy", "public_values": [0, 1, 144]}, {"trace": "s0.npy"}, …]}
    ]}

A job with ``inputs`` proves those ``.npy`` traces (one entry per AIR of the workload, ``null``
for an absent AIR, optional ``cached`` trace files) against the verifying key in ``key``
(from ``mlx-stark keygen``); the workload names its AIRs. Relative paths are relative to the
manifest.
"""
from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional

import mlx.core as mx
import numpy as np

from . import workloads
from .errors import InvalidInputError, MlxStarkError, VerificationError
from .keygen import MultiStarkProvingKey, MultiStarkVerifyingKey, keygen
from .prover.prove import AirInput, prove
from .verifier.verify import verify

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


@dataclass
class Job:
    """One proof of a manifest: ``workload`` with ``size`` (and ``seed`` for keccakf), or the
    trace files of ``inputs`` against the verifying key file ``key``."""

    name: str
    workload: str
    size: Optional[int] = None
    seed: int = 0
    key: Optional[str] = None
    inputs: Optional[list] = None

    @property
    def key_id(self) -> str:
        """The key this job proves under: a workload key's name, or ``file:<key path>``."""
        if self.key is not None:
            return f"file:{self.key}"
        return workloads.key_shape(self.workload, self.size)[0]


_DEFAULT_SIZE = {"keccakf": 1024, "logup": 1, "fib": 20}


def load_manifest(path) -> List[Job]:
    """The jobs of a JSON or TOML manifest, checked before any work: unique file-safe names,
    known workloads, a valid size, and either a size or ``inputs`` with a ``key``."""
    path = Path(path)
    try:
        text = path.read_text()
        if path.suffix == ".toml":
            import tomllib
            data = tomllib.loads(text)
        else:
            data = json.loads(text)
    except (OSError, ValueError) as e:
        raise InvalidInputError(f"manifest {path}: {e}") from None
    raw = data.get("jobs") if isinstance(data, dict) else None
    if not isinstance(raw, list) or not raw:
        raise InvalidInputError(f"manifest {path}: needs a non-empty list 'jobs'")
    jobs, seen = [], set()
    for i, entry in enumerate(raw):
        if not isinstance(entry, dict):
            raise InvalidInputError(f"manifest job {i}: must be a table/object")
        unknown = set(entry) - {"name", "workload", "size", "seed", "key", "inputs"}
        if unknown:
            raise InvalidInputError(f"manifest job {i}: unknown fields {sorted(unknown)}")
        name = entry.get("name")
        if not isinstance(name, str) or not _NAME.match(name):
            raise InvalidInputError(f"manifest job {i}: 'name' must be letters, digits, '.', '_' "
                                    f"or '-' (it names the proof file), got {name!r}")
        if name in seen:
            raise InvalidInputError(f"manifest: job name {name!r} appears twice")
        seen.add(name)
        kind = entry.get("workload")
        if kind not in workloads.KINDS:
            raise InvalidInputError(f"job {name}: 'workload' must be one of {workloads.KINDS}")
        key, inputs = entry.get("key"), entry.get("inputs")
        if (key is None) != (inputs is None):
            raise InvalidInputError(f"job {name}: 'key' and 'inputs' go together")
        if inputs is not None:
            if not isinstance(inputs, list):
                raise InvalidInputError(f"job {name}: 'inputs' must be a list (one per AIR)")
            key = str(path.parent / key)
            inputs = [_resolve(name, path.parent, x) for x in inputs]
            size = None
        else:
            size = entry.get("size", _DEFAULT_SIZE[kind])
            if not isinstance(size, int) or isinstance(size, bool):
                raise InvalidInputError(f"job {name}: 'size' must be an integer")
            workloads.key_shape(kind, size)  # validates the size
        seed = entry.get("seed", 0)
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise InvalidInputError(f"job {name}: 'seed' must be an integer")
        jobs.append(Job(name, kind, size, seed, key, inputs))
    return jobs


def _resolve(name: str, base: Path, entry) -> Optional[dict]:
    if entry is None:
        return None
    if not isinstance(entry, dict) or not isinstance(entry.get("trace"), str):
        raise InvalidInputError(f"job {name}: each input is null or has a 'trace' file")
    cached = entry.get("cached", [])
    pv = entry.get("public_values", [])
    if not isinstance(cached, list) or not isinstance(pv, list):
        raise InvalidInputError(f"job {name}: 'cached' and 'public_values' must be lists")
    return {"trace": str(base / entry["trace"]), "cached": [str(base / c) for c in cached],
            "public_values": pv}


def _inputs(job: Job) -> List[Optional[AirInput]]:
    """The job's prover inputs: its workload's traces, or its ``.npy`` files."""
    if job.inputs is None:
        return workloads.build(job.workload, job.size, job.seed).inputs
    out = []
    for entry in job.inputs:
        if entry is None:
            out.append(None)
            continue
        try:
            load = lambda f: np.load(f, allow_pickle=False)  # noqa: E731
            out.append(AirInput(load(entry["trace"]), entry["public_values"],
                                [load(c) for c in entry["cached"]]))
        except (OSError, ValueError) as e:
            raise InvalidInputError(f"job {job.name}: cannot read a trace file: {e}") from None
    return out


# ---------------------------------------------------------------- the group
def _broadcast(group, data: bytes) -> bytes:
    """Rank 0's ``data`` on every rank (others pass anything): two ``all_sum`` s, length first."""
    mine = data if group.rank() == 0 else b""
    n = int(mx.distributed.all_sum(mx.array([len(mine)], dtype=mx.int32), group=group).item())
    buf = np.zeros(n, dtype=np.int32)
    buf[:len(mine)] = np.frombuffer(mine, dtype=np.uint8)
    total = mx.distributed.all_sum(mx.array(buf), group=group)
    return np.array(total).astype(np.uint8).tobytes()


def _gather(group, data: bytes) -> List[bytes]:
    """Every rank's ``data``, in rank order (on every rank)."""
    lengths = mx.distributed.all_gather(mx.array([len(data)], dtype=mx.int32), group=group)
    lengths = [int(x) for x in np.array(lengths)]
    buf = np.zeros(max(lengths), dtype=np.int32)
    buf[:len(data)] = np.frombuffer(data, dtype=np.uint8)
    rows = np.array(mx.distributed.all_gather(mx.array(buf)[None], group=group))
    return [rows[r, :n].astype(np.uint8).tobytes() for r, n in enumerate(lengths)]


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _keys(group, jobs: List[Job], out_dir: Path) -> Dict[str, tuple]:
    """``key_id -> (proving key, verifying key, key file)`` for every job's key, each made once
    (workload keys: by rank 0, then broadcast; key files: read by every rank)."""
    keys: Dict[str, tuple] = {}
    for job in jobs:
        kid = job.key_id
        if kid in keys:
            continue
        _, airs, params = workloads.key_shape(job.workload, job.size or _DEFAULT_SIZE[job.workload])
        if job.key is not None:
            try:
                vk = MultiStarkVerifyingKey.from_bytes(Path(job.key).read_bytes())
            except OSError as e:
                raise InvalidInputError(f"job {job.name}: cannot read key file: {e}") from None
            keys[kid] = (MultiStarkProvingKey.from_vk(airs, vk), vk, job.key)
            continue
        key_file = out_dir / "keys" / f"{kid}.vk"
        data = b""
        if group.rank() == 0:
            pk, vk = keygen(airs, params)
            data = vk.to_bytes()
            key_file.parent.mkdir(parents=True, exist_ok=True)
            _write_atomic(key_file, data)
        data = _broadcast(group, data)
        if group.rank() != 0:
            vk = MultiStarkVerifyingKey.from_bytes(data)
            pk = MultiStarkProvingKey.from_vk(airs, vk)
        keys[kid] = (pk, vk, str(key_file))
    return keys


@dataclass
class JobResult:
    name: str
    rank: int
    status: str  # proved | skipped | failed
    seconds: float = 0.0
    proof_bytes: int = 0
    error: str = ""
    key_file: str = ""
    verified: Optional[bool] = None


def _run_job(job: Job, keys: dict, out_dir: Path, rank: int, check: bool) -> JobResult:
    pk, vk, key_file = keys[job.key_id]
    proof_file = out_dir / f"{job.name}.proof"
    res = JobResult(job.name, rank, "proved", key_file=key_file)
    if proof_file.exists():
        try:
            data = proof_file.read_bytes()
            verify(vk, data)
            res.status, res.proof_bytes, res.verified = "skipped", len(data), True
            return res
        except VerificationError:
            pass  # not a valid proof of this job: prove it again
    for stale in out_dir.glob(f".{proof_file.name}.*.tmp"):  # a write cut off by a kill
        stale.unlink(missing_ok=True)
    t = time.perf_counter()
    try:
        data = prove(pk, _inputs(job)).to_bytes()
        _write_atomic(proof_file, data)
        res.proof_bytes = len(data)
        if check:
            verify(vk, data)
            res.verified = True
    except MlxStarkError as e:
        res.status, res.error = "failed", f"{type(e).__name__}: {e}"
        res.verified = False if isinstance(e, VerificationError) else None
    except Exception as e:  # noqa: BLE001 — one job's crash must not stop the batch
        res.status, res.error = "failed", f"{type(e).__name__}: {e}"
    res.seconds = time.perf_counter() - t
    return res


@dataclass
class BatchSummary:
    rank: int  # this process's rank
    ranks: int
    wall_seconds: float
    jobs: List[dict] = field(default_factory=list)
    per_rank: List[dict] = field(default_factory=list)

    @property
    def failed(self) -> List[dict]:
        return [j for j in self.jobs if j["status"] == "failed"]


def prove_batch(manifest, out_dir, check: bool = False,
                on_job: Callable[[JobResult], None] | None = None) -> BatchSummary:
    """Prove this rank's share of ``manifest``'s jobs into ``out_dir`` (module docstring).
    Every rank returns the whole batch's summary; rank 0 also writes ``summary.json`` and
    ``index.json``. ``on_job`` is called after each of this rank's jobs."""
    t0 = time.perf_counter()
    jobs = load_manifest(manifest)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    group = mx.distributed.init()
    rank, size = group.rank(), group.size()
    keys = _keys(group, jobs, out_dir)
    t_jobs = time.perf_counter()
    mine = []
    for job in jobs[rank::size]:
        mine.append(_run_job(job, keys, out_dir, rank, check))
        if on_job is not None:
            on_job(mine[-1])
    busy = time.perf_counter() - t_jobs  # this rank's jobs, after the shared keys
    report = json.dumps({"results": [asdict(r) for r in mine], "busy": busy,
                         "device": str(mx.default_device())}).encode()
    parts = [json.loads(p) for p in _gather(group, report)]
    order = {job.name: i for i, job in enumerate(jobs)}
    results = sorted((r for p in parts for r in p["results"]), key=lambda r: order[r["name"]])
    per_rank = [{"rank": r, "device": p["device"], "jobs": len(p["results"]),
                 "proved": sum(x["status"] == "proved" for x in p["results"]),
                 "busy_seconds": p["busy"],
                 "proofs_per_second": sum(x["status"] == "proved" for x in p["results"]) / p["busy"]}
                for r, p in enumerate(parts)]
    summary = BatchSummary(rank, size, time.perf_counter() - t0, results, per_rank)
    if rank == 0:
        _write_atomic(out_dir / "summary.json", json.dumps(asdict(summary), indent=1).encode())
        index = [{"name": r["name"], "proof": f"{r['name']}.proof",
                  "key": os.path.relpath(r["key_file"], out_dir)}
                 for r in results if r["status"] != "failed"]
        _write_atomic(out_dir / "index.json", json.dumps(index, indent=1).encode())
    return summary


def verify_batch(out_dir) -> List[dict]:
    """Verify every proof listed in ``out_dir/index.json`` against its key file: per proof
    ``{"name", "ok", "error", "ms"}``. Each key file is read once."""
    out_dir = Path(out_dir)
    try:
        index = json.loads((out_dir / "index.json").read_text())
    except (OSError, ValueError) as e:
        raise InvalidInputError(f"{out_dir}: no readable index.json (written by prove-batch): {e}") from None
    vks: Dict[str, MultiStarkVerifyingKey] = {}
    out = []
    for entry in index:
        t = time.perf_counter()
        row = {"name": entry["name"], "ok": False, "error": ""}
        try:
            if entry["key"] not in vks:
                vks[entry["key"]] = MultiStarkVerifyingKey.from_bytes((out_dir / entry["key"]).read_bytes())
            verify(vks[entry["key"]], (out_dir / entry["proof"]).read_bytes())
            row["ok"] = True
        except (OSError, MlxStarkError) as e:
            row["error"] = f"{type(e).__name__}: {e}"
        row["ms"] = (time.perf_counter() - t) * 1e3
        out.append(row)
    return out


def launch_local(ranks: int, args: List[str]) -> int:
    """Run ``mlx-stark <args>`` as ``ranks`` ring-backend ranks on loopback (module docstring);
    returns the largest exit code."""
    ports = []
    for _ in range(ranks):  # free loopback ports, as mlx.launch's hostfile lists them
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])
    with tempfile.TemporaryDirectory() as tmp:
        hostfile = Path(tmp, "hosts.json")
        hostfile.write_text(json.dumps([[f"127.0.0.1:{p}"] for p in ports]))
        procs = [subprocess.Popen([sys.executable, "-m", "mlx_stark.cli", *args],
                                  env={**os.environ, "MLX_RANK": str(r), "MLX_HOSTFILE": str(hostfile)})
                 for r in range(ranks)]
        return max(p.wait() for p in procs)
