#!/bin/bash
# The medium-shape CUDA problem (README: gradient norms 1e4 too large) from identical weights. One
# random checkpoint of PRESET (medium) is written on the machine's CPU, then
#   (1) `bit-axon forward --hidden` on each of DEVS (flex cuda): per-block max relative difference
#       of the hidden states and logits against the first device;
#   (2) one training step (QLoRA and dense base, 2 × 512 tokens) on each device: loss, gradient norm.
# Binaries: target/gpu-d/{bit-axon,train,random_checkpoint}.xz (CUDA builds; random_checkpoint is
# the cli example), or BA_BIN / TRAIN_BIN / RC_BIN. Writes $OUT/same-weights.txt.
source "$(dirname "$0")/../cuda-env.sh" >/dev/null
D=${GPU_DIR:-target/gpu-d}
BA=${BA_BIN:-/tmp/ba}; TR=${TRAIN_BIN:-/tmp/tr}; RC=${RC_BIN:-/tmp/rc}
[ -x "$BA" ] || unpack $D/bit-axon.xz $BA
[ -x "$TR" ] || unpack $D/train.xz $TR
[ -x "$RC" ] || unpack $D/random_checkpoint.xz $RC
DEVS=${DEVS:-flex cuda}
W=/tmp/same-weights; rm -rf $W; mkdir -p $W
{
  t=$(date +%s); $RC ${PRESET:-medium} $W/ck > /dev/null || exit 1; echo "checkpoint ${PRESET:-medium} written in $(( $(date +%s) - t )) s"
  python3 - $W <<'PY'
import json, sys, numpy as np
from safetensors.numpy import save_file
cfg = json.load(open(f"{sys.argv[1]}/ck/config.json"))
ids = np.random.default_rng(0).integers(0, cfg["vocab_size"], size=(1, 200)).astype(np.int32)
save_file({"input_ids": ids}, f"{sys.argv[1]}/ids.safetensors")
PY
  i=0
  for dev in $DEVS; do
    i=$((i + 1)); t=$(date +%s)
    timeout ${FWD_TIMEOUT:-120} $BA forward --model $W/ck --input $W/ids.safetensors --output $W/fwd-$i.safetensors --hidden --device $dev > /dev/null 2>&1
    echo "forward on $dev: exit $? after $(( $(date +%s) - t )) s"
  done
  python3 - $W $DEVS <<'PY'
import sys
from safetensors.numpy import load_file
w, devs = sys.argv[1], sys.argv[2:]
ref = load_file(f"{w}/fwd-1.safetensors")
for i, dev in enumerate(devs[1:], start=2):
    try:
        got = load_file(f"{w}/fwd-{i}.safetensors")
    except OSError:
        print(f"{dev}: no output"); continue
    print(f"{dev} vs {devs[0]}: max |diff| / max |ref| per tensor")
    for k in sorted(ref, key=lambda k: (len(k), k)):
        a, b = ref[k].astype("float64"), got[k].astype("float64")
        print(f"  {k:<24} {abs(a - b).max() / max(abs(a).max(), 1e-30):.3e}   (max |ref| {abs(a).max():.3e}, max |{dev}| {abs(b).max():.3e})")
PY
  for q in true false; do
    i=0
    for dev in $DEVS; do
      i=$((i + 1)); t=$(date +%s)
      timeout ${STEP_TIMEOUT:-150} $TR --config configs/qlora-gpu.toml --set "model.path=\"$W/ck\"" --set quant.enabled=$q \
        --set "train.device=\"$dev\"" --set train.batch_size=2 --set train.grad_accum=1 --set data.max_seq_len=512 \
        --set train.max_steps=1 --set train.eval_every=0 --set 'data.eval=[]' --set train.save_every=1000 \
        --set output.dir=$W/run-$q-$i > $W/run-$q-$i.log 2>&1
      echo "train step (quant $q) on $dev: exit $? after $(( $(date +%s) - t )) s; $(grep -E '^step +1/' $W/run-$q-$i.log | head -1)"
    done
  done
} 2>&1 | tee ${OUT:-/tmp}/same-weights.txt
