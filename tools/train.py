# Copyright (c) mmsb contributors. All rights reserved.
"""Train a detector, segmentor or classifier from an mmsb (or any OpenMMLab)
config. The config's ``default_scope`` (mmdet / mmseg / mmpretrain) says which
toolbox runs it; mmengine's Runner does the work.

    python tools/train.py configs/demo/faster-rcnn_sb-r26_fpn_1xb8-300it_demo-coco-128.py
    bash tools/dist_train.sh CONFIG 2            # torchrun; gloo on CPU hosts
    python tools/train.py CONFIG --resume        # resume from the latest ckpt

Before anything is written, the config, its dataset files, the model and the
checkpoint to resume from are checked; a problem ends the run with one line
naming the file or key.
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from _preflight import (PreflightError, check_checkpoint,  # noqa: E402
                        check_config, fail, load_config)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a model (mmsb)')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--amp', action='store_true', help='enable automatic mixed precision')
    parser.add_argument(
        '--auto-scale-lr',
        action='store_true',
        help='scale the lr by the actual batch size (auto_scale_lr)')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='resume from this checkpoint, or without a value from the '
        'latest checkpoint in the work dir')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=_DictAction,
        help='override config settings, key=value (xxx=yyy format)')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def _DictAction(*args, **kwargs):
    from mmengine.config import DictAction
    return DictAction(*args, **kwargs)


def build_cfg(args):
    cfg = load_config(args.config, args.cfg_options)
    cfg.launcher = args.launcher
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])
    if args.amp:
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    if args.auto_scale_lr:
        if 'auto_scale_lr' not in cfg or \
                'base_batch_size' not in cfg.auto_scale_lr:
            raise PreflightError(
                f'{args.config}: --auto-scale-lr needs auto_scale_lr='
                f'dict(enable=..., base_batch_size=...) in the config')
        cfg.auto_scale_lr.enable = True
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume
    if args.launcher != 'none':
        import torch
        if not torch.cuda.is_available():
            # DDP refuses device_ids for CPU modules (see mmsb.compat).
            cfg.setdefault('model_wrapper_cfg',
                           dict(type='MMSBDistributedDataParallel'))
            cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})
            cfg.env_cfg.dist_cfg['backend'] = 'gloo'
    return cfg


def main(argv=None):
    args = parse_args(argv)
    try:
        cfg = build_cfg(args)
        check_config(cfg, args.config, build_model=True)
        if cfg.get('resume') and cfg.get('load_from'):
            check_checkpoint(cfg.load_from)
    except PreflightError as e:
        fail(e)

    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner
    if 'runner_type' not in cfg:
        runner = Runner.from_cfg(cfg)
    else:
        runner = RUNNERS.build(cfg)
    runner.train()


if __name__ == '__main__':
    main()
