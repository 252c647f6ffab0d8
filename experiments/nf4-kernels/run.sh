#!/bin/bash
# The fused 4-bit (NF4 / affine int4) matmul benchmark on the H200 (device tool), from the repo root:
#   here:   CARGO_TARGET_DIR=target-cuda CUDARC_CUDA_VERSION=13000 cargo bench -p bit-axon-kernels --features cuda --bench quant --no-run
#           mkdir -p target/gpu-nf4 && xz -T2 -c "$(ls -t target-cuda/release/deps/quant-* | grep -v '\.d$' | head -1)" > target/gpu-nf4/quant.xz
#   device: run(command="bash experiments/nf4-kernels/run.sh", carry=["target/gpu-nf4"])
# Writes the tables to $OUT/nf4-bench.txt (copied to results.md by hand, with the command).
XZ=${QBENCH_XZ:-target/gpu-nf4/quant.xz}   # run from the repo root
nvidia-smi -L; nvidia-smi --query-gpu=driver_version,clocks.max.sm,clocks.max.mem --format=csv,noheader
source "$(dirname "$0")/../cuda-env.sh"
# One line per timing on stderr (blocker length, launch time, window): shows whether the
# device-time figures are clean (see the bench header).
export QBENCH_VERBOSE=${QBENCH_VERBOSE:-1}
B=/tmp/quant-bench
unpack $XZ $B
OUTF=${OUT:-/tmp}/nf4-bench.txt
t=$(date +%s)
RUST_BACKTRACE=1 timeout ${BENCH_TIMEOUT:-400} $B 2>&1 | tee $OUTF
echo "exit ${PIPESTATUS[0]} after $(( $(date +%s) - t )) s" | tee -a $OUTF
