#!/bin/bash
# Nsight Compute on one kernel of a bench binary (device tool, H200): where its warps stall
# (WarpStateStats and the per-reason stall ratios), issue-slot use (SchedulerStats), pipe use,
# occupancy, local-memory (spill) traffic and DRAM throughput. The bench's own knobs (env) choose
# the shapes; keep its iterations low. Usage, from the repo root:
#   bash experiments/ncu-stalls.sh BINARY KERNEL_REGEX [LAUNCH_SKIP] [LAUNCH_COUNT] [NAME]
# e.g. SCAN_BENCH_BATCHES=8 SCAN_BENCH_LENS=4096 SCAN_BENCH_ITERS=1 SCAN_BENCH_BASELINE= \
#        bash experiments/ncu-stalls.sh /tmp/scan-bench scan_fused 0 9 scan
# Writes $OUT/ncu-NAME.txt (full report) and prints the lines that matter.
source "$(dirname "$0")/cuda-env.sh" >/dev/null
BIN=$1; KERNEL=$2; SKIP=${3:-0}; COUNT=${4:-4}; NAME=${5:-kernel}
NCU=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu /usr/local/cuda/bin/ncu 2>/dev/null | head -1)
echo "ncu: $NCU; $BIN, kernels matching $KERNEL, launches $SKIP..$((SKIP + COUNT))"
REP=${OUT:-/tmp}/ncu-$NAME.txt
timeout ${NCU_TIMEOUT:-200} $NCU --clock-control none -k regex:$KERNEL --launch-skip $SKIP --launch-count $COUNT \
  --section SpeedOfLight --section LaunchStats --section Occupancy --section WarpStateStats \
  --section SchedulerStats --section ComputeWorkloadAnalysis --section InstructionStats \
  --metrics 'regex:smsp__average_warps_issue_stalled_.*_per_issue_active\.ratio,regex:sm__inst_executed_pipe_.*\.avg\.pct_of_peak_sustained_active,smsp__issue_active.avg.pct_of_peak_sustained_active,l1tex__t_bytes_pipe_lsu_mem_local_op_ld.sum,l1tex__t_bytes_pipe_lsu_mem_local_op_st.sum,smsp__inst_executed.sum' \
  "$BIN" > $REP 2> ${OUT:-/tmp}/ncu-$NAME-stderr.txt
echo "ncu exit $?"
# Per launch: the kernel line, then the figures; stall ratios below 0.05 left out.
awk '/Context [0-9]+, Stream/ { print; next }
     /stalled_/ { if ($NF + 0 >= 0.05) print; next }
     /pipe_.*pct|issue_active|mem_local|inst_executed.sum|Duration|Registers Per|Achieved Occupancy|Theoretical Occupancy|Warp Cycles Per Issued|Issue Slots Busy|No Eligible|Executed Ipc A|DRAM Throughput|Block Limit|Dynamic Shared|Static Shared|Grid Size|Block Size|Waves Per SM/ { print }' $REP | head -${NCU_LINES:-500}
