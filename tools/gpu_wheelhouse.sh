#!/usr/bin/env bash
# Fills wheelhouse-gpu/ (git-ignored) with what a lent GPU machine lacks to run
# tools/gpu_check.sh; run it here, where PyPI is reachable (docs/benchmark.md,
# "On a GPU machine"):
#
#   bash tools/gpu_wheelhouse.sh [DIR]      # default DIR: wheelhouse-gpu/
#
# That machine reaches no network. Its image (python3 is CPython 3.12 in a venv,
# x86-64, glibc >= 2.28 like its torch wheels) already holds torch 2.11 + CUDA 13,
# torchvision, nvcc, ninja, numpy 2, opencv-python-headless, SciPy, matplotlib,
# pytest, and pyyaml, rich, regex, six, tqdm, einops, click, markdown, zipp, pillow,
# packaging (ON_IMAGE below). This folder adds, one version of each:
#   - the mmcv sdist (tools/setup_env.sh's MMCV_VERSION), built there twice: without
#     ops (MMCV_WITH_OPS=0, seconds) and with its CUDA ops for that GPU (minutes);
#   - mmengine, mmdet, mmsegmentation, mmpretrain as pinned in requirements/stack.txt;
#   - their dependencies missing from the image, as cp312 manylinux wheels
#     (pycocotools and shapely are compiled; the rest is pure Python);
#   - setuptools < 81: mmcv's setup.py and mmengine's `mmdet::` config lookup
#     import pkg_resources, which setuptools 81 removed (as tools/setup_env.sh).
# Nothing here asks for numpy < 2 at install time (mmengine, mmcv, mmdet, mmseg,
# mmpretrain and pycocotools require plain `numpy`, shapely numpy >= 1.26), so the
# image's numpy stays: its torch, OpenCV and SciPy are built for numpy 2. The
# project's numpy<2 pin (requirements/stack.txt) belongs to the CPU rows, whose
# opencv-python < 4.12 needs numpy 1. mmengine and mmcv declare opencv-python;
# the image's opencv-python-headless provides the same cv2, so tools/gpu_check.sh
# installs everything with --no-deps (and `pip check` there names that one gap).
#
# Checks, offline, before the folder replaces an old one: every file installs on
# CPython 3.12 manylinux x86_64 (pip install --dry-run --no-index --target), every
# dependency a shipped package declares is shipped or on the image, and the size.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="$(realpath -m "${1:-$ROOT/wheelhouse-gpu}")"
PY="${PYTHON:-python3}"
MMCV_VERSION="$(sed -n 's/^MMCV_VERSION=//p' "$ROOT/tools/setup_env.sh")"
mapfile -t OPENMMLAB < <(grep -oE '^(mmengine|mmdet|mmsegmentation|mmpretrain)==[^ #]+' \
  "$ROOT/requirements/stack.txt")
# What the OpenMMLab packages import and the image lacks (declared dependencies,
# and ftfy, which mmseg imports without declaring it; see requirements/seg.txt).
DEPS=(addict yapf platformdirs termcolor                 # mmengine, mmcv
      pycocotools shapely terminaltables                 # mmdet
      prettytable wcwidth ftfy                           # mmseg
      mat4py modelindex model-index ordered-set
      importlib-metadata lazy-importer                   # mmpretrain
      "setuptools>=77.0.3,<81")
# Already on the image (its package list, read 2026-11-17), by requirement name.
ON_IMAGE="numpy scipy matplotlib pillow packaging pyyaml rich regex six tqdm einops
          click markdown zipp opencv-python-headless"
# opencv-python (mmengine's, mmcv's requirement): the image's headless build, same cv2.
SAME_AS="opencv-python=opencv-python-headless"
TAGS=(--only-binary=:all: --python-version 3.12 --implementation cp --abi cp312
      --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64
      --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64
      --platform manylinux2014_x86_64)
PIP=("$PY" -m pip --disable-pip-version-check)

