#!/usr/bin/env bash
# Creates (or checks) a project environment: the pinned OpenMMLab stack with mmcv 2.1.0
# built from its sdist once per torch version and machine, and cached. Two tested rows
# (docs/install.md "Tested versions"), the same OpenMMLab pins on both:
#   newest (default)  torch 2.13.0 + torchvision 0.28.0 in .venv/
#   oldest            torch 2.1.2  + torchvision 0.16.2 in .venv-oldest/
#
#   tools/setup_env.sh            # idempotent: seconds when everything is in place
#   tools/setup_env.sh --oldest   # the oldest row (or MMSB_ROW=oldest)
#   MMSB_VENV=/path tools/setup_env.sh
#   MMSB_WHEEL_CACHE=/path        # where built mmcv wheels are kept (default ~/.cache/mmsb/wheels)
#   MMSB_TORCH=existing MMSB_VENV=/path/to/env tools/setup_env.sh
#                                 # keep the torch (and numpy, OpenCV) that env already has,
#                                 # e.g. a CUDA machine's own PyTorch; the OpenMMLab pins and
#                                 # the mmcv build are the same
#   MAX_JOBS=N                    # mmcv build parallelism (default: all cores)
#   TORCH_CUDA_ARCH_LIST="8.0;9.0"  # GPUs to build mmcv's CUDA ops for (default: this one's)
#
# Offline hosts: pip's own PIP_NO_INDEX=1 PIP_FIND_LINKS=/dir/of/wheels work unchanged.
#
# Why each pin is what it is: docs/install.md, "Why each pin is what it is".
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ROW="${MMSB_ROW:-newest}"
for arg in "$@"; do
  case "$arg" in
    --oldest) ROW=oldest ;;
    --newest) ROW=newest ;;
    *) echo "[setup] unknown argument '$arg' (expected --oldest or --newest)" >&2; exit 2 ;;
  esac
done
# setuptools: mmcv's setup.py and mim import pkg_resources (gone in setuptools 81);
# torch 2.13 requires setuptools >= 77.0.3, while torch 2.1's cpp_extension (imported
# by mmcv's build and mmengine's env report) does `from pkg_resources import packaging`,
# which setuptools >= 70 no longer offers.
case "$ROW" in
  newest) TORCH_VERSION=2.13.0 TORCHVISION_VERSION=0.28.0 DEFAULT_VENV="$ROOT/.venv"
          SETUPTOOLS="setuptools>=77.0.3,<81" ;;
  # The oldest row: what OpenMMLab's own mmcv 2.1.0 wheels were built for. PyPI's
  # torch 2.1.2 is the CUDA 12.1 build (with its nvidia-* packages); it runs on CPU.
  oldest) TORCH_VERSION=2.1.2 TORCHVISION_VERSION=0.16.2 DEFAULT_VENV="$ROOT/.venv-oldest"
          SETUPTOOLS="setuptools>=60,<70" ;;
  *) echo "[setup] MMSB_ROW='$ROW': expected 'newest' or 'oldest'" >&2; exit 2 ;;
esac
VENV="${MMSB_VENV:-$DEFAULT_VENV}"
PY="${MMSB_PYTHON:-python3.11}"
command -v "$PY" >/dev/null 2>&1 || PY=python3
EXISTING_TORCH=0
[[ "${MMSB_TORCH:-}" == existing ]] && EXISTING_TORCH=1
MMCV_VERSION=2.1.0
CACHE="${MMSB_WHEEL_CACHE:-$HOME/.cache/mmsb/wheels}"
STAMP="$VENV/.mmsb-setup-stamp"

step=0
total=7
say() { step=$((step + 1)); printf '\033[1m[setup %d/%d]\033[0m %s\n' "$step" "$total" "$*"; }
elapsed() { printf '        done in %ss\n' "$((SECONDS - $1))"; }

