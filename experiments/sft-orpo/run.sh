#!/usr/bin/env bash
# SFT, then ORPO from the SFT adapter, on the `small` preset (CPU, flex); then the plot.
#   experiments/sft-orpo/run.sh [OUT_DIR]      (from the repository root; ~15 min on 2 busy cores)
set -euo pipefail
OUT=${1:-runs/sft-orpo}
cargo build --release -p train
T=target/release/train
rm -rf "$OUT"
$T --config configs/sft.toml --set output.dir="$OUT/sft" | tee "$OUT.sft.log"
$T --config configs/orpo.toml --set output.dir="$OUT/orpo" \
   --set model.path="$OUT/sft/base" --set adapter.init_from="$OUT/sft/adapter" | tee "$OUT.orpo.log"
$T --config configs/orpo.toml --set output.dir="$OUT/orpo-l1" --set orpo.lambda=1.0 \
   --set model.path="$OUT/sft/base" --set adapter.init_from="$OUT/sft/adapter" | tee "$OUT.orpo-l1.log"
python3 experiments/sft-orpo/plot.py experiments/sft-orpo/orpo-eval.png "λ=0.1=$OUT/orpo/metrics.jsonl" "λ=1.0=$OUT/orpo-l1/metrics.jsonl"