[[ -n "$MMCV_VERSION" && ${#OPENMMLAB[@]} == 4 ]] || {
  echo "[wheelhouse] could not read MMCV_VERSION from tools/setup_env.sh or the four" \
       "OpenMMLab pins from requirements/stack.txt" >&2; exit 1; }
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
NEW="$TMP/wheelhouse"
mkdir -p "$NEW"

echo "[wheelhouse] wheels for CPython 3.12 manylinux x86_64: ${OPENMMLAB[*]} ${DEPS[*]}"
"${PIP[@]}" download -q --no-deps "${TAGS[@]}" -d "$NEW" "${OPENMMLAB[@]}" "${DEPS[@]}"

echo "[wheelhouse] mmcv==$MMCV_VERSION sdist"
# pip prepares an sdist's metadata even to download it, and mmcv's setup.py imports
# pkg_resources: use the setuptools < 81 just fetched, not pip's isolated newest one.
"$PY" -m venv "$TMP/venv"
"$TMP/venv/bin/python" -m pip install -q --disable-pip-version-check --no-index \
  --find-links "$NEW" "setuptools>=77.0.3,<81"
"$TMP/venv/bin/python" -m pip download -q --disable-pip-version-check --no-deps \
  --no-binary :all: --no-build-isolation -d "$NEW" "mmcv==$MMCV_VERSION"

echo "[wheelhouse] check: one version each, installable on CPython 3.12 manylinux x86_64"
# The requirement names of the files, from their names (name-version-...).
mapfile -t REQS < <(cd "$NEW" && for f in *.whl; do
  IFS=- read -r name version _ <<<"$f"; echo "$name==$version"; done)
dupes="$(printf '%s\n' "${REQS[@]}" | cut -d= -f1 | tr 'A-Z_.' 'a-z--' | sort | uniq -d)"
[[ -z "$dupes" ]] || { echo "[wheelhouse] two versions of: $dupes" >&2; exit 1; }
"${PIP[@]}" install -q --dry-run --ignore-installed --no-index --find-links "$NEW" \
  --no-deps "${TAGS[@]}" --target "$TMP/target" "${REQS[@]}"
echo "        pip install --dry-run --no-index --no-deps --target: ${#REQS[@]} wheels resolve"

echo "[wheelhouse] check: every dependency is shipped or on the image"
"$PY" - "$NEW" "mmcv-$MMCV_VERSION" "$ON_IMAGE" "$SAME_AS" <<'EOF'
import re, sys, tarfile, zipfile
from pathlib import Path
from pip._vendor.packaging.requirements import Requirement
folder, mmcv, on_image, same_as = Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
norm = lambda n: re.sub(r'[-_.]+', '-', n).lower()
env = dict(python_version='3.12', python_full_version='3.12.3', sys_platform='linux',
           platform_system='Linux', platform_machine='x86_64', os_name='posix',
           implementation_name='cpython', platform_python_implementation='CPython',
           extra='')
shipped = {norm(p.name.split('-')[0]): p.name for p in folder.glob('*.whl')}
image = {norm(n) for n in on_image.split()}
alias = dict([map(norm, same_as.split('='))])
needs = {}   # shipped file -> its requirements
for whl in folder.glob('*.whl'):
    with zipfile.ZipFile(whl) as z:
        meta = next(n for n in z.namelist()
                    if re.fullmatch(r'[^/]+\.dist-info/METADATA', n))
        lines = z.read(meta).decode().splitlines()
    needs[whl.name] = [l.split(':', 1)[1] for l in lines if l.startswith('Requires-Dist:')]
with tarfile.open(folder / f'{mmcv}.tar.gz') as t:   # what mmcv's wheel will declare
    runtime = t.extractfile(f'{mmcv}/requirements/runtime.txt').read().decode()
needs[f'{mmcv}.tar.gz'] = [l for l in runtime.splitlines() if l.strip()] + ['opencv-python']
missing, applied = [], 0
for who, reqs in sorted(needs.items()):
    for line in reqs:
        req = Requirement(line)
        if req.marker and not req.marker.evaluate(env):
            continue
        applied += 1
        name = norm(req.name)
        if name in shipped:
            version = shipped[name].split('-')[1]
            if not req.specifier.contains(version, prereleases=True):
                missing.append(f'{who} needs {req}, shipped {version}')
        elif name not in image and alias.get(name) not in image:
            missing.append(f'{who} needs {req}: neither shipped nor on the image')
print('\n'.join(f'        MISSING {m}' for m in missing) or
      f'        {applied} requirements of {len(needs)} files (extras and other '
      f'platforms left out): all shipped or on the image')
sys.exit(bool(missing))
EOF

rm -rf "$DIR"
mkdir -p "$(dirname "$DIR")"
mv "$NEW" "$DIR"
printf '        %s\n' "$DIR"/* | sed "s|$DIR/||"
tree_kib="$(cd "$ROOT" && git ls-files -z --cached --others --exclude-standard \
  | du -ck --files0-from=- 2>/dev/null | tail -n 1 | cut -f1)"
wh_kib="$(du -sk "$DIR" | cut -f1)"
echo "[wheelhouse] ${DIR#"$ROOT"/}: $(du -sh "$DIR" | cut -f1) in ${#REQS[@]} wheels + 1 sdist;" \
     "with the working tree ($((tree_kib / 1024)) MiB) $(((tree_kib + wh_kib) / 1024)) MiB" \
     "of the 64 MiB that may travel"
if (( tree_kib + wh_kib > 60 * 1024 )); then
  echo "[wheelhouse] over 60 MiB together: the device machine may refuse the tree" >&2
  exit 1
fi
