#!/usr/bin/env bash
# Multi-process evaluation with torchrun: NCCL on GPUs, gloo on CPU-only hosts.
#   bash tools/dist_test.sh CONFIG CHECKPOINT GPUS_PER_NODE [test.py args...]
# NNODES, NODE_RANK, MASTER_ADDR, PORT and PYTHON as in tools/dist_train.sh.
set -euo pipefail
if [ $# -lt 3 ]; then
  echo "usage: [NNODES=N NODE_RANK=R MASTER_ADDR=HOST PORT=P PYTHON=python]" \
       "bash $0 CONFIG CHECKPOINT GPUS_PER_NODE [test.py args...]" >&2
  exit 2
fi
CONFIG=$1
CHECKPOINT=$2
NPROC=$3
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}
DIR="$(cd "$(dirname "$0")" && pwd)"
PYTHON=${PYTHON:-python}

PYTHONPATH="$DIR/..:${PYTHONPATH:-}" \
exec "$PYTHON" -m torch.distributed.run \
    --nnodes="$NNODES" \
    --node_rank="$NODE_RANK" \
    --master_addr="$MASTER_ADDR" \
    --nproc_per_node="$NPROC" \
    --master_port="$PORT" \
    "$DIR/test.py" \
    "$CONFIG" \
    "$CHECKPOINT" \
    --launcher pytorch "${@:4}"
