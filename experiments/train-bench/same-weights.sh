#!/bin/bash
# The medium-shape CUDA problem (README: gradient norms 1e4 too large) from identical weights. One
# random checkpoint of PRESET (medium) is written on the machine's CPU, then
#   (1) `bit-axon forward --hidden` on each of FWD (default: flex cuda): per-block max relative
#       difference of the hidden states and logits against the first entry;
#   (2) one training step (2 × 512 tokens) from those weights, with a dense base on each of DENSE
#       and with the 4-bit base (QLoRA) on each of QLORA: loss, gradient norm, and the gradient norm
#       of every adapter tensor against the first entry's (BIT_AXON_TRAIN_GRADS).
# An entry is a device, optionally `:KERNELS` to force the plain-tensor path for those kernels
# (BIT_AXON_PLAIN, e.g. `cuda:scan`, `cuda:scan,quant`). The flex entries run on the CPU while the
# CUDA ones run on the GPU. Binaries: target/gpu-d/{bit-axon,train,random_checkpoint}.xz (CUDA
# builds; random_checkpoint is the cli example), or BA_BIN / TRAIN_BIN / RC_BIN. Writes
# $OUT/same-weights.txt.
source "$(dirname "$0")/../cuda-env.sh" >/dev/null
D=${GPU_DIR:-target/gpu-d}
BA=${BA_BIN:-/tmp/ba}; TR=${TRAIN_BIN:-/tmp/tr}; RC=${RC_BIN:-/tmp/rc}
[ -x "$BA" ] || unpack $D/bit-axon.xz $BA
[ -x "$TR" ] || unpack $D/train.xz $TR
[ -x "$RC" ] || unpack $D/random_checkpoint.xz $RC
FWD=${FWD:-flex cuda}
DENSE=${DENSE:-flex cuda cuda:scan}
QLORA=${QLORA:-flex cuda cuda:quant}
W=/tmp/same-weights; rm -rf $W; mkdir -p $W

dev_of() { echo "${1%%:*}"; }
plain_of() { [[ "$1" == *:* ]] && echo "${1#*:}"; }
tag_of() { echo "$1" | tr ':,' '__'; }

forward() { # entry
  local t=$(date +%s) tag=$(tag_of $1)
  BIT_AXON_PLAIN=$(plain_of $1) timeout ${FWD_TIMEOUT:-120} $BA forward --model $W/ck --input $W/ids.safetensors \
    --output $W/fwd-$tag.safetensors --hidden --device $(dev_of $1) > $W/fwd-$tag.log 2>&1
  echo "forward on $1: exit $? after $(( $(date +%s) - t )) s"
}

step() { # quant entry
  local t=$(date +%s) tag=$1-$(tag_of $2)
  BIT_AXON_PLAIN=$(plain_of $2) BIT_AXON_TRAIN_GRADS=1 timeout ${STEP_TIMEOUT:-150} $TR --config configs/qlora-gpu.toml \
    --set "model.path=\"$W/ck\"" --set quant.enabled=$1 \
    --set "train.device=\"$(dev_of $2)\"" --set train.batch_size=2 --set train.grad_accum=1 --set data.max_seq_len=512 \
    --set train.max_steps=1 --set train.eval_every=0 --set 'data.eval=[]' --set train.save_every=1000 \
    --set output.dir=$W/run-$tag > $W/run-$tag.log 2>&1
  echo "train step (quant $1) on $2: exit $? after $(( $(date +%s) - t )) s; $(grep -E '^step +1/' $W/run-$tag.log | head -1)"
}

# Every job of the given device kind (flex or not), in order.
kind() { [ "$(dev_of $1)" = flex ] && echo flex || echo gpu; }
jobs_of() { # flex|gpu
  for e in $FWD; do [ "$(kind $e)" = $1 ] && forward $e; done
  for e in $DENSE; do [ "$(kind $e)" = $1 ] && step false $e; done
  for e in $QLORA; do [ "$(kind $e)" = $1 ] && step true $e; done
}

{
  t=$(date +%s); $RC ${PRESET:-medium} $W/ck > /dev/null || exit 1; echo "checkpoint ${PRESET:-medium} written in $(( $(date +%s) - t )) s"
  python3 - $W <<'PY'
import json, sys, numpy as np
from safetensors.numpy import save_file
cfg = json.load(open(f"{sys.argv[1]}/ck/config.json"))
ids = np.random.default_rng(0).integers(0, cfg["vocab_size"], size=(1, 200)).astype(np.int32)
save_file({"input_ids": ids}, f"{sys.argv[1]}/ids.safetensors")
PY
  jobs_of flex > $W/flex-jobs.txt 2>&1 &
  jobs_of gpu
  wait
  cat $W/flex-jobs.txt
  python3 - $W "$FWD" <<'PY'
import sys
from safetensors.numpy import load_file
w, entries = sys.argv[1], sys.argv[2].split()
tag = lambda e: e.replace(":", "_").replace(",", "_")
ref = load_file(f"{w}/fwd-{tag(entries[0])}.safetensors")
for e in entries[1:]:
    try:
        got = load_file(f"{w}/fwd-{tag(e)}.safetensors")
    except OSError:
        print(f"{e}: no output"); continue
    print(f"forward {e} vs {entries[0]}: max |diff| / max |ref| per tensor")
    for k in sorted(ref, key=lambda k: (len(k), k)):
        a, b = ref[k].astype("float64"), got[k].astype("float64")
        print(f"  {k:<24} {abs(a - b).max() / max(abs(a).max(), 1e-30):.3e}   (max |ref| {abs(a).max():.3e}, max |{e}| {abs(b).max():.3e})")
PY
  for q in false true; do
    [ $q = false ] && list=$DENSE || list=$QLORA
    python3 - $W $q $list <<'PY'
import sys, collections
w, q, entries = sys.argv[1], sys.argv[2], sys.argv[3:]
tag = lambda e: e.replace(":", "_").replace(",", "_")
def norms(e):
    out = {}
    try:
        for line in open(f"{w}/run-{q}-{tag(e)}.log"):
            if line.startswith("grad: step 1 "):
                _, _, _, name, v = line.split()
                out[name] = float(v)
    except OSError:
        pass
    return out
ref = norms(entries[0])
for e in entries[1:]:
    got = norms(e)
    # lora_a has no gradient at step 1 (lora_b starts at zero): compare the others.
    common = [k for k in ref if k in got and (ref[k] > 0 or got[k] > 0)]
    print(f"quant {q}: {e} / {entries[0]} gradient norm per adapter tensor ({len(common)} tensors)")
    if not common:
        continue
    by_layer = collections.defaultdict(list)
    for k in common:
        by_layer[k.split(".")[0]].append(got[k] / max(ref[k], 1e-30))
    for layer, r in by_layer.items():
        print(f"  {layer:<12} ratio min {min(r):.3e}  max {max(r):.3e}")
    worst = sorted(common, key=lambda k: -abs(got[k] / max(ref[k], 1e-30) - 1))[:12]
    for k in worst:
        print(f"  {k:<44} {entries[0]} {ref[k]:.4e}  {e} {got[k]:.4e}")
PY
  done
  grep -h "^grad: step 1" $W/run-*.log > /dev/null && for f in $W/run-*.log; do cp $f ${OUT:-/tmp}/; done
} 2>&1 | tee ${OUT:-/tmp}/same-weights.txt
