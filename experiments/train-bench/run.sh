#!/bin/bash
# QLoRA training throughput of the `medium` preset (1.48B parameters, NF4 base + LoRA r16) on the
# H200 (device tool), from the repo root. Build here first:
#   CARGO_TARGET_DIR=/work/cuda-target CUDARC_CUDA_VERSION=13000 cargo build --release -p train --features cuda
#   mkdir -p target/gpu-bench && strip -o /tmp/train.cuda /work/cuda-target/release/train \
#     && xz -T2 -c /tmp/train.cuda > target/gpu-bench/train.xz
#   device: run(command="bash experiments/train-bench/run.sh", carry=["target/gpu-bench"])
# Writes $OUT/train-bench.txt (log + GPU memory samples) and $OUT/metrics.jsonl.
XZ=${TRAIN_XZ:-target/gpu-bench/train.xz}
export CUBECL_LOG_COMPILES=${CUBECL_LOG_COMPILES:-1}
source "$(dirname "$0")/../cuda-env.sh"
B=${TRAIN_BIN:-/tmp/train}
[ -x "$B" ] || unpack $XZ $B
O=${OUT:-/tmp}
nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 1000 > $O/gpu-mem.txt 2>/dev/null &
SMI=$!
{
  nvidia-smi -L
  t=$(date +%s)
  # SEQ, BATCH: tokens per row and rows per step (default 2048 × 4); TRAIN_SETS: more --set options. Every line is stamped with
  # the seconds since start; BIT_AXON_TRAIN_TRACE times each micro-batch (device synced).
  BIT_AXON_TRAIN_TRACE=1 timeout ${TRAIN_TIMEOUT:-480} $B --config configs/qlora-gpu.toml \
    --set 'model.preset="medium"' --set train.max_steps=${STEPS:-40} --set train.batch_size=${BATCH:-4} \
    --set train.grad_accum=1 --set data.max_seq_len=${SEQ:-2048} --set train.eval_every=0 \
    --set train.save_every=1000 --set output.dir=/tmp/run-medium-qlora ${TRAIN_SETS:-} 2>&1 | stamp | tee $O/train-full.log | grep -v "Compiling kernel"
  echo "exit ${PIPESTATUS[0]} after $(( $(date +%s) - t )) s"
  compile_histogram $O/train-full.log
  kill $SMI
  echo "peak GPU memory used (MiB): $(sort -n $O/gpu-mem.txt | tail -1)"
  cp /tmp/run-medium-qlora/metrics.jsonl $O/ 2>/dev/null
  python3 - <<'PY'
import json
rs = [json.loads(l) for l in open("/tmp/run-medium-qlora/metrics.jsonl") if '"kind":"train"' in l]
for r in rs:
    m = r["metrics"]
    print(f"step {r['step']:>3}  t={r['time_s']:8.1f}s  loss {m.get('Loss', float('nan')):.4f}  tok/s {m.get('Tokens/s', 0):9.0f}")
late = rs[len(rs) // 2:]
if late:
    tok = sorted(r["metrics"].get("Tokens/s", 0) for r in late)
    print(f"median tokens/s over steps {late[0]['step']}..{late[-1]['step']}: {tok[len(tok) // 2]:.0f}")
PY
} 2>&1 | tee $O/train-bench.txt
save_cubecl_cache
