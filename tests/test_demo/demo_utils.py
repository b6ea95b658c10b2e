"""Helpers of the demo tests: tiny demo data, config overrides, subprocesses.

Every run uses its own pytest tmp dir for data and work dirs; the demo
configs are shortened with ``--cfg-options`` exactly as a user would.
"""
import os
import os.path as osp
import socket
import subprocess
import sys

import torch

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
HERE = osp.dirname(osp.abspath(__file__))
CONFIGS = {
    task: osp.join(REPO, 'configs', 'demo', name)
    for task, name in (
        ('det', 'faster-rcnn_sb-r26_fpn_1xb8-300it_demo-coco-128.py'),
        ('seg', 'fpn_sb-r26_1xb8-500it_demo-ade-96x96.py'),
        ('cls', 'sb-resnet20-cifar_1xb32-600it_demo-cls.py'),
    )
}
SUBDIRS = {'det': 'coco', 'seg': 'ade', 'cls': 'cls'}
# The metric each task's real evaluator reports.
METRIC_KEYS = {'det': 'coco/bbox_mAP', 'seg': 'mIoU', 'cls': 'accuracy/top1'}
# Tiny data: seconds to generate, a few images per batch.
TINY = {
    'det': dict(num_train=12, num_val=4, img_size=64),
    'seg': dict(num_train=12, num_val=4, img_size=64),
    'cls': dict(num_train=24, num_val=9, img_size=32),
}


def data_root(tmp, task):
    return osp.join(str(tmp), 'data', SUBDIRS[task]) + '/'


def overrides(task, tmp, max_iters=2, ckpt_interval=2, batch_size=2,
              **extra):
    """``--cfg-options`` that point a demo config at tiny data in ``tmp``
    and shorten its schedule."""
    root = data_root(tmp, task)
    opts = [
        f'train_cfg.max_iters={max_iters}',
        f'train_cfg.val_interval={max_iters}',
        f'default_hooks.checkpoint.interval={ckpt_interval}',
        'default_hooks.logger.interval=1',
        f'train_dataloader.batch_size={batch_size}',
        f'val_dataloader.batch_size={batch_size}',
        f'test_dataloader.batch_size={batch_size}',
    ]
    for split in ('train', 'val', 'test'):
        opts.append(f'{split}_dataloader.dataset.data_root={root}')
        for key, value in TINY[task].items():
            opts.append(f'{split}_dataloader.dataset.demo_cfg.{key}={value}')
    if task == 'det':
        ann = root + 'annotations/instances_val2017.json'
        opts += [f'val_evaluator.ann_file={ann}',
                 f'test_evaluator.ann_file={ann}']
    opts += [f'{k}={v}' for k, v in extra.items()]
    return opts


def env(extra_paths=(), extra_env=None):
    """Environment of a tool subprocess: one thread, the repo importable."""
    e = dict(os.environ, **(extra_env or {}))
    e['OMP_NUM_THREADS'] = '1'
    e['PYTHONPATH'] = os.pathsep.join(
        [REPO, *extra_paths] +
        [p for p in e.get('PYTHONPATH', '').split(os.pathsep) if p])
    return e


def run(cmd, cwd, timeout=300, extra_paths=(), extra_env=None):
    return subprocess.run(
        cmd, cwd=str(cwd), env=env(extra_paths, extra_env),
        capture_output=True, text=True, timeout=timeout)


def tool(name):
    return [sys.executable, osp.join(REPO, 'tools', name)]


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def load_ckpt(path):
    import mmsb  # noqa: F401  allowlists Runner checkpoint globals
    return torch.load(path, map_location='cpu')


def listing(folder):
    """Every path under ``folder`` with its size and mtime."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(str(folder)):
        for name in dirnames + filenames:
            path = osp.join(dirpath, name)
            st = os.stat(path)
            found[osp.relpath(path, str(folder))] = (st.st_size,
                                                     st.st_mtime_ns)
    return found


def explain(proc):
    """Failure message of a finished subprocess: its output's tail."""
    out = (proc.stdout or '')[-3000:]
    err = (proc.stderr or '')[-3000:]
    return f'exit {proc.returncode}\n--- stdout\n{out}\n--- stderr\n{err}'
