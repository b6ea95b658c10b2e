#!/usr/bin/env bash
# The GPU checks in one command on a lent GPU machine that reaches no network
# (docs/benchmark.md, "The GPU check"). Here, first: bash tools/gpu_wheelhouse.sh;
# the folder wheelhouse-gpu/ travels with the working tree (carried: it is ignored).
#
#   bash tools/gpu_check.sh                   # everything, within --budget seconds
#   bash tools/gpu_check.sh --no-build        # no compiling: what needs no mmcv op
#   bash tools/gpu_check.sh --only mmcv-install,pytest-ops,demo-det   # a rerun of
#                                 # some steps; the run ends with the command for what
#                                 # did not pass (the machine keeps what it built for
#                                 # 30 s after a command; a later call starts afresh)
#   bash tools/gpu_check.sh --dry-run         # the steps, their limits and commands
#   bash tools/gpu_check.sh --cpu-smoke       # the plumbing, here, on the CPU, tiny
#   bash tools/gpu_check.sh --rehearsal       # --cpu-smoke in a copy of the device's
#                                 # software (tools/gpu_rehearsal.sh): installs too
# Options: --out DIR (default $OUT, else work_dirs/gpu_check), --budget SECONDS
# (default 420: with the machine's start it leaves a rerun inside 15 minutes),
# --wheelhouse DIR (default wheelhouse-gpu). PYTHON: the interpreter (python3).
# MMSB_GPU_LIMIT_SCALE: every step's limit times this (default 1).
#
# The steps, their order and time limits are the table STEP_TABLE below (one place:
# the dry run, the rehearsal and the device run all read it; a test too). Each
# step has its own limit, cut to what is left of the budget; a failed step does
# not stop the others:
#   env           GPU, driver, nvcc, ninja, C++ compiler, Python, torch, numpy
#   install       the wheelhouse's wheels into that Python with --no-deps, so its
#                 torch, numpy and OpenCV stay (setuptools < 81 only if it lacks
#                 pkg_resources: mmcv's setup.py and mmengine's `mmdet::` need it)
#   mmcv-lite     mmcv built without ops (MMCV_WITH_OPS=0, seconds) into a side
#                 folder, with a stand-in for its compiled module: `import mmcv.ops`
#                 (mmdet.models, hence mmsb, imports it) then works, and calling a
#                 compiled op raises. SB-ResNet, NLNet and GCNet are plain PyTorch.
#   imports       mmdet's, mmseg's and mmpretrain's models and mmsb, imported as the
#                 benchmark and the tests import them
#   bench-fp32    tools/analysis/benchmark.py --device cuda: R-50, SB-R-50, NL-50,
#   bench-amp     GC-50, inference and training step, batch 1/32/64/128,
#                 channels_last; one interleaved run per batch size (fp32, fp16
#                 AMP); first, on a quiet machine; each batch size is saved as soon
#                 as it is measured, so a step cut at its limit keeps what it did
#   mmcv-build    mmcv's ops for this GPU: the prebuilt wheel of the wheelhouse
#                 (tools/gpu_mmcv_wheel.sh) when there is one, else a build for this
#                 GPU's architecture only, all cores, niced, in the background while
#                 the next steps use mmcv-lite (cached as tools/setup_env.sh caches
#                 it; a rerun on the same machine finishes a stopped build)
#   pytest-lite   pytest -m gpu, all but the detector test
#   demo-data     the demo detection set (so that demo-det only trains)
#   mmcv-install  the mmcv wheel with ops, and a NMS / RoIAlign check against the CPU
#   pytest-ops    pytest -m gpu, the detector test (mmcv's RoIAlign and NMS)
#   demo-det      the demo Faster R-CNN, its 300 iterations with --amp: s/iter
# tools/dist_train.sh with one NCCL process runs in pytest-lite
# (test_dist_train_one_nccl_rank asserts backend='nccl'). The ops steps run as soon
# as the build is done, between the others. If the build does not finish in time,
# every step that does not need mmcv's CUDA ops has still run.
#
# mmpretrain 1.2 switches on its multimodal models when pycocotools and
# transformers >= 4.28 are installed (WITH_MULTIMODAL in mmpretrain/utils/
# dependency.py, read from package metadata), and those import names transformers
# 5 removed, so `import mmpretrain.models` fails on the image. Every step runs with
# a folder first on PYTHONPATH that holds only package metadata saying
# "transformers 0": mmpretrain's check then turns the multimodal models off;
# transformers itself stays importable, and nothing installed is edited.
#
# Output (the device tool brings back at most 8 files): gpu_check.log (all that is
# printed), summary.md (step, result, seconds, note), bench-{fp32,amp}.{json,md},
# logs.tar.gz (each step's log, the build log, pytest's JUnit XML, the detector's
# mmengine logs). Working files: $MMSB_GPU_WORK (default /tmp/mmsb_gpu_check).
set -uo pipefail   # no -e: a step that fails must not end the run

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# step, time limit in seconds ('-': what is left of the budget), how it runs:
# fg: in the foreground, in this order; build: in the background from here on;
# ops: as soon as the build has ended (needs mmcv's CUDA ops), in this order.
STEP_TABLE='
env            60  fg
install       120  fg
mmcv-lite      90  fg
imports        90  fg
bench-fp32    200  fg
bench-amp     160  fg
mmcv-build      -  build
pytest-lite   240  fg
demo-data      90  fg
mmcv-install   60  ops
pytest-ops    150  ops
demo-det      180  ops
'
declare -A LIMIT HOW
STEPS=() OPS=()
while read -r s lim how; do
  [[ -n "$s" ]] || continue
  STEPS+=("$s") LIMIT[$s]=$lim HOW[$s]=$how
  [[ $how == ops ]] && OPS+=("$s")
