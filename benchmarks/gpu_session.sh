#!/usr/bin/env bash
# One lent-GPU session's measurements, after `bash .gpu2/gpu-setup.sh 2` (../shared/DEVICE.md).
# Run from the repository root on the GPU machine; results go to $OUT.
#
#   bash benchmarks/gpu_session.sh cold      # fresh machine: cold first proof + compile table,
#                                            # then a warm-cache process, keccakf after/before
#   bash benchmarks/gpu_session.sh rest      # logup and fib after/before, kernel tests
#   bash benchmarks/gpu_session.sh cubin     # fresh machine: cold start with our kernels as
#                                            # cached cubins, warm-cache process, golden proofs,
#                                            # keccakf with the cubins and with MLX's compile
#   bash benchmarks/gpu_session.sh fresh     # fresh machine: the first proof (default settings)
#                                            # of keccakf, logup and fib, each on its own
#                                            # empty caches, with the
#                                            # compile table; a warm-cache keccakf process
#   bash benchmarks/gpu_session.sh after     # (after fresh) warm whole calls of this checkout:
#                                            # keccakf (device and host trace), logup, fib; a
#                                            # host profile of fib; the device tests of the newest
#                                            # kernels
#   bash benchmarks/gpu_session.sh before    # the same warm whole calls of .before/
#   bash benchmarks/gpu_session.sh lite      # fresh machine, short on device time: the essentials
#                                            # of the above in one call
#
# "before" is a checkout of the pre-change main in .before/ (carried along); both share one
# cache directory, so the second compiles only what differs. Every step has its own time limit
# so that a slow one cannot take the later ones' results with it.
set -uo pipefail
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 MLX_STARK_CACHE=/tmp/msc
export MLX_PTX_CACHE_DIR=/tmp/msc/ptx CUDA_CACHE_PATH=/tmp/msc/cuda CUDA_CACHE_MAXSIZE=4294967296
out=${OUT:-/tmp/out}
mkdir -p "$out"

use_cache() {  # root: every cache of mlx-stark, MLX and the CUDA driver under it
  export MLX_STARK_CACHE=$1 MLX_PTX_CACHE_DIR=$1/ptx CUDA_CACHE_PATH=$1/cuda
}
after() {  # name, limit, command...
  local name=$1 limit=$2; shift 2
  local t0; t0=$(date +%s.%N)
  timeout "$limit" "$@" > "$out/$name.log" 2>&1
  echo "$name rc=$? $(python3 -c "import time; print(round(time.time() - $t0, 1))") s" | tee -a "$out/steps.txt"
}
before() {  # name, limit, workload args...
  local name=$1 limit=$2; shift 2
  (cd .before && PYTHONPATH=/tmp/site:$PWD after "$name" "$limit" python3 ../benchmarks/whole_call.py "$@")
}

