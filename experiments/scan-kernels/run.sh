#!/bin/bash
# The scan-kernel benchmark on the H200 (device tool), from the repo root:
#   here:   CUDARC_CUDA_VERSION=13000 cargo bench -p bit-axon-kernels --features cuda --bench scan --no-run
#           mkdir -p target/gpu-scan && xz -T2 -c "$(ls -t target/release/deps/scan-* | grep -v '\.d$' | head -1)" > target/gpu-scan/scan.xz
#   device: run(command="bash experiments/scan-kernels/run.sh", carry=["target/gpu-scan"])
# Writes the tables to $OUT/scan-bench.txt (copied to results.md by hand, with the command).
XZ=${SCAN_XZ:-target/gpu-scan/scan.xz}   # run from the repo root
nvidia-smi -L; nvidia-smi --query-gpu=driver_version,clocks.max.sm,clocks.max.mem --format=csv,noheader
source "$(dirname "$0")/../cuda-env.sh"
B=/tmp/scan-bench
unpack $XZ $B
OUTF=${OUT:-/tmp}/scan-bench.txt
t=$(date +%s)
RUST_BACKTRACE=1 timeout ${BENCH_TIMEOUT:-400} $B 2>&1 | tee $OUTF
echo "exit ${PIPESTATUS[0]} after $(( $(date +%s) - t )) s" | tee -a $OUTF
