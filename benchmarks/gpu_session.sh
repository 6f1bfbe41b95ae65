#!/usr/bin/env bash
# One lent-GPU session's measurements, after `bash .gpu2/gpu-setup.sh 2` (../shared/DEVICE.md).
# Run from the repository root on the GPU machine; results go to $OUT (steps.txt, and
# everything else in results.tgz: the device tool brings back only a few files).
#
#   bash benchmarks/gpu_session.sh cold   # first on a fresh machine: the first proof of keccakf,
#                                         # logup and fib, each in a new `mlx-stark warmup`
#                                         # process on its own empty caches, this checkout and
#                                         # .before/; the compile tables; a warm-cache process
#   bash benchmarks/gpu_session.sh warm   # warm whole calls (median of 5) of this checkout and
#                                         # of .before/ for the three workloads; the GPU tests of
#                                         # what changed; a host profile of fib; where MLX still
#                                         # compiles kernels of its own (find_compiles.py); the
#                                         # build / encode / wait split of fib and logup calls,
#                                         # both checkouts (host_split.py); where keccakf's whole
#                                         # call peaks (memory_probe.py); fib and logup under MLX's
#                                         # CUDA-graph knobs, and fib again (the noise)
#   bash benchmarks/gpu_session.sh lean   # the same with less device time: whole calls, knobs,
#                                         # fib's split, the compile check, the changed kernels' tests
#   bash benchmarks/gpu_session.sh brief  # whole calls, CUDA graphs off, the golden proofs
#   bash benchmarks/gpu_session.sh first; ... second   # brief in two calls (golden + fib first)
#   bash benchmarks/gpu_session.sh once   # the least: golden, fib after/before, keccakf, LogUp
#   bash benchmarks/gpu_session.sh overlap1; ... overlap2   # the serial absorb after/before,
#                                         # fib with the device transcript's submissions at the
#                                         # default interval, never and after every absorb, and
#                                         # before; keccakf after/before; then LogUp, the golden
#                                         # proofs and transcript kernels, fib's split per site
#   bash benchmarks/gpu_session.sh compiled   # device segments compiled against Python
#   bash benchmarks/gpu_session.sh default  # compiled segments by default: whole calls, GPU tests
#   bash benchmarks/gpu_session.sh absorb1; ... absorb2   # the serial absorb on the host and on
#                                         # the device, whole calls after/before (keccakf, fib; SHORT=1
#                                         # stops there), the golden proofs, LogUp;
#                                         # then keccakf's compiled segments one at a time (blocked
#                                         # runs), fib and LogUp compiled
#
# "before" is a checkout of the pre-change main in .before/ (carried along). Every step has its
# own time limit so that a slow one cannot take the later ones' results with it.
set -uo pipefail
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
out=${OUT:-/tmp/out}
res=/tmp/results
mkdir -p "$out" "$res"

use_cache() {  # root: every cache of mlx-stark, MLX and the CUDA driver under it
  export MLX_STARK_CACHE=$1 MLX_PTX_CACHE_DIR=$1/ptx CUDA_CACHE_PATH=$1/cuda CUDA_CACHE_MAXSIZE=4294967296
}
step() {  # name, limit, command... (in this checkout)
  local name=$1 limit=$2; shift 2
  local t0; t0=$(date +%s.%N)
  timeout "$limit" "$@" > "$res/$name.log" 2>&1
  echo "$name rc=$? $(python3 -c "import time; print(round(time.time() - $t0, 1))") s" | tee -a "$out/steps.txt"
  summary "$name"
}
summary() {  # a whole call's figures into steps.txt at once (results.tgz is packed at the end)
  [ -f "$res/$1.json" ] && python3 -c "
import json, sys
d = json.load(open(sys.argv[1]))
keys = ('median_ms', 'call_median_s', 'call_min_s', 'call_max_s', 'plain_call_median_s', 'syncs', 'launches', 'peak_mb', 'proof_sha256')
print('  ' + ', '.join(f'{k}={d[k]}' for k in keys if k in d))
" "$res/$1.json" >> "$out/steps.txt" 2>/dev/null
  return 0
}
before() {  # name, limit, command... (in .before/)
  (cd .before && PYTHONPATH=/tmp/site:$PWD step "$@")
}
whole_calls() {  # warm whole calls of the three workloads, this checkout then .before/
  for w in keccakf logup fib; do
    step "after-$w" 150 python3 benchmarks/whole_call.py $w --out "$res/after-$w.json"
    before "before-$w" 150 python3 ../benchmarks/whole_call.py $w --out "$res/before-$w.json"
  done
}
knobs() {  # VAR=value...: fib and logup whole calls under each of MLX's settings (a host-bound
           # proof: CUDA graphs off, more ops per command graph)
  for knob in "$@"; do
    for w in fib logup; do
      step "knob-$knob-$w" 60 env "$knob" python3 benchmarks/whole_call.py $w --out "$res/knob-$knob-$w.json"
    done
  done
}
pack() { tar -czf "$out/results.tgz" -C "$res" . ; }
trap pack EXIT

