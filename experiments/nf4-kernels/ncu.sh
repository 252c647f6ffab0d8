#!/bin/bash
# Nsight Compute on the 4-bit GEMV (device tool, H200): kernel durations, DRAM bytes and
# throughput of each launch, to separate the kernels' own time from what the bench's profiling
# window adds. Runs the quant bench (see run.sh for the build) on two shapes with few iterations;
# ncu profiles launches NCU_SKIP..NCU_SKIP+NCU_COUNT of the kernels matching NCU_KERNEL (default
# regex:quant_gemv; run 1 profiled all kernels and its 200 launches ended in the preamble). Writes $OUT/ncu.txt.
XZ=${QBENCH_XZ:-target/gpu-nf4/quant.xz}
source "$(dirname "$0")/../cuda-env.sh"
B=/tmp/quant-bench
unpack $XZ $B
NCU=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
echo "ncu: $NCU"
export QBENCH_SHAPES=${QBENCH_SHAPES:-2560x7680,4096x2560} QBENCH_ITERS=20 QBENCH_DEV_ITERS=10 \
  QBENCH_TOKENS=64 QBENCH_COPY_LOG2=26 QBENCH_BLOCKER=1024
timeout ${NCU_TIMEOUT:-240} $NCU --clock-control none -k ${NCU_KERNEL:-regex:quant_gemv} --launch-skip ${NCU_SKIP:-0} --launch-count ${NCU_COUNT:-200} \
  --metrics gpu__time_duration.sum,dram__bytes_read.sum,dram__bytes_write.sum,dram__throughput.avg.pct_of_peak_sustained_elapsed,sm__throughput.avg.pct_of_peak_sustained_elapsed,launch__registers_per_thread,launch__grid_size,launch__block_size,sm__warps_active.avg.pct_of_peak_sustained_active \
  --csv --page raw $B > ${OUT:-/tmp}/ncu.csv 2> ${OUT:-/tmp}/ncu-stderr.txt
echo "exit $?"
python3 - "${OUT:-/tmp}/ncu.csv" <<'PY' | tee ${OUT:-/tmp}/ncu.txt
import csv, sys
rows = [r for r in csv.reader(l for l in open(sys.argv[1]) if l.startswith('"'))]
if not rows:
    print("no ncu rows"); sys.exit()
h = rows[0]; data = rows[2:] if len(rows) > 2 and rows[1][0] == "" else rows[1:]
col = lambda name: h.index(name) if name in h else None
keys = ["Kernel Name", "gpu__time_duration.sum", "dram__bytes_read.sum", "dram__bytes_write.sum",
        "dram__throughput.avg.pct_of_peak_sustained_elapsed", "sm__throughput.avg.pct_of_peak_sustained_elapsed",
        "launch__registers_per_thread", "launch__grid_size", "launch__block_size", "sm__warps_active.avg.pct_of_peak_sustained_active"]
idx = [col(k) for k in keys]
print(" | ".join(k.split("__")[-1] for k in keys))
for r in data:
    print(" | ".join((r[i][:60] if i is not None else "-") for i in idx))
PY
