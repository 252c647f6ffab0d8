#!/bin/bash
# `bit-axon benchmark` on the H200 (device tool), from the repo root. Build here first:
#   CUDARC_CUDA_VERSION=13000 cargo build --release -p bit-axon-cli --features cuda
#   mkdir -p target/gpu-bench && xz -T2 -c target/release/bit-axon > target/gpu-bench/bit-axon.xz
#   device: run(command="bash experiments/inference-bench/run.sh", carry=["target/gpu-bench"])
# Writes everything to $OUT/inference-bench.txt.
XZ=${CLI_XZ:-target/gpu-bench/bit-axon.xz}
NV=$(python3 -c 'import nvidia; print(list(nvidia.__path__)[0])' 2>/dev/null)
NVRTC=$(find /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib $NV -name 'libnvrtc.so.13*' 2>/dev/null | head -1)
export LD_LIBRARY_PATH=$(dirname "$NVRTC"):${LD_LIBRARY_PATH:-}
[ -z "${CUDA_PATH:-}" ] && [ -d /usr/local/cuda/include ] && export CUDA_PATH=/usr/local/cuda
[ -z "${CUDA_PATH:-}" ] && [ -d "$NV/cu13/include" ] && export CUDA_PATH=$NV/cu13
B=/tmp/bit-axon
if command -v xz >/dev/null; then xz -dc $XZ > $B; else python3 -c "import lzma,shutil; shutil.copyfileobj(lzma.open('$XZ'), open('$B','wb'))"; fi
chmod +x $B
OUTF=${OUT:-/tmp}/inference-bench.txt
{
  nvidia-smi -L
  for args in "--preset small --prompt-len 128 --gen-len 64" \
              "--preset medium --prompt-len 512 --gen-len 64" \
              "--preset medium --prompt-len 512 --gen-len 32 --batch 8"; do
    echo "== bit-axon benchmark --device cuda $args"
    t=$(date +%s)
    timeout ${BENCH_TIMEOUT:-200} $B benchmark --device cuda $args --json
    echo "exit $? after $(( $(date +%s) - t )) s"
  done
} 2>&1 | tee $OUTF
