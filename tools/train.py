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
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from _common import (PreflightError, build_runner,  # noqa: E402
                     config_with_work_dir, fail, finish_distributed,
                     make_parser, parse, preflight, setup_distributed)


def parse_args(argv=None):
    p = make_parser('Train a model (mmsb)')
    p.add_argument('--amp', action='store_true',
                   help='enable automatic mixed precision')
    p.add_argument('--auto-scale-lr', action='store_true',
                   help='scale the lr by the actual batch size '
                   '(auto_scale_lr)')
    p.add_argument('--resume', nargs='?', type=str, const='auto',
                   help='resume from this checkpoint, or without a value '
                   'from the latest checkpoint in the work dir')
    return parse(p, argv)


def build_cfg(args):
    cfg = config_with_work_dir(args)
    if args.amp:
        if not isinstance(cfg.get('optim_wrapper'), dict):
            raise PreflightError(
                f'{args.config}: --amp needs an optim_wrapper=dict(...) in '
                f'the config')
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    if args.auto_scale_lr:
        if 'base_batch_size' not in (cfg.get('auto_scale_lr') or {}):
            raise PreflightError(
                f'{args.config}: --auto-scale-lr needs auto_scale_lr='
                f'dict(enable=..., base_batch_size=...) in the config')
        cfg.auto_scale_lr.enable = True
    if args.resume is not None:
        cfg.resume = True
        cfg.load_from = None if args.resume == 'auto' else args.resume
    return cfg


def main(argv=None):
    args = parse_args(argv)
    try:
        cfg = build_cfg(args)
        setup_distributed(cfg)
        resume_from = cfg.load_from if cfg.get('resume') else None
        model, model_cfg = preflight(cfg, args.config, resume_from)
    except PreflightError as e:
        fail(e)
    build_runner(cfg, model, model_cfg).train()
    finish_distributed()


if __name__ == '__main__':
    main()