done <<<"$STEP_TABLE"

OUT_DIR="${OUT:-$ROOT/work_dirs/gpu_check}" BUDGET=420 BUILD=1 ONLY="" DRY=0 SMOKE=0
REHEARSAL=0
# every step's limit times this (a CPU rehearsal on a slow or busy machine)
SCALE="${MMSB_GPU_LIMIT_SCALE:-1}"
[[ "$SCALE" =~ ^[1-9][0-9]*$ ]] || { echo "gpu_check: MMSB_GPU_LIMIT_SCALE=$SCALE:" \
  "expected a whole number >= 1" >&2; exit 2; }
WH="$ROOT/wheelhouse-gpu"
while (($#)); do
  case "$1" in
    --out|--budget|--wheelhouse|--only)
      [[ $# -ge 2 ]] || { echo "gpu_check: $1 needs a value" >&2; exit 2; }
      case "$1" in
        --out) OUT_DIR=$2 ;; --budget) BUDGET=$2 ;; --wheelhouse) WH=$2 ;;
        --only) ONLY=",$2," ;;
      esac
      shift ;;
    --no-build) BUILD=0 ;;
    --dry-run) DRY=1 ;;
    --cpu-smoke) SMOKE=1 ;;
    --rehearsal) SMOKE=1 REHEARSAL=1 ;;
    -h|--help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "gpu_check: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done
if [[ ! "$BUDGET" =~ ^[0-9]+$ ]] || ((BUDGET < 60)); then
  echo "gpu_check: --budget $BUDGET: expected whole seconds >= 60" >&2; exit 2
