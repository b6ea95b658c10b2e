#!/usr/bin/env bash
# Puts Fashion-MNIST (Xiao et al. 2017; MIT licence) where the configs of
# configs/evidence/ read it: the four unzipped IDX files that mmpretrain's
# FashionMNIST dataset opens with download=False.
#
#   make data-fashion                      # or: bash tools/data/fashion_mnist.sh [DIR]
#
# DIR defaults to data/fashion-mnist/ in the repository. For each missing file
# it takes DIR/<name>.gz, else the Debian package's copy
# ($FASHION_MNIST_DEB_DIR, default /usr/share/datasets/fashion-mnist/, from
# `apt-get install dataset-fashion-mnist`); as root it installs that package
# when the files are found nowhere, unless MMSB_DATA_NO_INSTALL=1. Files that
# are already there are kept, never overwritten; each new one is checked
# (IDX header against its length, as many labels as images) and moved into
# place whole. Otherwise it says in one line what to install or where to put
# the files, and exits 1.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DEST="${1:-$ROOT/data/fashion-mnist}"
DEB_DIR="${FASHION_MNIST_DEB_DIR:-/usr/share/datasets/fashion-mnist}"
NAMES=(train-images-idx3-ubyte train-labels-idx1-ubyte
       t10k-images-idx3-ubyte t10k-labels-idx1-ubyte)
SHOW="${DEST#"$ROOT"/}/"

missing() {
  local n
  for n in "${NAMES[@]}"; do [[ -f "$DEST/$n" ]] || echo "$n"; done
}

source_of() {  # the .gz that would provide $1, if any
  local d
  for d in "$DEST" "$DEB_DIR"; do
    [[ -f "$d/$1.gz" ]] && { echo "$d/$1.gz"; return 0; }
  done
  return 1
}

be32() {  # big-endian uint32 of file $1 at byte offset $2
  od -An -v -tu1 -j "$2" -N4 "$1" | awk '{print ((($1*256+$2)*256+$3)*256+$4)}'
}

idx_count() {  # number of items in IDX file $1 after checking its header
  local f="$1" magic n want
  if [[ $(stat -c %s "$f") -lt 8 ]]; then
    echo "error: $f: $(stat -c %s "$f") bytes, too short for an IDX file" >&2
    return 1
  fi
  magic=$(be32 "$f" 0)
  n=$(be32 "$f" 4)
  case "$magic" in
    2049) want=$((8 + n)) ;;                                         # uint8, 1-D
    2051) [[ $(stat -c %s "$f") -ge 16 ]] || { echo "error: $f: truncated IDX header" >&2; return 1; }
          want=$((16 + n * $(be32 "$f" 8) * $(be32 "$f" 12))) ;;     # uint8, 3-D
    *) echo "error: $f: IDX magic $magic, expected 2049 (labels) or 2051 (images)" >&2
       return 1 ;;
  esac
  if [[ $(stat -c %s "$f") -ne $want ]]; then
    echo "error: $f: $(stat -c %s "$f") bytes, its IDX header says $want" >&2
    return 1
  fi
  echo "$n"
}

todo=$(missing)
if [[ -z "$todo" ]]; then
  echo "$SHOW already holds the four Fashion-MNIST files; nothing to copy."
fi

for n in $todo; do
  if ! source_of "$n" >/dev/null; then
    if [[ "${MMSB_DATA_NO_INSTALL:-0}" != 1 && $(id -u) -eq 0 ]] \
        && command -v apt-get >/dev/null; then
      echo "installing the Debian package dataset-fashion-mnist (30 MB) ..."
      export DEBIAN_FRONTEND=noninteractive
      # apt's chatter only when it fails (a stale package list: update once)
      log=$(apt-get install -y -q dataset-fashion-mnist 2>&1) \
        || log=$({ apt-get update -q && apt-get install -y -q dataset-fashion-mnist; } 2>&1) \
        || echo "$log" | tail -n 3 >&2
    fi
    break
  fi
done

for n in $todo; do
  if ! source_of "$n" >/dev/null; then
    echo "Fashion-MNIST not found: as root run 'apt-get install dataset-fashion-mnist'" \
         "(Debian/Ubuntu) and 'make data-fashion' again, or put" "${todo//$'\n'/ }" \
         "(.gz or unzipped) into $SHOW" >&2
    exit 1
  fi
done

if [[ -n "$todo" ]]; then mkdir -p "$DEST"; fi
for n in $todo; do
  src=$(source_of "$n")
  tmp="$DEST/.$n.partial.$$"  # written with the user's umask, then renamed
  trap 'rm -f "$tmp"' EXIT
  gunzip -c "$src" > "$tmp"
  idx_count "$tmp" >/dev/null || exit 1
  # never replace a file that appeared meanwhile (a concurrent run)
  mv -n "$tmp" "$DEST/$n"
  rm -f "$tmp"
  trap - EXIT
  echo "$SHOW$n <- $src"
done

for split in train t10k; do
  images=$(idx_count "$DEST/$split-images-idx3-ubyte")
  labels=$(idx_count "$DEST/$split-labels-idx1-ubyte")
  if [[ "$images" -ne "$labels" ]]; then
    echo "error: $SHOW: $images $split images but $labels labels" >&2
    exit 1
  fi
  echo "$SHOW: $split: $images images"
done
