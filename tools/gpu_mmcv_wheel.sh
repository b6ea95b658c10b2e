#!/usr/bin/env bash
# mmcv's wheel with its CUDA ops for the lent GPU machine, built here, on a CPU
# machine, before a GPU window, so that the window goes to measuring:
#
#   bash tools/gpu_mmcv_wheel.sh [WHEELHOUSE]     # default: wheelhouse-gpu/
#
# The device runs Python 3.12 with torch 2.11 + CUDA 13.0 (requirements/
# gpu-image.txt) on an H100/H200 (sm_90). This script builds mmcv (tools/
# setup_env.sh's MMCV_VERSION, from the wheelhouse's sdist) against that torch,
# with CUDA's compiler from the package registry (cuda-toolkit[nvcc,...] at the
# version torch itself requires), for sm_90 only (TORCH_CUDA_ARCH_LIST), with
# MAX_JOBS (default: all cores) compilers, niced (MMSB_GPU_BUILD_NICE, 10). The build venv
# (.venv-gpu-build, or MMSB_GPU_BUILD_VENV) and the source tree (kept under
# ~/.cache/mmsb/gpu-mmcv-build: a stopped build resumes where ninja stopped)
# are reused. The wheel lands in the wheelhouse, which tools/gpu_check.sh
# installs instead of building (its step mmcv-build then takes no time).
# It checks the wheel here: it installs into the build venv and mmcv.ops loads
# its compiled extension and runs an op on the CPU (CUDA calls need a GPU).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WH="$(realpath -m "${1:-$ROOT/wheelhouse-gpu}")"
VENV="${MMSB_GPU_BUILD_VENV:-$ROOT/.venv-gpu-build}"
CACHE="${MMSB_REHEARSAL_CACHE:-$HOME/.cache/mmsb/gpu-rehearsal}"
BUILD="${MMSB_GPU_BUILD_DIR:-$HOME/.cache/mmsb/gpu-mmcv-build}"
MMCV_VERSION="$(sed -n 's/^MMCV_VERSION=//p' "$ROOT/tools/setup_env.sh")"
SDIST="$WH/mmcv-$MMCV_VERSION.tar.gz"
export TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-9.0}"
export MAX_JOBS="${MAX_JOBS:-$(nproc)}"
TORCH_REQ="$(grep -E '^torch==' "$ROOT/requirements/gpu-image.txt")"

[[ -f "$SDIST" ]] || { echo "[mmcv-wheel] no $SDIST: run tools/gpu_wheelhouse.sh first" >&2; exit 1; }
py312() {
  local c
  for c in "${MMSB_PY312:-}" "$(command -v python3.12 || true)" \
           "$HOME"/.pyenv/versions/3.12.*/bin/python3.12; do
    [[ -n "$c" && -x "$c" ]] && "$c" -c 'import sys; assert sys.version_info[:2] == (3, 12)' \
      2>/dev/null && { echo "$c"; return; }
  done
  return 1
}

if [[ ! -x "$VENV/bin/python" ]]; then
  PY312="$(py312)" || { echo "[mmcv-wheel] no Python 3.12 (MMSB_PY312)" >&2; exit 1; }
  "$PY312" -m venv "$VENV"
fi
PY="$VENV/bin/python"
# The device's torch (several GiB with its CUDA libraries) is already in the
# rehearsal's venv when `make gpu-rehearsal` has run: the build venv reads it
# from there (a .pth line) instead of downloading it again.
REHEARSAL_SITE="$(ls -d "${MMSB_REHEARSAL_VENV:-$ROOT/.venv-gpu-rehearsal}"/lib/python3.12/site-packages 2>/dev/null || true)"
BUILD_SITE="$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
if [[ -n "$REHEARSAL_SITE" && ! -f "$BUILD_SITE/mmsb-rehearsal-torch.pth" ]] && \
   ls -d "$REHEARSAL_SITE/${TORCH_REQ/==/-}"*.dist-info >/dev/null 2>&1; then
  echo "$REHEARSAL_SITE" > "$BUILD_SITE/mmsb-rehearsal-torch.pth"
  echo "[mmcv-wheel] torch from $REHEARSAL_SITE"
fi
TORCH_SITE="$(cat "$BUILD_SITE/mmsb-rehearsal-torch.pth" 2>/dev/null || true)"
# torch's own CUDA version: cuda-toolkit==X as torch requires it
CTK="$("$PY" - "$CACHE" "$TORCH_REQ" <<'EOF' 2>/dev/null || true
import sys
from importlib import metadata
try:
    reqs = metadata.requires('torch') or []
except metadata.PackageNotFoundError:
    sys.exit(1)
print(next(r.split('[')[0] + '==' + r.split('==')[1].split(';')[0].strip()
           for r in reqs if r.startswith('cuda-toolkit')))
EOF
)"
if [[ -z "$CTK" ]]; then
  echo "[mmcv-wheel] $TORCH_REQ into $VENV"
  PIP_CACHE_DIR="$CACHE/pip" "$PY" -m pip install -q --disable-pip-version-check "$TORCH_REQ"
  CTK="$("$PY" -c "
