#!/usr/bin/env bash
# Reproduces the thermal-policies experiment (runs in a second on any machine; no GPU, no sensor).
set -euo pipefail
cd "$(dirname "$0")/../.."
dir=experiments/thermal-policies
cargo run -q -p bit-axon-thermal --example thermal_policies -- "$dir" > /dev/null   # writes results.md, sweep.csv, traces.csv
python3 "$dir/plot.py" "$dir"   # needs matplotlib (pip install matplotlib)
