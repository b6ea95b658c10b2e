#!/usr/bin/env bash
# A CPU rehearsal of the GPU check (make gpu-rehearsal): the lent GPU machine's
# software, mirrored here, runs tools/gpu_check.sh through every step that needs
# no CUDA, so that the first GPU window is not lost to an import error.
#
#   bash tools/gpu_rehearsal.sh            # set up (cached), then rehearse
#   bash tools/gpu_rehearsal.sh --env-only # only set up the mirror
#
# 1. A Python 3.12 venv (.venv-gpu-rehearsal, or MMSB_REHEARSAL_VENV) with the
#    image's versions of what the check touches (requirements/gpu-image.txt:
#    torch 2.11 with its CUDA libraries, which runs on a CPU, numpy 2,
#    transformers 5, OpenCV headless, setuptools without pkg_resources ...).
#    Downloads are cached in ~/.cache/mmsb/gpu-rehearsal (MMSB_REHEARSAL_CACHE);
#    a stamp makes an unchanged set-up return at once.
# 2. The wheelhouse the device gets (tools/gpu_wheelhouse.sh), if missing.
# 3. tools/gpu_check.sh --rehearsal with that Python: the wheelhouse installed
#    exactly as on the device (--no-deps), mmcv without ops, the imports of
#    mmdet's, mmseg's and mmpretrain's models, the benchmark (tiny, CPU), the
#    GPU tests collected and the CPU-capable ones run, the demo detector (2
#    iterations); the steps that need CUDA are reported as such.
# Output: work_dirs/gpu_rehearsal/ (summary.md, gpu_check.log, ...). Exit status:
# 0 when every rehearsed step passed.
# Python 3.12: MMSB_PY312, else python3.12 on the PATH, else pyenv's.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
ENV_ONLY=0
for arg in "$@"; do
  case "$arg" in
    --env-only) ENV_ONLY=1 ;;
    *) echo "gpu_rehearsal: unknown argument '$arg' (expected --env-only)" >&2; exit 2 ;;
  esac
done
VENV="${MMSB_REHEARSAL_VENV:-$ROOT/.venv-gpu-rehearsal}"
CACHE="${MMSB_REHEARSAL_CACHE:-$HOME/.cache/mmsb/gpu-rehearsal}"
REQS="$ROOT/requirements/gpu-image.txt"

py312() {
  local c
  for c in "${MMSB_PY312:-}" "$(command -v python3.12 || true)" \
           "$HOME"/.pyenv/versions/3.12.*/bin/python3.12; do
    # (a pyenv shim is on the PATH even where it cannot run 3.12)
    [[ -n "$c" && -x "$c" ]] && "$c" -c 'import sys; assert sys.version_info[:2] == (3, 12)' \
      2>/dev/null && { echo "$c"; return; }
  done
  return 1
}

# the stamp: what the mirror holds (not how this script reads), so that an
# edit of the script does not cost a new set-up
stamp="$(sha256sum "$REQS" | cut -c1-16)"
if [[ -f "$VENV/.rehearsal-stamp" && "$(cat "$VENV/.rehearsal-stamp")" == "$stamp" ]]; then
  echo "[rehearsal] $VENV is set up"
else
  PY312="$(py312)" || {
    echo "[rehearsal] no Python 3.12 found: set MMSB_PY312, or install one" \
         "(pyenv install 3.12, or Debian's python3.12)" >&2; exit 1; }
  echo "[rehearsal] Python 3.12 venv $VENV from $PY312 ($("$PY312" --version))"
  rm -rf "$VENV"
  "$PY312" -m venv "$VENV"
  t=$SECONDS
  # the image's versions; pip's cache keeps the downloads (torch's CUDA libraries
  # are most of them) for the next set-up
  PIP_CACHE_DIR="$CACHE/pip" "$VENV/bin/python" -m pip install -q \
    --disable-pip-version-check -r "$REQS"
  echo "        installed in $((SECONDS - t)) s"
  "$VENV/bin/python" - <<'EOF'
import importlib.util, numpy, torch, transformers
print('        torch', torch.__version__, '| numpy', numpy.__version__,
      '| transformers', transformers.__version__,
      '| pkg_resources:', importlib.util.find_spec('pkg_resources') is not None)
EOF
  echo "$stamp" >"$VENV/.rehearsal-stamp"
fi
((ENV_ONLY)) && exit 0

WH="${MMSB_GPU_WHEELHOUSE:-$ROOT/wheelhouse-gpu}"
if [[ ! -f "$WH/mmcv-$(sed -n 's/^MMCV_VERSION=//p' tools/setup_env.sh).tar.gz" ]]; then
  echo "[rehearsal] no wheelhouse in $WH: tools/gpu_wheelhouse.sh"
  PYTHON="$VENV/bin/python" bash tools/gpu_wheelhouse.sh "$WH"
fi
echo "[rehearsal] tools/gpu_check.sh --rehearsal with $VENV/bin/python"
# This CPU is slower than the device machine's 16 cores, and may be busy: the
# steps get 4 times their limits (MMSB_GPU_LIMIT_SCALE), and the budget too.
SCALE="${MMSB_GPU_LIMIT_SCALE:-4}"
PYTHON="$VENV/bin/python" MMSB_GPU_WORK="${MMSB_GPU_WORK:-/tmp/mmsb_gpu_rehearsal}" \
  MMSB_GPU_LIMIT_SCALE="$SCALE" bash tools/gpu_check.sh --rehearsal --wheelhouse "$WH" \
  --budget $((420 * SCALE)) --out "${OUT:-$ROOT/work_dirs/gpu_rehearsal}"