from importlib import metadata
r = next(r for r in metadata.requires('torch') if r.startswith('cuda-toolkit'))
print(r.split('[')[0] + '==' + r.split('==')[1].split(';')[0].strip())")"
fi
echo "[mmcv-wheel] CUDA's compiler and headers: $CTK"
PIP_CACHE_DIR="$CACHE/pip" "$PY" -m pip install -q --disable-pip-version-check \
  "setuptools>=77.0.3,<81" ninja wheel
PIP_CACHE_DIR="$CACHE/pip" "$PY" -m pip install -q --disable-pip-version-check \
  "${CTK/==/[nvcc,cccl,crt,nvvm,cudart,cublas,cusparse,cusolver,curand,cufft]==}"

# A CUDA_HOME as torch's extension builder expects it (bin/nvcc, include/,
# lib64/), made of links into the nvidia packages.
SITE="$BUILD_SITE"
CUDA="$BUILD/cuda-home"
rm -rf "$CUDA"
mkdir -p "$CUDA/include" "$CUDA/lib64"
NVCC="$(find "$SITE/nvidia" -path '*/bin/nvcc' -type f | head -n 1)"
[[ -n "$NVCC" ]] || { echo "[mmcv-wheel] no nvcc under $SITE/nvidia" >&2; exit 1; }
ln -s "$(dirname "$NVCC")" "$CUDA/bin"
NVVM="$(find "$SITE/nvidia" -type d -name nvvm | head -n 1)"
[[ -z "$NVVM" ]] || ln -s "$NVVM" "$CUDA/nvvm"
# headers and libraries: the compiler's (here) and the runtime's (here, or in
# the rehearsal's venv beside torch)
for site in "$SITE" ${TORCH_SITE:+"$TORCH_SITE"}; do
  for inc in $(find "$site/nvidia" -maxdepth 3 -type d -name include); do
    for f in "$inc"/*; do [[ -e "$CUDA/include/$(basename "$f")" ]] || ln -s "$f" "$CUDA/include/"; done
  done
  for lib in $(find "$site/nvidia" -maxdepth 3 -type d -name lib); do
    for f in "$lib"/*; do [[ -e "$CUDA/lib64/$(basename "$f")" ]] || ln -s "$f" "$CUDA/lib64/"; done
  done
done
# the unversioned name the linker asks for
for so in "$CUDA"/lib64/libcudart.so.*; do
  [[ -e "$CUDA/lib64/libcudart.so" ]] || ln -s "$(basename "$so")" "$CUDA/lib64/libcudart.so"
done
export CUDA_HOME="$CUDA" PATH="$CUDA/bin:$PATH"
echo "[mmcv-wheel] $("$CUDA/bin/nvcc" --version | tail -n 2 | head -n 1)"

SRC="$BUILD/mmcv-$MMCV_VERSION"
[[ -d "$SRC" ]] || tar -xzf "$SDIST" -C "$BUILD"
echo "[mmcv-wheel] building $SRC for sm_${TORCH_CUDA_ARCH_LIST//./} with $MAX_JOBS jobs (log: $BUILD/build.log)"
t=$SECONDS
rm -rf "$BUILD/dist"
MMCV_WITH_OPS=1 FORCE_CUDA=1 nice -n "${MMSB_GPU_BUILD_NICE:-10}" "$PY" -m pip wheel -v --no-index --no-deps \
  --no-build-isolation --no-cache-dir "$SRC" -w "$BUILD/dist" >"$BUILD/build.log" 2>&1 || {
  tail -n 30 "$BUILD/build.log" >&2; echo "[mmcv-wheel] build failed after $((SECONDS - t)) s" >&2
  exit 1; }
WHEEL="$(ls "$BUILD"/dist/mmcv-"$MMCV_VERSION"-*.whl)"
echo "[mmcv-wheel] built in $((SECONDS - t)) s: $(basename "$WHEEL"), $(du -h "$WHEEL" | cut -f1)"

# check: it installs and its extension loads and runs on the CPU
"$PY" -m pip install -q --no-index --no-deps --force-reinstall "$WHEEL"
"$PY" - <<'EOF'
import torch
import mmcv
from mmcv.ops import get_compiling_cuda_version, nms
boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30.]])
keep = nms(boxes, torch.tensor([.9, .8, .7]), 0.5)[1].tolist()
assert keep == [0, 2], keep
print(f'        mmcv {mmcv.__version__}: ops built with CUDA '
      f'{get_compiling_cuda_version()}; CPU NMS runs')
EOF
cp "$WHEEL" "$WH/"
wh_mib=$(( $(du -sk "$WH" | cut -f1) / 1024 ))
echo "[mmcv-wheel] $WH/$(basename "$WHEEL"); the wheelhouse is now $wh_mib MiB" \
     "(it travels with the working tree: 64 MiB in all)"
