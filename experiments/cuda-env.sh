# Sourced by the experiments' run.sh on the device machine: finds NVRTC (libnvrtc.so.13, which
# CubeCL's CUDA backend loads at run time) and the CUDA headers it compiles against, and
# defines `unpack XZ DEST` for the xz-compressed release binaries carried from the build machine.
NV=$(python3 -c 'import nvidia; print(list(nvidia.__path__)[0])' 2>/dev/null)
NVRTC=$(find /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib $NV -name 'libnvrtc.so.13*' 2>/dev/null | head -1)
export LD_LIBRARY_PATH=$(dirname "$NVRTC"):${LD_LIBRARY_PATH:-}
[ -z "${CUDA_PATH:-}" ] && [ -d /usr/local/cuda/include ] && export CUDA_PATH=/usr/local/cuda
[ -z "${CUDA_PATH:-}" ] && [ -d "$NV/cu13/include" ] && export CUDA_PATH=$NV/cu13
echo "NVRTC=$NVRTC CUDA_PATH=$CUDA_PATH"

unpack() {
  if command -v xz >/dev/null; then xz -dc "$1" > "$2"
  else python3 -c "import lzma,shutil,sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2],'wb'))" "$1" "$2"; fi
  chmod +x "$2"
}

# CubeCL settings for the run (read from ./cubecl.toml): kernels compiled through NVRTC and autotune
# results are kept in an on-disk cache, so a second run skips compilation; with CUBECL_LOG_COMPILES=1
# kernel compilations and autotune decisions are logged on stderr. A cache from an earlier call is carried in as
# target/cubecl-cache.tar (see `save_cubecl_cache`); set CUBECL_CACHE=0 to run without one.
CUBECL_CACHE_DIR=/tmp/cubecl-cache
if [ "${CUBECL_CACHE:-1}" != 0 ]; then
  mkdir -p $CUBECL_CACHE_DIR
  [ -f target/cubecl-cache.tar ] && tar -xf target/cubecl-cache.tar -C $CUBECL_CACHE_DIR && echo "cubecl cache: $(du -sh $CUBECL_CACHE_DIR | cut -f1) carried in"
  # A cubecl.toml this script did not write (a user's own) is left as it is.
  if [ ! -f cubecl.toml ] || grep -q '^# written by experiments/cuda-env.sh' cubecl.toml; then
    printf '# written by experiments/cuda-env.sh\n[compilation]\ncache = true\n[environment]\npath = { directory = "%s" }\n' $CUBECL_CACHE_DIR > cubecl.toml
    [ "${CUBECL_LOG_COMPILES:-0}" = 1 ] && printf '[compilation.logger]\nlevel = "basic"\nstderr = true\n[autotune.logger]\nlevel = "minimal"\nstderr = true\n' >> cubecl.toml
  else
    echo "cubecl.toml exists and was not written by cuda-env.sh: left as it is (no kernel cache or compile log)"
  fi
fi

# Packs the cache into $OUT/cubecl-cache.tar (copy it to target/ here to carry it next time).
save_cubecl_cache() {
  [ -d $CUBECL_CACHE_DIR ] && tar -cf ${OUT:-/tmp}/cubecl-cache.tar -C $CUBECL_CACHE_DIR . && ls -la ${OUT:-/tmp}/cubecl-cache.tar
}

# Prefixes each line of stdin with the seconds since the pipe opened.
stamp() { python3 -u -c 'import sys,time
t=time.time()
for l in sys.stdin: print(f"{time.time()-t:8.2f} {l}", end="", flush=True)'; }

# Kernel compilations per 30 s in a stamped log (where the time went before the first step).
compile_histogram() {
  awk '/Compiling kernel/ { n[int($1 / 30)]++ } END { for (k in n) printf "  %4d-%4d s: %d kernels compiled\n", k * 30, k * 30 + 30, n[k] }' "$1" | sort -n
  echo "  total: $(grep -c 'Compiling kernel' "$1") kernels compiled"
}
