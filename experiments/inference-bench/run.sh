#!/bin/bash
# `bit-axon benchmark` on the H200 (device tool), from the repo root. Build here first:
#   CARGO_TARGET_DIR=/work/cuda-target CUDARC_CUDA_VERSION=13000 cargo build --release -p bit-axon-cli --features cuda
#   mkdir -p target/gpu-bench && strip -o /tmp/bit-axon.cuda /work/cuda-target/release/bit-axon \
#     && xz -T2 -c /tmp/bit-axon.cuda > target/gpu-bench/bit-axon.xz
#   device: run(command="bash experiments/inference-bench/run.sh", carry=["target/gpu-bench"])
# Writes everything to $OUT/inference-bench.txt.
XZ=${CLI_XZ:-target/gpu-bench/bit-axon.xz}
export CUBECL_LOG_COMPILES=${CUBECL_LOG_COMPILES:-1}
source "$(dirname "$0")/../cuda-env.sh"
B=${CLI_BIN:-/tmp/bit-axon}
[ -x "$B" ] || unpack $XZ $B
OUTF=${OUT:-/tmp}/inference-bench.txt
DEFAULT_ARGS="--preset medium --prompt-len 512 --gen-len 64 --dtype f16
--preset medium --prompt-len 512 --gen-len 64 --quant nf4
--preset medium --prompt-len 512 --gen-len 64 --quant nf4 --dtype f16"
{
  nvidia-smi -L
  # BENCH_ARGS: one benchmark per line (default: the medium preset in f16 and in NF4).
  while IFS= read -r args; do
    [ -z "$args" ] && continue
    echo "== bit-axon benchmark --device cuda $args"
    t=$(date +%s)
    timeout ${BENCH_TIMEOUT:-200} $B benchmark --device cuda $args 2>&1 | stamp > /tmp/bench-one.log
    echo "exit ${PIPESTATUS[0]} after $(( $(date +%s) - t )) s"
    grep -v "Compiling kernel" /tmp/bench-one.log | grep -v "^ *[0-9.]* *$"
    compile_histogram /tmp/bench-one.log
  done <<< "${BENCH_ARGS:-$DEFAULT_ARGS}"
} 2>&1 | tee $OUTF
save_cubecl_cache
