#!/bin/bash
# The fused 4-bit (NF4 / affine int4) matmul benchmark on the H200 (device tool), from the repo root:
#   here:   CARGO_TARGET_DIR=target-cuda CUDARC_CUDA_VERSION=13000 cargo bench -p bit-axon-kernels --features cuda --bench quant --no-run
#           mkdir -p target/gpu-nf4 && xz -T2 -c "$(ls -t target-cuda/release/deps/quant-* | grep -v '\.d$' | head -1)" > target/gpu-nf4/quant.xz
#   device: run(command="bash experiments/nf4-kernels/run.sh", carry=["target/gpu-nf4"])
# Writes the tables to $OUT/nf4-bench.txt (copied to results.md by hand, with the command).
XZ=${QBENCH_XZ:-target/gpu-nf4/quant.xz}   # run from the repo root
nvidia-smi -L; nvidia-smi --query-gpu=driver_version,clocks.max.sm,clocks.max.mem --format=csv,noheader
NV=$(python3 -c 'import nvidia; print(list(nvidia.__path__)[0])' 2>/dev/null)
NVRTC=$(find /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib $NV -name 'libnvrtc.so.13*' 2>/dev/null | head -1)
export LD_LIBRARY_PATH=$(dirname "$NVRTC"):${LD_LIBRARY_PATH:-}
[ -z "${CUDA_PATH:-}" ] && [ -d /usr/local/cuda/include ] && export CUDA_PATH=/usr/local/cuda
[ -z "${CUDA_PATH:-}" ] && [ -d "$NV/cu13/include" ] && export CUDA_PATH=$NV/cu13
echo "NVRTC=$NVRTC CUDA_PATH=$CUDA_PATH"
B=/tmp/quant-bench
if command -v xz >/dev/null; then xz -dc $XZ > $B; else python3 -c "import lzma,shutil; shutil.copyfileobj(lzma.open('$XZ'), open('$B','wb'))"; fi
chmod +x $B
OUTF=${OUT:-/tmp}/nf4-bench.txt
t=$(date +%s)
RUST_BACKTRACE=1 timeout ${BENCH_TIMEOUT:-400} $B 2>&1 | tee $OUTF
echo "exit ${PIPESTATUS[0]} after $(( $(date +%s) - t )) s" | tee -a $OUTF