case "${1:-}" in
  cold)
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$res/gpu.txt"
    for w in "logup --scale 65536" "keccakf" "fib"; do
      name=${w%% *}
      use_cache "/tmp/msc-$name"
      start=$(date +%s.%N)
      step "cold-$name" 200 python3 -m mlx_stark.cli warmup --workload $w --no-progress
      python3 benchmarks/compile_table.py --since "$start" --out "$res/compile-$name.json" > "$res/compile-$name.txt" 2>&1
      use_cache "/tmp/msc-before-$name"
      before "before-cold-$name" 200 python3 -m mlx_stark.cli warmup --workload $w --no-progress
    done
    use_cache /tmp/msc-keccakf
    step warmcache-keccakf 90 python3 -m mlx_stark.cli warmup --workload keccakf --no-progress
    ;;
  warm)
    use_cache /tmp/msc-keccakf
    whole_calls
    step gpu-tests 240 python3 -m pytest -q -x -k "gpu or device or precompile or bare" tests/test_precompile.py \
      tests/test_cubin.py tests/test_kernels_sumcheck.py tests/test_kernels_rounds.py tests/test_kernels_linear.py \
      tests/test_kernels_indexing.py tests/test_kernels_subset.py tests/test_kernels_gkr.py tests/test_custom_kernels.py \
      tests/test_golden_fingerprints.py tests/test_sync_budget.py
    step profile-fib 60 python3 benchmarks/profile_call.py fib --out "$res/profile-fib.txt"
    for w in keccakf fib; do
      step "find-compiles-$w" 90 python3 benchmarks/find_compiles.py $w
    done
    for w in fib logup; do
      step "host-split-$w" 60 python3 benchmarks/host_split.py $w --out "$res/host-split-$w.json"
      before "before-host-split-$w" 60 python3 ../benchmarks/host_split.py $w --out "$res/before-host-split-$w.json"
    done
    step memory-keccakf 90 python3 benchmarks/memory_probe.py keccakf
    knobs MLX_USE_CUDA_GRAPHS=0 MLX_MAX_OPS_PER_BUFFER=400 MLX_MAX_OPS_PER_BUFFER=1000
    step "again-after-fib" 60 python3 benchmarks/whole_call.py fib --out "$res/again-after-fib.json"
    ;;
  lean)  # warm with less device time: the whole calls, the knobs, fib's split, the GPU tests
    use_cache /tmp/msc-keccakf
    whole_calls
    knobs MLX_USE_CUDA_GRAPHS=0 MLX_MAX_OPS_PER_BUFFER=1000
    step host-split-fib 60 python3 benchmarks/host_split.py fib --out "$res/host-split-fib.json"
    before before-host-split-fib 60 python3 ../benchmarks/host_split.py fib --out "$res/before-host-split-fib.json"
    step find-compiles-fib 90 python3 benchmarks/find_compiles.py fib
    step gpu-tests 200 python3 -m pytest -q -x -k "gpu or device or precompile or bare" tests/test_golden_fingerprints.py \
      tests/test_kernels_rounds.py tests/test_kernels_gkr.py tests/test_kernels_sumcheck.py tests/test_kernels_linear.py \
      tests/test_kernels_indexing.py tests/test_custom_kernels.py tests/test_sync_budget.py
    ;;
  brief)  # the least device time: the whole calls, fib under CUDA graphs off, the golden proofs
    use_cache /tmp/msc-keccakf
    whole_calls
    knobs MLX_USE_CUDA_GRAPHS=0
    step gpu-golden 150 python3 -m pytest -q -x tests/test_golden_fingerprints.py
    ;;
  first)  # brief in two calls (a machine taken back mid-call returns nothing): the golden
           # proofs, fib's whole calls (its trace on the device, and a NumPy trace) and split ...
    use_cache /tmp/msc-keccakf
    step gpu-golden 150 python3 -m pytest -q -x tests/test_golden_fingerprints.py
    step after-fib 90 python3 benchmarks/whole_call.py fib --out "$res/after-fib.json"
    before before-fib 90 python3 ../benchmarks/whole_call.py fib --out "$res/before-fib.json"
    step after-fib-host 90 python3 benchmarks/whole_call.py fib --host-trace --out "$res/after-fib-host.json"
    step host-split-fib 60 python3 benchmarks/host_split.py fib --out "$res/host-split-fib.json"
    ;;
  second)  # ... then LogUp's and keccakf's, and fib under CUDA graphs off
    use_cache /tmp/msc-keccakf
    for w in logup keccakf; do
      step "after-$w" 120 python3 benchmarks/whole_call.py $w --out "$res/after-$w.json"
      before "before-$w" 120 python3 ../benchmarks/whole_call.py $w --out "$res/before-$w.json"
    done
    knobs MLX_USE_CUDA_GRAPHS=0
    ;;
  once)  # the least device time in one call, by priority: the golden proofs, fib after and
          # before, keccakf and LogUp after (a later step may run out of the call's time)
    use_cache /tmp/msc-keccakf
    step gpu-golden 150 python3 -m pytest -q -x tests/test_golden_fingerprints.py
    step after-fib 80 python3 benchmarks/whole_call.py fib --out "$res/after-fib.json"
    before before-fib 80 python3 ../benchmarks/whole_call.py fib --out "$res/before-fib.json"
    for w in keccakf logup; do
      step "after-$w" 90 python3 benchmarks/whole_call.py $w --out "$res/after-$w.json"
    done
    before before-keccakf 90 python3 ../benchmarks/whole_call.py keccakf --out "$res/before-keccakf.json"
    ;;
  overlap1)
    use_cache /tmp/msc-keccakf
    step duplex-after 60 python3 benchmarks/duplex_bench.py --out "$res/duplex-after.json"
    before duplex-before 60 python3 ../benchmarks/duplex_bench.py --out "$res/duplex-before.json"
    step after-fib 80 python3 benchmarks/whole_call.py fib --out "$res/after-fib.json"
    before before-fib 80 python3 ../benchmarks/whole_call.py fib --out "$res/before-fib.json"
    for v in None 0.0; do
      step "submit-$v-fib" 80 python3 benchmarks/with_setting.py mlx_stark.transcript SUBMIT_INTERVAL_S $v \
        benchmarks/whole_call.py fib --out "$res/submit-$v-fib.json"
    done
    step again-after-fib 80 python3 benchmarks/whole_call.py fib --out "$res/again-after-fib.json"
    step after-keccakf 100 python3 benchmarks/whole_call.py keccakf --out "$res/after-keccakf.json"
    before before-keccakf 100 python3 ../benchmarks/whole_call.py keccakf --out "$res/before-keccakf.json"
    ;;
  overlap2)
    use_cache /tmp/msc-keccakf
    step after-logup 90 python3 benchmarks/whole_call.py logup --out "$res/after-logup.json"
    before before-logup 90 python3 ../benchmarks/whole_call.py logup --out "$res/before-logup.json"
    step submit-None-logup 90 python3 benchmarks/with_setting.py mlx_stark.transcript SUBMIT_INTERVAL_S None \
      benchmarks/whole_call.py logup --out "$res/submit-None-logup.json"
    step host-split-fib 60 python3 benchmarks/host_split.py fib --out "$res/host-split-fib.json"
    tail -2 "$res/host-split-fib.log" >> "$out/steps.txt"
    step gpu-golden 200 python3 -m pytest -q -x tests/test_golden_fingerprints.py \
      tests/test_kernels_transcript.py::test_device_observe_array
    tail -3 "$res/gpu-golden.log" >> "$out/steps.txt"
    ;;
  compiled)  # device segments compiled and as Python (proof bytes of two inputs, warm calls),
             # the golden proofs and the compiled segments' GPU test, fib's split, fib after/before
    use_cache /tmp/msc-keccakf
    step compiled-fib 150 python3 benchmarks/compiled_segments.py fib --out "$res/compiled-fib.json"
    tail -2 "$res/compiled-fib.log" >> "$out/steps.txt"
    step gpu-golden 200 python3 -m pytest -q -x tests/test_golden_fingerprints.py tests/test_compiled_segments.py
    tail -3 "$res/gpu-golden.log" >> "$out/steps.txt"
    for w in keccakf logup; do
      step "compiled-$w" 150 python3 benchmarks/compiled_segments.py $w --out "$res/compiled-$w.json"
      tail -2 "$res/compiled-$w.log" >> "$out/steps.txt"
    done
    step host-split-fib 60 env MLX_STARK_COMPILE_SEGMENTS=1 python3 benchmarks/host_split.py fib \
      --out "$res/host-split-fib.json"
    tail -2 "$res/host-split-fib.log" >> "$out/steps.txt"
    step after-fib 90 env MLX_STARK_COMPILE_SEGMENTS=1 python3 benchmarks/whole_call.py fib --out "$res/after-fib.json"
    before before-fib 90 python3 ../benchmarks/whole_call.py fib --out "$res/before-fib.json"
    ;;
  absorb1)  # the serial absorb on the host against the device, whole calls after/before, golden
    use_cache /tmp/msc-keccakf
    step absorb-bench 60 python3 benchmarks/duplex_bench.py --out "$res/absorb-bench.json"
    tail -1 "$res/absorb-bench.log" >> "$out/steps.txt"
    lscpu | grep -E "Model name|MHz" >> "$out/steps.txt"
    step after-keccakf 100 python3 benchmarks/whole_call.py keccakf --out "$res/after-keccakf.json"
    before before-keccakf 100 python3 ../benchmarks/whole_call.py keccakf --out "$res/before-keccakf.json"
    step after-fib 100 python3 benchmarks/whole_call.py fib --out "$res/after-fib.json"
    before before-fib 100 python3 ../benchmarks/whole_call.py fib --out "$res/before-fib.json"
    # the Merkle commitment (leaf groups in one launch, against hash_rows + strided layers)
    step merkle-after 60 python3 benchmarks/hash_bench.py --perm-sizes 16 --runs 5
    tail -1 "$res/merkle-after.log" >> "$out/steps.txt"
    before merkle-before 60 python3 ../benchmarks/hash_bench.py --perm-sizes 16 --runs 5
    tail -1 "$res/merkle-before.log" >> "$out/steps.txt"
    [ -n "${SHORT:-}" ] && exit 0  # little device time: the absorb, keccakf, fib, Merkle only
    step gpu-golden 200 python3 -m pytest -q -x tests/test_golden_fingerprints.py
    tail -3 "$res/gpu-golden.log" >> "$out/steps.txt"
    step after-logup 100 python3 benchmarks/whole_call.py logup --out "$res/after-logup.json"
    before before-logup 100 python3 ../benchmarks/whole_call.py logup --out "$res/before-logup.json"
    ;;
  absorb2)  # compiled segments: keccakf blocked, all and one segment at a time; fib
    use_cache /tmp/msc-keccakf
    step compiled-keccakf 120 python3 benchmarks/compiled_segments.py keccakf --blocked \
      --out "$res/compiled-keccakf.json"
    tail -1 "$res/compiled-keccakf.log" >> "$out/steps.txt"
    for seg in stacked_reduction whir; do
      step "compiled-keccakf-$seg" 120 python3 benchmarks/compiled_segments.py keccakf --blocked \
        --only $seg --out "$res/compiled-keccakf-$seg.json"
      tail -1 "$res/compiled-keccakf-$seg.log" >> "$out/steps.txt"
    done
    for w in fib logup; do
      step "compiled-$w" 120 python3 benchmarks/compiled_segments.py $w --out "$res/compiled-$w.json"
      tail -1 "$res/compiled-$w.log" >> "$out/steps.txt"
    done
    # the kernels MLX fuses and compiles itself inside compiled segments (named by their ops)
    for w in fib keccakf; do
      step "compiled-ptx-$w" 120 env MLX_STARK_COMPILE_SEGMENTS=1 MLX_PTX_CACHE_DIR=/tmp/ptx-$w \
        python3 benchmarks/whole_call.py $w --out "$res/compiled-ptx-$w.json"
      ls /tmp/ptx-$w | sed "s/^/  ptx-$w: /" >> "$out/steps.txt"
    done
    ;;
  default)  # compiled segments on by default: whole calls after/before twice, the GPU tests
    use_cache /tmp/msc-keccakf
    for round in 1 2; do
      for w in fib logup keccakf; do
        step "after-$w-$round" 100 python3 benchmarks/whole_call.py $w --out "$res/after-$w-$round.json"
        before "before-$w-$round" 100 python3 ../benchmarks/whole_call.py $w --out "$res/before-$w-$round.json"
      done
    done
    step gpu-tests 250 python3 -m pytest -q -x tests/test_compiled_segments.py tests/test_golden_fingerprints.py
    tail -3 "$res/gpu-tests.log" >> "$out/steps.txt"
    ;;
  *) echo "usage: gpu_session.sh cold|warm|lean|brief|first|second|once|overlap1|overlap2|compiled|absorb1|absorb2|default" >&2; exit 2 ;;
esac
