#!/bin/bash
# Why the `medium` QLoRA run's training losses jump (71, 56021, ... against 10.4 in evaluation):
# short medium runs on cuda, (1) with CubeCL's bounds validation on every kernel (each out-of-bounds
# index is printed by the kernel; counted per message here), (2) plain QLoRA, (3) a dense f32 base.
# Per-step losses from each run's metrics.jsonl. Writes $OUT/medium-checks.txt.
XZ=${TRAIN_XZ:-target/gpu-a/train.xz}
source "$(dirname "$0")/../cuda-env.sh"
B=/tmp/train
[ -x $B ] || unpack $XZ $B
common="--config configs/qlora-gpu.toml --set model.preset=\"medium\" --set train.batch_size=4 --set train.grad_accum=1
  --set data.max_seq_len=${SEQ:-512} --set train.eval_every=0 --set train.eval_batches=0 --set train.save_every=1000"
losses() {
  python3 - "$1/metrics.jsonl" <<'PY'
import json, sys
try:
    rs = [json.loads(l) for l in open(sys.argv[1]) if '"kind":"train"' in l]
except OSError:
    rs = []
print("  losses:", " ".join(f"{r['metrics']['Loss']:.3f}" for r in rs) or "none")
print("  grad norms:", " ".join(f"{r['metrics']['Grad Norm']:.3g}" for r in rs) or "none")
PY
}
{
  echo "== (1) bounds validation, QLoRA, ${VSTEPS:-2} steps"
  cp cubecl.toml /tmp/cubecl.plain.toml
  printf '[compilation]\ncheck_mode = "validate"\n' > cubecl.toml
  t=$(date +%s)
  timeout ${VTIMEOUT:-150} $B $common --set train.max_steps=${VSTEPS:-2} --set output.dir=/tmp/mc-validate 2>&1 \
    | grep -i -E "oob|out of bound|validation" | cut -c1-200 | sed 's/[0-9]\+/N/g' | awk '{c[$0]++} END {for (k in c) print c[k], k}' | sort -rn | head -20
  echo "exit ${PIPESTATUS[0]} after $(( $(date +%s) - t )) s"; losses /tmp/mc-validate
  cp /tmp/cubecl.plain.toml cubecl.toml
  for v in "qlora:--set quant.enabled=true" "dense:--set quant.enabled=false"; do
    echo "== (${v%%:*}) ${STEPS:-6} steps"
    t=$(date +%s)
    timeout ${TIMEOUT:-110} $B $common ${v#*:} --set train.max_steps=${STEPS:-6} --set output.dir=/tmp/mc-${v%%:*} > /tmp/mc-${v%%:*}.log 2>&1
    echo "exit $? after $(( $(date +%s) - t )) s"; grep -E "^step|error" /tmp/mc-${v%%:*}.log | tail -8; losses /tmp/mc-${v%%:*}
  done
} 2>&1 | tee ${OUT:-/tmp}/medium-checks.txt
