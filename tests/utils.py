"""Helpers shared by the tests: paths, the tools as modules and as
processes, the demo configs on tiny data, and checkpoints written as the
authors' train.py writes them.

Every run uses its own pytest tmp dir for data and work dirs; the demo
configs are shortened with ``--cfg-options`` exactly as a user would.
"""
import argparse
import importlib.util
import os
import os.path as osp
import socket
import subprocess
import sys
from pathlib import Path

import torch
import torch.nn as nn

from mmsb.models import SBResNet, SBResNetCIFAR

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
# tests/: on a tool's PYTHONPATH (``extra_paths``) it makes demo_hooks.py
# importable by a config's custom_imports.
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
    """The command line of tools/<name> (``'train.py'``)."""
    return [sys.executable, osp.join(REPO, 'tools', name)]


def load_tool(name):
    """tools/<name>.py as a module (tools/ is not a package); ``name`` may
    hold a folder: ``'train'``, ``'analysis/benchmark'``."""
    spec = importlib.util.spec_from_file_location(
        'mmsb_tools_' + name.split('/')[-1],
        osp.join(REPO, 'tools', f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def load_ckpt(path):
    import mmsb  # noqa: F401  allowlists Runner checkpoint globals
    return torch.load(path, map_location='cpu')


def listing(folder):
    """Every file and folder under ``folder`` with its mtime, and a file's
    bytes: equal listings mean nothing was written, rewritten or removed."""
    folder = Path(folder)
    return {p.relative_to(folder): (p.stat().st_mtime_ns,
                                    p.read_bytes() if p.is_file() else None)
            for p in folder.rglob('*')}


def explain(proc):
    """Failure message of a finished subprocess: its output's tail."""
    out = (proc.stdout or '')[-3000:]
    err = (proc.stderr or '')[-3000:]
    return f'exit {proc.returncode}\n--- stdout\n{out}\n--- stderr\n{err}'


# -------------------------------- checkpoints as the authors' train.py writes
# A torch without an allowlist (< 2.4) cannot admit the run's
# argparse.Namespace in a weights-only load, and the converter never loads
# unrestricted: there the files below are written as CheckpointSaver writes
# them without `args`, and test_args_need_an_allowlist (test_converters.py)
# checks the refusal.
HAS_ALLOWLIST = hasattr(torch.serialization, 'add_safe_globals')


def randomize(model, seed):
    """Random weights and BN statistics: every tensor tells its source."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if not t.is_floating_point():
                continue
            if t.dim() > 1:  # He-normal by fan-in keeps activations sane
                t.copy_(torch.randn(t.shape, generator=g) *
                        (2 * t.shape[0] / t.numel())**.5)
            elif name.endswith(('running_var', '.weight')):
                t.copy_(torch.rand(t.shape, generator=g) + .5)
            else:
                t.copy_(torch.randn(t.shape, generator=g) * .1)
    return model


def authors_layout(model_sd, fc=None):
    """Rename mmsb keys to the authors' layout (resnet.py + SB_module.py)."""
    out = {}
    for k, v in model_sd.items():
        k = k.replace('.spatial_bias.reduce.', '.SB.feature_reduction.0.')
        k = k.replace('.spatial_bias.bn.', '.SB.feature_reduction.1.')
        k = k.replace('.spatial_bias.mix.', '.SB.sb_conv.')
        out[k] = v
    if fc is not None:
        out['fc.weight'], out['fc.bias'] = fc.weight.data, fc.bias.data
    return out


def old_layout(authors_sd):
    """The first release's names (spatial_bias.py): branch tensors directly
    in the block, the mixing conv with a (1, 3) kernel."""
    out = {}
    for k, v in authors_sd.items():
        k = k.replace('.SB.feature_reduction.0.', '.conv_gc_reduction.')
        k = k.replace('.SB.feature_reduction.1.', '.bn_gc_reduction.')
        if '.SB.sb_conv.weight' in k:
            v = v.unsqueeze(2)
        k = k.replace('.SB.sb_conv.', '.nlc_convolution.')
        out[k] = v
    return out


def saver_checkpoint(path, model, fc, ema_sd=None, arch='sb_resnet50',
                     extra=None, with_args=HAS_ALLOWLIST):
    """Write what CheckpointSaver._save writes after a real SGD step of
    ``model`` (+ ``fc``), with the authors' key layout; ``args`` (the run's
    Namespace) only ``with_args``."""
    params = list(model.parameters()) + list(fc.parameters())
    opt = torch.optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=1e-4)
    side = 64 if isinstance(model, SBResNet) and not isinstance(
        model, SBResNetCIFAR) else 32
    model.train()
    logits = fc(model(torch.rand(2, 3, side, side))[-1].mean((2, 3)))
    nn.functional.cross_entropy(logits, torch.tensor([0, 1])).backward()
    opt.step()
    opt.zero_grad()
    model.eval()
    args = argparse.Namespace(
        data_dir='your_imagenet_dir', model=arch, num_classes=fc.out_features,
        opt='lamb', lr=3.5e-3, weight_decay=.02, epochs=300, sched='cosine',
        input_size=None, mean=None, std=None, mixup=.1, cutmix=1.0,
        model_ema=ema_sd is not None, model_ema_decay=.9998, amp=True,
        native_amp=True, apex_amp=False, channels_last=True, device='cuda:0',
        distributed=False, world_size=1, rank=0, local_rank=0,
        prefetcher=True, run_name=f'{arch}_20221213_180800',
        cuda='0,1,2,3', eval_metric='top1')
    state = {
        'epoch': 7,
        'arch': args.model,
        'state_dict': authors_layout(model.state_dict(), fc),
        'optimizer': opt.state_dict(),
        'version': 2,
        **({'args': args} if with_args else {}),
        # torch.cuda.amp.GradScaler.state_dict() of an enabled scaler
        'amp_scaler': {'scale': 65536.0, 'growth_factor': 2.0,
                       'backoff_factor': 0.5, 'growth_interval': 2000,
                       '_growth_tracker': 17},
    }
    if ema_sd is not None:
        state['state_dict_ema'] = ema_sd
    state['metric'] = 71.25
    state.update(extra or {})
    torch.save(state, path)
    return state


def classifier(backbone_cfg, num_classes, in_channels):
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return MODELS.build(
            dict(type='ImageClassifier',
                 backbone=dict(backbone_cfg,
                               out_indices=(len(backbone_cfg['sb_stages']) -
                                            1, )),
                 neck=dict(type='GlobalAveragePooling'),
                 head=dict(type='LinearClsHead', num_classes=num_classes,
                           in_channels=in_channels)))