fi
for s in ${ONLY//,/ }; do
  [[ " ${STEPS[*]} " == *" $s "* ]] ||
    { echo "gpu_check: --only names '$s'; the steps are: ${STEPS[*]}" >&2; exit 2; }
done

export ROOT SMOKE REHEARSAL WH
export PY="${PYTHON:-python3}"
export WORK="${MMSB_GPU_WORK:-/tmp/mmsb_gpu_check}"
OUT_DIR="$(realpath -m "$OUT_DIR")"
MMCV_VERSION="$(sed -n 's/^MMCV_VERSION=//p' tools/setup_env.sh)"
export LOGS="$WORK/logs" LITE="$WORK/mmcv-lite" OUT_DIR MMCV_VERSION
# the metadata that turns mmpretrain's multimodal models off (see the top)
export NOMM="$WORK/no-multimodal"
export PP_LITE="$NOMM:$LITE:$ROOT" PP_OPS="$NOMM:$ROOT"
export SDIST="$WH/mmcv-$MMCV_VERSION.tar.gz"
export DET_CFG=configs/demo/faster-rcnn_sb-r26_fpn_1xb8-300it_demo-coco-128.py
export PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
command -v nvcc >/dev/null 2>&1 || export PATH="$PATH:/usr/local/cuda/bin"

# ------------------------------------------------------------------ the steps
# Each runs as `bash -c step_...` under `timeout`; PYTHONPATH picks the mmcv:
# "$LITE:$ROOT" the one without ops, "$ROOT" the installed one.
step_env() {
  nvidia-smi || true
  command -v nvcc && nvcc --version | tail -n 2
  echo "ninja $(ninja --version 2>&1) | $(c++ --version 2>&1 | head -n 1) | cores: $(nproc)"
  "$PY" - <<'EOF'
import os, sys, cv2, numpy, torch
print('python', sys.version.split()[0], 'at', sys.executable)
print('torch', torch.__version__, '| CUDA', torch.version.cuda, '| cuDNN',
      torch.backends.cudnn.version(), '| numpy', numpy.__version__, '| cv2', cv2.__version__)
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    print(p.name, f'sm_{p.major}{p.minor}', p.total_memory // 2**20, 'MiB')
elif os.environ['SMOKE'] != '1':
    sys.exit('CUDA is not available to torch')
EOF
  local rc=$?
  "$PY" -m pip list 2>/dev/null | grep -iE '^(torch|torchvision|numpy|setuptools|opencv|mm)'
  return $rc
}

step_install() {
  set -e
  if [[ $SMOKE == 1 && $REHEARSAL != 1 ]]; then
    echo "cpu-smoke: this environment as it is"; return
  fi
  [[ -f "$SDIST" ]] || { echo "no $SDIST: run tools/gpu_wheelhouse.sh and carry it"; return 1; }
  local pip=("$PY" -m pip install -q --no-index --no-deps --no-cache-dir) wheels=() w
  if ! "$PY" -c 'import pkg_resources' 2>/dev/null; then
    "${pip[@]}" "$WH"/setuptools-*.whl
  fi
  # (the prebuilt mmcv with ops, if carried, is installed by mmcv-install)
  for w in "$WH"/*.whl; do
    [[ $w == */setuptools-* || $w == */mmcv-* ]] || wheels+=("$w")
  done
  "${pip[@]}" "${wheels[@]}"
  # Expected: mmengine (and mmcv) ask for opencv-python; the image has the headless cv2.
  "$PY" -m pip check || true
}

step_mmcv_lite() {
  set -e
  rm -rf "$LITE"
  MMCV_WITH_OPS=0 "$PY" -m pip install -q --no-index --no-deps --no-build-isolation \
    --no-cache-dir --target "$LITE" "$SDIST"
  cat >"$LITE/mmcv/_ext.py" <<'EOF'
"""Stand-in for the compiled ops of an mmcv built with MMCV_WITH_OPS=0, written
by tools/gpu_check.sh: mmcv.ops looks its functions up here at import time."""


def __getattr__(name):
    if name.startswith('__'):
        raise AttributeError(name)
    if name in ('get_compiler_version', 'get_compiling_cuda_version'):
        return lambda: 'n/a (mmcv without ops)'

    def missing(*args, **kwargs):
        raise RuntimeError(f'mmcv was built without its ops (MMCV_WITH_OPS=0): '
                           f'{name} is not available')
    return missing
EOF
  PYTHONPATH="$PP_LITE" "$PY" -c "
import mmcv, mmcv.ops
from mmcv.cnn import ContextBlock, NonLocal2d
print('mmcv', mmcv.__version__, 'without ops, from', mmcv.__file__)"
}

