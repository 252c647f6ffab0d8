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
