#!/bin/bash
# Per-step training losses of the same short run on flex (CPU) and on cuda, side by side (device
# tool, H200). Same config, data order and seeds: the losses should agree to TF32 precision.
# CONFIGS: the configs to compare (default: the small-preset QLoRA and SFT quickstarts); STEPS (8).
XZ=${TRAIN_XZ:-target/gpu-a/train.xz}
source "$(dirname "$0")/../cuda-env.sh"
B=/tmp/train
[ -x $B ] || unpack $XZ $B
O=${OUT:-/tmp}
for cfg in ${CONFIGS:-configs/qlora.toml configs/sft.toml}; do
  for dev in flex cuda; do
    name=$(basename $cfg .toml)-$dev
    t=$(date +%s)
    timeout ${PARITY_TIMEOUT:-150} $B --config $cfg --set train.max_steps=${STEPS:-8} --set train.eval_every=0 \
      --set train.eval_batches=0 --set train.save_every=1000 --set "train.device=\"$dev\"" \
      --set output.dir=/tmp/parity-$name ${PARITY_SETS:-} > /tmp/parity-$name.log 2>&1
    echo "$name: exit $? after $(( $(date +%s) - t )) s"
  done
  python3 - $(basename $cfg .toml) <<'PY'
import json, sys
n = sys.argv[1]
def losses(dev):
    try:
        rs = [json.loads(l) for l in open(f"/tmp/parity-{n}-{dev}/metrics.jsonl") if '"kind":"train"' in l]
    except OSError:
        return {}
    return {r["step"]: (r["metrics"].get("Loss"), r["metrics"].get("Grad Norm")) for r in rs}
f, c = losses("flex"), losses("cuda")
print(f"{n}: step | flex loss | cuda loss | rel diff | flex grad-norm | cuda grad-norm")
for s in sorted(set(f) | set(c)):
    lf, gf = f.get(s, (None, None)); lc, gc = c.get(s, (None, None))
    d = abs(lf - lc) / abs(lf) if lf and lc else float("nan")
    print(f"  {s:>3} | {lf} | {lc} | {d:.1e} | {gf} | {gc}")
PY
done 2>&1 | tee $O/parity.txt