# The stamp records everything the install depends on; if it matches, nothing is redone.
want_stamp() {
  { cat "$ROOT/tools/setup_env.sh" "$ROOT"/requirements/*.txt "$ROOT/setup.py"; echo "row=$ROW torch=${MMSB_TORCH:-pinned}"; } \
    | sha256sum | cut -d' ' -f1
}
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$(want_stamp)" && -x "$VENV/bin/python" ]]; then
  echo "[setup] environment in ${VENV#$ROOT/} ($ROW row) is up to date"
  exit 0
fi

T0=$SECONDS
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)

say "virtual environment ${VENV#$ROOT/} ($("$PY" --version), $ROW row)"
t=$SECONDS
[[ -x "$VENV/bin/python" ]] || "$PY" -m venv "$VENV"
"${PIP[@]}" install -q --upgrade "pip>=23" "$SETUPTOOLS" wheel ninja
elapsed $t

if [[ $EXISTING_TORCH == 1 ]]; then
  say "torch: the one already in ${VENV} (MMSB_TORCH=existing)"
  t=$SECONDS
  if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
    echo "[setup] MMSB_TORCH=existing, but $VENV/bin/python cannot import torch" >&2
    exit 1
  fi
else
  say "torch ${TORCH_VERSION} + torchvision ${TORCHVISION_VERSION} (regular build; large download on a fresh machine)"
  t=$SECONDS
  # '===' is arbitrary equality: it refuses the local '2.13.0+cpu' wheel that pip's
  # configuration prefers here, with which torchvision's compiled ops cannot load.
  if ! "$VENV/bin/python" -c "import torch, torchvision, sys; sys.exit(torch.__version__ != '$TORCH_VERSION')" 2>/dev/null; then
    "${PIP[@]}" install --progress-bar on "torch===${TORCH_VERSION}" "torchvision==${TORCHVISION_VERSION}" \
      "numpy>=1.23,<2.0"
  fi
fi
"$VENV/bin/python" -c "import torch, torchvision; print('        torch', torch.__version__, 'torchvision', torchvision.__version__, '| CUDA', torch.version.cuda, '| GPU:', torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none')"
if ! "$VENV/bin/python" -c "import torch.utils.cpp_extension" 2>/dev/null; then
  # An existing older torch (2.1 has it) under a newer setuptools: its cpp_extension needs
  # pkg_resources.packaging (setuptools < 70).
  echo "        torch.utils.cpp_extension does not import with this setuptools: installing setuptools<70"
  SETUPTOOLS="setuptools>=60,<70"
  "${PIP[@]}" install -q "$SETUPTOOLS"
fi
elapsed $t

say "mmcv ${MMCV_VERSION} with ops (built once per machine, cached in $CACHE)"
t=$SECONDS
WITH_CUDA=0
if command -v nvcc >/dev/null 2>&1 && "$VENV/bin/python" -c "import torch,sys; sys.exit(not torch.cuda.is_available())" 2>/dev/null; then
  WITH_CUDA=1
fi
PLAT="$("$VENV/bin/python" -c "import sysconfig,sys; print(f'cp{sys.version_info.major}{sys.version_info.minor}-' + sysconfig.get_platform().replace('-', '_'))")"
TORCH_BUILT="$("$VENV/bin/python" -c "import torch; print(torch.__version__.split('+')[0])")"
if [[ $WITH_CUDA == 1 ]]; then
  # Build the CUDA ops for this machine's GPU only (minutes instead of a quarter
  # hour per architecture); set TORCH_CUDA_ARCH_LIST yourself for other GPUs.
  if [[ -z "${TORCH_CUDA_ARCH_LIST:-}" ]]; then
    TORCH_CUDA_ARCH_LIST="$("$VENV/bin/python" -c "import torch; print('%d.%d' % torch.cuda.get_device_capability(0))")"
  fi
  export TORCH_CUDA_ARCH_LIST
  FLAVOUR="cuda$("$VENV/bin/python" -c "import torch; print(torch.version.cuda)")-sm${TORCH_CUDA_ARCH_LIST//[^0-9]/}"
else
  FLAVOUR=cpu
fi
KEY="torch-${TORCH_BUILT}-${PLAT}-${FLAVOUR}"
WHEEL_DIR="$CACHE/$KEY"
if ! "$VENV/bin/python" -c "import mmcv, mmcv.ops, sys; sys.exit(mmcv.__version__ != '$MMCV_VERSION')" 2>/dev/null; then
  if ! ls "$WHEEL_DIR"/mmcv-${MMCV_VERSION}-*.whl >/dev/null 2>&1; then
    JOBS="${MAX_JOBS:-$(nproc)}"
    echo "        no cached wheel for $KEY: building from the sdist with $JOBS jobs (about 13 minutes on 2 cores)"
    mkdir -p "$WHEEL_DIR"
    BUILD_LOG="$WHEEL_DIR/build.log"
    # mmcv's build needs these importable at build time (no build isolation).
    "${PIP[@]}" install -q --no-deps "mmengine==0.10.7" "packaging" "pyyaml" "addict" "yapf" "termcolor" "platformdirs"
    "$VENV/bin/python" -c "import cv2" 2>/dev/null || "${PIP[@]}" install -q "opencv-python<4.12"
    (
      export MMCV_WITH_OPS=1 FORCE_CUDA=$WITH_CUDA MAX_JOBS="$JOBS"
      # --no-cache-dir: pip's own wheel cache is keyed by the sdist, not by the torch
      # it was built against, and would hand the other row's build back (whose ops
      # then fail to load: "undefined symbol: _ZN2at4_ops10zeros_like4call...").
      "${PIP[@]}" wheel --no-cache-dir --no-build-isolation --no-deps -v "mmcv==${MMCV_VERSION}" -w "$WHEEL_DIR.tmp"
    ) >"$BUILD_LOG" 2>&1 &
    pid=$!
    while kill -0 $pid 2>/dev/null; do
      sleep 20
      n=$(grep -oE '\[[0-9]+/[0-9]+\]' "$BUILD_LOG" 2>/dev/null | tail -n 1 || true)
      printf '        building mmcv... %4ss, compiled %s (log: %s)\n' "$((SECONDS - t))" "${n:-[setup]}" "$BUILD_LOG"
    done
    if ! wait $pid; then
      tail -n 40 "$BUILD_LOG"
      echo "[setup] mmcv build failed; full log in $BUILD_LOG" >&2
      exit 1
    fi
    mv "$WHEEL_DIR.tmp"/mmcv-*.whl "$WHEEL_DIR"/ && rmdir "$WHEEL_DIR.tmp"
  fi
  # --force-reinstall: an mmcv 2.1.0 whose ops fail to load may be installed already
  "${PIP[@]}" install -q --no-deps --force-reinstall "$WHEEL_DIR"/mmcv-${MMCV_VERSION}-*.whl
fi
elapsed $t

say "OpenMMLab stack (mmengine, mmdet, mmsegmentation, mmpretrain, openmim) and test tools"
t=$SECONDS
if [[ $EXISTING_TORCH == 1 ]]; then
  # Keep the environment's own torch, numpy and OpenCV: the pinned packages go in
  # without their dependencies (mmengine asks for opencv-python, which would sit
  # beside an opencv-python-headless), then everything they import.
  STACK="$(mktemp)"
  grep -hvE '^(numpy|opencv-python)' "$ROOT/requirements/stack.txt" "$ROOT/requirements/tests.txt" >"$STACK"
  "${PIP[@]}" install -q --no-deps -r "$STACK" "mmcv==${MMCV_VERSION}" "openmim==0.3.9"
  "${PIP[@]}" install -q -r "$ROOT/requirements/stack-deps.txt"
  rm -f "$STACK"
else
  "${PIP[@]}" install -q -r "$ROOT/requirements/stack.txt" -r "$ROOT/requirements/tests.txt" \
    "torch===${TORCH_VERSION}" "torchvision==${TORCHVISION_VERSION}" "mmcv==${MMCV_VERSION}" \
    "$SETUPTOOLS"
  "${PIP[@]}" install -q --no-deps "openmim==0.3.9"
fi
# grad-cam (the `cam` extra) asks for opencv-python-headless, a second OpenCV
# beside opencv-python: install it without dependencies, then what it imports.
"${PIP[@]}" install -q --no-deps -r "$ROOT/requirements/cam.txt"
"${PIP[@]}" install -q ttach scikit-learn
elapsed $t

say "mmsb (editable)"
t=$SECONDS
"${PIP[@]}" install -q --no-deps --no-build-isolation -e "$ROOT"
# mim 0.3.9 looks for mmsb/.mim beside the package metadata in site-packages,
# but a PEP 660 editable install keeps the code in the checkout: link it there
# (same files) so that `mim search mmsb` and `mim train mmsb` find them.
SITE="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
if [[ -L "$SITE/mmsb" || ! -e "$SITE/mmsb" ]]; then
  ln -sfn "$ROOT/mmsb" "$SITE/mmsb"
fi
elapsed $t

say "pip check"
"${PIP[@]}" check || echo "        (pip check reports the conflicts above: openmim's optional opendatalab chain and grad-cam's opencv-python-headless are left out on purpose)"

say "import check"
"$VENV/bin/python" - <<'EOF'
import torch, torchvision, mmcv, mmengine, mmdet, mmseg, mmpretrain, mmsb
from mmcv.ops import nms, RoIAlign  # noqa: F401  the compiled ops must load
print(f'        torch {torch.__version__} | torchvision {torchvision.__version__} | mmcv {mmcv.__version__} '
      f'| mmengine {mmengine.__version__} | mmdet {mmdet.__version__} | mmseg {mmseg.__version__} '
      f'| mmpretrain {mmpretrain.__version__} | mmsb {mmsb.__version__}')
EOF
want_stamp >"$STAMP"
echo "[setup] environment ready in $((SECONDS - T0))s"