step_imports() {   # what the benchmark and the tests import, on this image
  PYTHONPATH="$PP_LITE" "$PY" - <<'EOF'
import importlib, time
for name in ('mmengine', 'mmdet.models', 'mmseg.models', 'mmpretrain.models',
             'mmsb', 'mmsb.data', 'mmsb.evaluation'):
    t = time.time()
    mod = importlib.import_module(name)
    print(f'{name:18} {time.time() - t:5.1f} s  {getattr(mod, "__version__", "")}')
from mmpretrain.utils.dependency import WITH_MULTIMODAL
print('mmpretrain multimodal models:', 'on' if WITH_MULTIMODAL else 'off')
EOF
}

prebuilt() {   # the carried mmcv wheel with ops (tools/gpu_mmcv_wheel.sh), if any
  ls "$WH"/mmcv-"$MMCV_VERSION"-*.whl 2>/dev/null | head -n 1
}

wheel_dir() {   # tools/setup_env.sh's cache folder for this torch, CUDA and GPU
  "$PY" - <<'EOF'
import os, sys, sysconfig, torch
plat = f'cp{sys.version_info[0]}{sys.version_info[1]}-' + sysconfig.get_platform().replace('-', '_')
arch = os.environ.get('TORCH_CUDA_ARCH_LIST') or '%d.%d' % torch.cuda.get_device_capability(0)
flavour = f'cuda{torch.version.cuda}-sm' + ''.join(c for c in arch if c.isdigit())
cache = os.environ.get('MMSB_WHEEL_CACHE', os.path.expanduser('~/.cache/mmsb/wheels'))
print(os.path.join(cache, f"torch-{torch.__version__.split('+')[0]}-{plat}-{flavour}"))
EOF
}

step_mmcv_build() {
  set -e
  local dir; dir="$(wheel_dir)"
  if ls "$dir"/mmcv-"$MMCV_VERSION"-*.whl 2>/dev/null; then echo "cached"; return; fi
  command -v nvcc || { echo "no nvcc on PATH"; return 1; }
  TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-$("$PY" -c \
    "import torch; print('%d.%d' % torch.cuda.get_device_capability(0))")}"
  MAX_JOBS="$(nproc)"
  export TORCH_CUDA_ARCH_LIST MMCV_WITH_OPS=1 FORCE_CUDA=1 MAX_JOBS
  echo "TORCH_CUDA_ARCH_LIST=$TORCH_CUDA_ARCH_LIST MAX_JOBS=$MAX_JOBS -> $dir"
  # Built in a kept source tree: a rerun after a stopped build compiles only what
  # ninja has not finished.
  local src="$WORK/mmcv-src/mmcv-$MMCV_VERSION"
  [[ -d "$src" ]] || { mkdir -p "$WORK/mmcv-src"; tar -xzf "$SDIST" -C "$WORK/mmcv-src"; }
  rm -rf "$dir.tmp"
  nice -n 10 "$PY" -m pip wheel --no-index --no-deps --no-build-isolation --no-cache-dir \
    -v "$src" -w "$dir.tmp"
  mkdir -p "$dir"
  mv "$dir.tmp"/mmcv-*.whl "$dir"/
  ls -l "$dir"
}

