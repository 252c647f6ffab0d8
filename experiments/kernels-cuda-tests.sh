#!/bin/bash
# The kernels crate's test binaries (scan, quant) on the H200's CUDA device (device tool), from the
# repo root: the same comparisons with the plain-tensor path that CI runs on lavapipe. CI alone did
# not catch a CUDA-only bug (kernel outputs allocated with padded rows, see crates/kernels/src/lib.rs
# `empty_dense`), so run this after changing a kernel. Build here first (from the repo root); cargo
# prints the two test executables (a `--list` probe would also start the bench binaries of the same name):
#   CARGO_TARGET_DIR=/work/cuda-target CUDARC_CUDA_VERSION=13000 cargo test --release --no-run \
#     -p bit-axon-cli -p train -p bit-axon-kernels --features cuda --test scan --test quant 2>&1 | grep Executable
#   mkdir -p target/gpu-t; for t in scan quant; do strip -o /tmp/$t-test <its executable>; \
#     xz -T2 -c /tmp/$t-test > target/gpu-t/$t-test.xz; done
#   device: run(command="bash experiments/kernels-cuda-tests.sh", carry=["target/gpu-t"])
# TEST_DIR (default target/gpu-t) holds {scan,quant}-test.xz (or they are already at /tmp/{scan,quant}-test); extra arguments go to the test binaries.
source "$(dirname "$0")/cuda-env.sh" >/dev/null
D=${TEST_DIR:-target/gpu-t}
for t in scan quant; do
  [ -x /tmp/$t-test ] || unpack $D/$t-test.xz /tmp/$t-test
  echo "== kernels test $t on cuda"
  s=$(date +%s)
  (cd crates/kernels && BIT_AXON_TEST_DEVICE=cuda timeout ${TEST_TIMEOUT:-300} /tmp/$t-test --test-threads 1 "$@" 2>&1) \
    | grep -v "Compiling kernel" | tail -40
  echo "exit ${PIPESTATUS[0]} after $(( $(date +%s) - s )) s"
done