case "${1:-}" in
  cold)
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$out/gpu.txt"
    start=$(date +%s.%N)
    after cold-keccakf 300 python3 -m mlx_stark.cli warmup --workload keccakf --no-progress
    python3 benchmarks/compile_table.py --since "$start" --out "$out/compile-keccakf.json" > "$out/compile-keccakf.txt" 2>&1
    after warmcache-keccakf 90 python3 -m mlx_stark.cli warmup --workload keccakf --no-progress
    after after-keccakf 100 python3 benchmarks/whole_call.py keccakf --out "$out/after-keccakf.json"
    before before-keccakf 150 keccakf --out "$out/before-keccakf.json"
    ;;
  rest)
    after after-logup 150 python3 benchmarks/whole_call.py logup --out "$out/after-logup.json"
    before before-logup 150 logup --out "$out/before-logup.json"
    after after-fib 120 python3 benchmarks/whole_call.py fib --out "$out/after-fib.json"
    before before-fib 120 fib --out "$out/before-fib.json"
    after kernel-tests 200 python3 -m pytest -q -x tests/test_kernels_transcript.py \
      tests/test_device_transcript.py tests/test_kernels_sumcheck.py tests/test_golden_fingerprints.py
    ;;
  cubin)
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$out/gpu.txt"
    start=$(date +%s.%N)
    after cold-keccakf 330 python3 -m mlx_stark.cli warmup --workload keccakf --no-progress
    python3 benchmarks/compile_table.py --since "$start" --out "$out/compile-keccakf.json" > "$out/compile-keccakf.txt" 2>&1
    ls "$MLX_STARK_CACHE/cubin" | wc -l >> "$out/compile-keccakf.txt"
    after warmcache-keccakf 90 python3 -m mlx_stark.cli warmup --workload keccakf --no-progress
    after after-keccakf 100 python3 benchmarks/whole_call.py keccakf --out "$out/after-keccakf.json"
    after upload 60 python3 benchmarks/upload.py --out "$out/upload.json"
    after golden 150 python3 -m pytest -q -x -k gpu tests/test_golden_fingerprints.py
    after nocubin-keccakf 120 env MLX_STARK_CUBIN=0 python3 benchmarks/whole_call.py keccakf --out "$out/nocubin-keccakf.json"
    ;;
  fresh)
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$out/gpu.txt"
    for w in "keccakf" "logup --scale 65536" "fib"; do
      name=${w%% *}
      use_cache "/tmp/msc-$name"
      start=$(date +%s.%N)
      after "cold-$name" 300 python3 -m mlx_stark.cli warmup --workload $w --no-progress
      python3 benchmarks/compile_table.py --since "$start" --out "$out/compile-$name.json" > "$out/compile-$name.txt" 2>&1
    done
    use_cache /tmp/msc-keccakf
    after warmcache-keccakf 90 python3 -m mlx_stark.cli warmup --workload keccakf --no-progress
    ;;
  after)
    use_cache /tmp/msc-keccakf
    after after-keccakf 150 python3 benchmarks/whole_call.py keccakf --out "$out/after-keccakf.json"
    after after-logup 150 python3 benchmarks/whole_call.py logup --out "$out/after-logup.json"
    after after-fib 150 python3 benchmarks/whole_call.py fib --out "$out/after-fib.json"
    after duplex 60 python3 benchmarks/duplex_bench.py --out "$out/after-duplex.json"
    after kernel-tests 200 python3 -m pytest -q -x -k "device or gpu" tests/test_kernels_elementwise.py \
      tests/test_kernels_linear.py tests/test_kernels_indexing.py tests/test_kernels_transcript.py \
      tests/test_device_transcript.py tests/test_golden_fingerprints.py
    after profile-fib 100 python3 benchmarks/profile_call.py fib --out "$out/profile-fib.txt"
    after after-keccakf-host 150 python3 benchmarks/whole_call.py keccakf --host-trace --out "$out/after-keccakf-host.json"
    ;;
  before)
    use_cache /tmp/msc-keccakf
    (cd .before && PYTHONPATH=/tmp/site:$PWD after before-duplex 60 python3 ../benchmarks/duplex_bench.py --out "$out/before-duplex.json")
    before before-fib 150 fib --out "$out/before-fib.json"
    before before-logup 130 logup --out "$out/before-logup.json"
    before before-keccakf 250 keccakf --out "$out/before-keccakf.json"
    ;;
  lite)  # one call on a fresh machine when device time is short: the first keccakf process is
         # the cold start (its first_call_s and the step's wall time); warm whole calls with
         # fusion off (our field kernels) and on, and of .before; the device tests, the absorb
         # alone, a host profile of fib
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$out/gpu.txt"
    use_cache /tmp/msc-lite
    after after0-keccakf 150 env MLX_STARK_FUSE=0 python3 benchmarks/whole_call.py keccakf --out "$out/after0-keccakf.json"
    after after0-fib 100 env MLX_STARK_FUSE=0 python3 benchmarks/whole_call.py fib --out "$out/after0-fib.json"
    after after0-logup 100 env MLX_STARK_FUSE=0 python3 benchmarks/whole_call.py logup --out "$out/after0-logup.json"
    after duplex 40 python3 benchmarks/duplex_bench.py --out "$out/after-duplex.json"
    (cd .before && PYTHONPATH=/tmp/site:$PWD after before-duplex 40 python3 ../benchmarks/duplex_bench.py --out "$out/before-duplex.json")
    after kernel-tests 120 env MLX_STARK_FUSE=0 python3 -m pytest -q -x -k "device or gpu" tests/test_kernels_elementwise.py \
      tests/test_kernels_linear.py tests/test_golden_fingerprints.py
    after after1-fib 150 env MLX_STARK_FUSE=1 python3 benchmarks/whole_call.py fib --out "$out/after1-fib.json"
    before before-fib 100 fib --out "$out/before-fib.json"
    after after1-logup 100 env MLX_STARK_FUSE=1 python3 benchmarks/whole_call.py logup --out "$out/after1-logup.json"
    before before-logup 100 logup --out "$out/before-logup.json"
    after profile-fib 60 env MLX_STARK_FUSE=0 python3 benchmarks/profile_call.py fib --out "$out/profile-fib.txt"
    ;;
  *) echo "usage: gpu_session.sh cold|rest|cubin|fresh|after|before|lite" >&2; exit 2 ;;
esac