step_pytest_lite() {
  if [[ $SMOKE == 1 ]]; then   # no CUDA: the GPU tests collect; SpatialBias's run
    set -e
    PYTHONPATH="$PP_LITE" "$PY" -m pytest -m gpu --collect-only -q -p no:cacheprovider
    PYTHONPATH="$PP_LITE" "$PY" -m pytest -q -p no:cacheprovider -x \
      tests/test_models/test_layers/test_spatial_bias.py \
      --junitxml="$LOGS/pytest-lite.xml"
    return
  fi
  PYTHONPATH="$PP_LITE" "$PY" -m pytest -m gpu -k 'not demo_detector' -v \
    -p no:cacheprovider --durations=0 --junitxml="$LOGS/pytest-lite.xml"
}

bench() {   # $1: fp32 or amp
  local args=(--device cuda --models r50 sb-r50 nl50 gc50 --mode both
              --batch-sizes 1 32 64 128 --channels-last)
  local amp=(--amp fp16 --no-flops)   # GFLOPs do not depend on precision
  if [[ $SMOKE == 1 ]]; then
    args=(--device cpu --models r50 sb-r50 --mode both --batch-sizes 1
          --resolution 64 64 --warmup 0 --repeats 1 --no-memory)
    amp=(--amp bf16 --no-flops)
  fi
  [[ $1 == amp ]] && args+=("${amp[@]}")
  PYTHONPATH="$PP_LITE" "$PY" tools/analysis/benchmark.py "${args[@]}" \
    --json "$OUT_DIR/bench-$1.json" --md "$OUT_DIR/bench-$1.md"
}
step_bench_fp32() { bench fp32; }
step_bench_amp() { bench amp; }

step_demo_data() {
  if [[ $SMOKE == 1 ]]; then echo "cpu-smoke: demo-det makes its own tiny set"; return; fi
  PYTHONPATH="$PP_LITE" "$PY" -m mmsb.data.demo --root data/demo --tasks det
}

step_mmcv_install() {
  set -e
  local whl; whl="$(prebuilt)"
  if [[ -z "$whl" && $SMOKE != 1 ]]; then whl="$(ls "$(wheel_dir)"/mmcv-"$MMCV_VERSION"-*.whl)"; fi
  if [[ -n "$whl" ]]; then
    echo "installing $whl"
    "$PY" -m pip install -q --no-index --no-deps --force-reinstall --no-cache-dir "$whl"
  else
    echo "cpu-smoke: the installed mmcv"
  fi
  PYTHONPATH="$PP_OPS" "$PY" - <<'EOF'
import mmcv, torch
from mmcv.ops import RoIAlign, get_compiling_cuda_version, nms
print('mmcv', mmcv.__version__, 'from', mmcv.__file__, '| ops built with CUDA',
      get_compiling_cuda_version())
boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30.]])
scores = torch.tensor([.9, .8, .7])
feats, rois = torch.randn(2, 8, 32, 32), torch.tensor([[0, 1, 1, 20, 25], [1, 4, 2, 30, 9.]])
align = RoIAlign((7, 7), spatial_scale=1., sampling_ratio=2)
for dev in ['cpu'] + ['cuda'] * torch.cuda.is_available():
    keep = nms(boxes.to(dev), scores.to(dev), 0.5)[1].tolist()
    assert keep == [0, 2], (dev, keep)
    out = align(feats.to(dev), rois.to(dev)).cpu()
    if dev == 'cpu':
        ref = out
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    print(dev, 'NMS and RoIAlign agree')
EOF
}

step_pytest_ops() {
  PYTHONPATH="$PP_OPS" "$PY" -m pytest -m gpu tests/test_gpu.py -k demo_detector -v \
    -p no:cacheprovider --durations=0 --junitxml="$LOGS/pytest-ops.xml"
}

