#!/usr/bin/env bash
# Multi-process training with torchrun: NCCL on GPUs, gloo on CPU-only hosts.
#   bash tools/dist_train.sh CONFIG GPUS_PER_NODE [train.py args...]
# Several nodes, as in the OpenMMLab toolboxes: run it on every node with the
# same NNODES, MASTER_ADDR (node 0's address) and PORT, and NODE_RANK 0..NNODES-1.
# PYTHON: the interpreter (default: python on the PATH, e.g. .venv/bin/python).
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: [NNODES=N NODE_RANK=R MASTER_ADDR=HOST PORT=P PYTHON=python]" \
       "bash $0 CONFIG GPUS_PER_NODE [train.py args...]" >&2
  exit 2
fi
CONFIG=$1
NPROC=$2
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
    "$DIR/train.py" \
    "$CONFIG" \
    --launcher pytorch "${@:3}"