step_demo_det() {
  local args=(--amp)
  if [[ $SMOKE == 1 ]]; then   # 2 iterations on 12 images, as the demo tests
    local root="$WORK/data/coco/"
    args=(--cfg-options train_cfg.max_iters=2 train_cfg.val_interval=2
          default_hooks.logger.interval=1 default_hooks.checkpoint.interval=2
          val_evaluator.ann_file="${root}annotations/instances_val2017.json"
          test_evaluator.ann_file="${root}annotations/instances_val2017.json")
    for split in train val test; do
      args+=("${split}_dataloader.batch_size=2"
             "${split}_dataloader.dataset.data_root=$root"
             "${split}_dataloader.dataset.demo_cfg.num_train=12"
             "${split}_dataloader.dataset.demo_cfg.num_val=4"
             "${split}_dataloader.dataset.demo_cfg.img_size=64")
    done
  fi
  rm -rf "$WORK/demo-det"
  PYTHONPATH="$PP_OPS" "$PY" tools/train.py "$DET_CFG" --work-dir "$WORK/demo-det" "${args[@]}"
}

# One line for summary.md, read from a step's output after it ended (also when
# it was stopped at its limit).
note() {
  case "$1" in
    env) grep -E '^torch .* CUDA |sm_[0-9]+ [0-9]+ MiB$' "$LOGS/$1.log" | cut -d'|' -f1-2 |
           tr '\n' ' ' ;;
    mmcv-install) grep -oE 'ops built with CUDA .*' "$LOGS/$1.log" ;;
    pytest-*) grep -E '^=+ .*(passed|failed|error|skipped|deselected).* =+$' \
                "$LOGS/$1.log" | tail -n 1 | tr -d '=' | xargs ;;
    mmcv-build) { grep -oE '\[[0-9]+/[0-9]+\]' "$LOGS/$1.log" | tail -n 1
                  grep -oE 'mmcv-[^ /]*\.whl' "$LOGS/$1.log" | tail -n 1; } | tr '\n' ' ' ;;
    bench-*) "$PY" - "$OUT_DIR/$1.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))['ratios']
print('; '.join(f"{m} SB-R50/R50: " + ' '.join(
    f"b{b} {v['sb-r50/r50']:.2f}x" for b, v in r[m].items()) for m in r))
EOF
    ;;
    demo-det) "$PY" - "$WORK/demo-det" <<'EOF'
import glob, json, statistics, sys
rows = [json.loads(l) for f in glob.glob(f'{sys.argv[1]}/*/vis_data/scalars.json')
        for l in open(f)]
train = [r for r in rows if 'time' in r and 'loss' in r]
late = [r for r in train if r['step'] > 50] or train   # past warm-up
mAP = [r['coco/bbox_mAP'] for r in rows if 'coco/bbox_mAP' in r]
print(f"s/iter {statistics.median(r['time'] for r in late):.4f} (median of logged "
      f"windows, iter {late[0]['step']}-{late[-1]['step']}), data_time "
      f"{statistics.median(r['data_time'] for r in late):.4f}"
      + (f", bbox_mAP {mAP[-1]}" if mAP else ''))
EOF
    ;;
  esac
}

export -f step_env step_install step_mmcv_lite step_imports prebuilt wheel_dir \
  step_mmcv_build step_pytest_lite bench step_bench_fp32 step_bench_amp step_demo_data \
  step_mmcv_install step_pytest_ops step_demo_det

# --------------------------------------------------------------- the runner
declare -A RESULT SECS NOTE
T0=$SECONDS BUILD_PID="" BUILD_T0=0 OPS_DONE=0 BUILD_REACHED=0

left() { echo $((BUDGET - (SECONDS - T0))); }
selected() { [[ -z "$ONLY" || "$ONLY" == *",$1,"* ]]; }
fn_of() { echo "step_${1//-/_}"; }
show() {   # a step's command lines, for --dry-run
  echo "--- $1 (limit $2 s)"; declare -f "$(fn_of "$1")" | sed '1,2d;$d'
  [[ $1 != bench-* ]] || declare -f bench | sed '1,2d;$d'
}

summary() {
  local s parts=(logs)
  {
    echo "# tools/gpu_check.sh, $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo
    echo "budget ${BUDGET} s, used $((SECONDS - T0)) s; $( ((REHEARSAL)) && echo --rehearsal ||
         { ((SMOKE)) && echo --cpu-smoke || echo GPU run; })$( ((BUILD)) ||
         echo ', --no-build')${ONLY:+, --only ${ONLY:1:-1}}"
    echo
    echo "| step | result | seconds | note |"
    echo "| :--- | :--- | ---: | :--- |"
    for s in "${STEPS[@]}"; do
      echo "| $s | ${RESULT[$s]:-not reached} | ${SECS[$s]:-} | ${NOTE[$s]:-} |"
    done
  } >"$OUT_DIR/summary.md"
  [[ -d "$WORK/demo-det" ]] && parts+=(demo-det)
  tar -czf "$OUT_DIR/logs.tar.gz" -C "$WORK" --exclude='*.pth' "${parts[@]}" 2>/dev/null || true
}

record() {   # step, result, seconds, note
  RESULT[$1]=$2 SECS[$1]=$3 NOTE[$1]=${4//|/\/}
  ((DRY)) || summary
}

result_of() {   # timeout's exit status as a word
  case "$1" in
    0) echo PASS ;; 124) echo TIMEOUT ;; 137) echo "TIMEOUT (killed)" ;;
    *) echo "FAIL (exit $1)" ;;
  esac
}

run_step() {   # step [why not]: run it in the foreground within its limit
  local s=$1 lim t rc
  selected "$s" || { record "$s" "not selected" "" ""; return; }
  [[ -z "${2:-}" ]] || { record "$s" SKIP "" "$2"; return; }
  lim=$(left); ((lim < ${LIMIT[$s]} * SCALE)) || lim=$((LIMIT[$s] * SCALE))
  ((lim >= 20)) || { record "$s" SKIP "" "budget spent"; return; }
  ((DRY)) && { show "$s" "$lim"; record "$s" dry-run "" ""; return; }
  echo; echo "=== $s  $(date +%T), limit ${lim} s ($(left) s left of the budget)"
  t=$SECONDS
  timeout -k 10 "$lim" bash -c "$(fn_of "$s")" 2>&1 | tee "$LOGS/$s.log"
  rc=${PIPESTATUS[0]}
  record "$s" "$(result_of "$rc")" $((SECONDS - t)) "$(note "$s" 2>/dev/null)"
  echo "=== $s: ${RESULT[$s]} in ${SECS[$s]} s ${NOTE[$s]}"
}

start_build() {
  local lim
  BUILD_REACHED=1   # from here on the ops steps may run
  selected mmcv-build || { record mmcv-build "not selected" "" ""; return; }
  if [[ -n "$(prebuilt)" ]]; then
    ((DRY)) && echo "--- mmcv-build: nothing to build, the wheelhouse carries $(basename "$(prebuilt)")"
    record mmcv-build PASS 0 "prebuilt, carried: $(basename "$(prebuilt)")"; return
  fi
  ((BUILD)) || { record mmcv-build SKIP "" "--no-build"; return; }
  ((SMOKE)) && { record mmcv-build SKIP "" "cpu-smoke: the installed mmcv"; return; }
  lim=$(($(left) - 15))   # the build may take all that is left
  ((lim >= 20)) || { record mmcv-build SKIP "" "budget spent"; return; }
  ((DRY)) && { show mmcv-build "$lim"; record mmcv-build dry-run "" ""; return; }
  echo; echo "=== mmcv-build  $(date +%T), in the background, limit ${lim} s" \
             "(log: logs/mmcv-build.log)"
  BUILD_T0=$SECONDS
  rm -f "$WORK/mmcv-build.rc"
  ( timeout -k 10 "$lim" bash -c step_mmcv_build >"$LOGS/mmcv-build.log" 2>&1
    echo "$? $((SECONDS - BUILD_T0))" >"$WORK/mmcv-build.rc" ) &   # status, seconds
  BUILD_PID=$!
}

finish_build() {
  local rc secs
  wait "$BUILD_PID"
  BUILD_PID=""
  read -r rc secs <"$WORK/mmcv-build.rc"
  record mmcv-build "$(result_of "$rc")" "$secs" "$(note mmcv-build)"
  echo "=== mmcv-build: ${RESULT[mmcv-build]} in ${SECS[mmcv-build]} s ${NOTE[mmcv-build]}"
  tail -n 5 "$LOGS/mmcv-build.log"
}

ops_steps() {   # $1=wait: wait for the build; else only if it has finished
  local why=""
  ((OPS_DONE || !BUILD_REACHED)) && return
  ((DRY)) && [[ "${1:-}" != wait ]] && return   # shown where a build would end
  if [[ -n "$BUILD_PID" ]]; then
    if [[ "${1:-}" != wait ]] && kill -0 "$BUILD_PID" 2>/dev/null; then return; fi
    while kill -0 "$BUILD_PID" 2>/dev/null; do
      (((SECONDS - BUILD_T0) % 30)) || echo "    waiting for mmcv-build:" \
        "$((SECONDS - BUILD_T0)) s, $(grep -oE '\[[0-9]+/[0-9]+\]' "$LOGS/mmcv-build.log" | tail -n 1)"
      sleep 1
    done
    finish_build
  fi
  OPS_DONE=1
  if ((!SMOKE && !DRY)) && [[ -z "$(prebuilt)" ]] &&
      ! ls "$(wheel_dir 2>/dev/null)"/mmcv-*.whl >/dev/null 2>&1; then
    why="no mmcv wheel with CUDA ops (mmcv-build: ${RESULT[mmcv-build]})"
  fi
  local s
  for s in "${OPS[@]}"; do   # the table's ops steps, in its order
    run_step "$s" "$why"
    if [[ $s == mmcv-install ]]; then
      case "${RESULT[mmcv-install]}" in
        PASS|"not selected"|dry-run) ;;   # ran, or left to the caller
        *) why="needs mmcv's CUDA ops (mmcv-install: ${RESULT[mmcv-install]})" ;;
      esac
    fi
  done
}

if ((!DRY)); then
  mkdir -p "$OUT_DIR" "$LOGS" "$NOMM/transformers-0.dist-info"
  printf 'Metadata-Version: 2.1\nName: transformers\nVersion: 0\n' \
    >"$NOMM/transformers-0.dist-info/METADATA"
  exec > >(tee "$OUT_DIR/gpu_check.log") 2>&1
  TEE_PID=$!
fi
echo "tools/gpu_check.sh: budget ${BUDGET} s; output $OUT_DIR; work $WORK; python $PY;" \
     "wheelhouse $WH"
((DRY)) && echo "(dry run: nothing runs; limits assume the whole budget is left)"
for s in "${STEPS[@]}"; do   # STEP_TABLE's order
  case "${HOW[$s]}" in
    fg) run_step "$s"; ops_steps ;;   # the ops steps as soon as the build ended
    build) start_build ;;
  esac
done
ops_steps wait
((DRY)) && exit 0
summary
echo
cat "$OUT_DIR/summary.md"
again=()
for s in "${STEPS[@]}"; do
  case "${RESULT[$s]:-}" in PASS|"not selected"|SKIP|"") ;; *) again+=("$s") ;; esac
done
if ((${#again[@]})); then
  # The device machine stays warm 30 s after a command, with what it built;
  # a later call gets a fresh one (then --only still runs, but builds anew).
  echo
  echo "to rerun what did not pass, on this machine within 30 s of this command's end:"
  echo "  bash tools/gpu_check.sh --budget $BUDGET --only $(IFS=,; echo "${again[*]}")"
fi
exec >&- 2>&-
wait "$TEE_PID"   # gpu_check.log complete before the command returns
