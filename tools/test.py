# Copyright (c) mmsb contributors. All rights reserved.
"""Evaluate a checkpoint with the config's evaluator (COCO mAP, mIoU,
accuracy ...), for mmdet, mmseg and mmpretrain configs alike.

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--show-dir DIR]
    bash tools/dist_test.sh CONFIG CHECKPOINT 2
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from _preflight import (PreflightError, check_checkpoint,  # noqa: E402
                        check_config, fail, load_config)


def parse_args(argv=None):
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(description='Test a model (mmsb)')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='the dir to save logs and metrics')
    parser.add_argument(
        '--out', help='dump the raw predictions to this pickle file')
    parser.add_argument(
        '--show-dir',
        help='draw predictions into images under work_dir/timestamp/DIR')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
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


def enable_visualization(cfg, show_dir):
    hooks = cfg.get('default_hooks', {})
    if 'visualization' not in hooks:
        raise PreflightError('--show-dir needs a `visualization` hook in '
                             'default_hooks of the config')
    vis = hooks['visualization']
    if cfg.get('default_scope') == 'mmpretrain':
        vis['enable'] = True
        vis['out_dir'] = show_dir
    else:
        vis['draw'] = True
        vis['test_out_dir'] = show_dir


def main(argv=None):
    args = parse_args(argv)
    try:
        cfg = load_config(args.config, args.cfg_options)
        cfg.launcher = args.launcher
        if args.work_dir is not None:
            cfg.work_dir = args.work_dir
        elif cfg.get('work_dir', None) is None:
            cfg.work_dir = osp.join(
                './work_dirs',
                osp.splitext(osp.basename(args.config))[0])
        cfg.load_from = args.checkpoint
        check_checkpoint(args.checkpoint)
        check_config(cfg, args.config, build_model=True)
        if args.show_dir:
            enable_visualization(cfg, args.show_dir)
        if args.launcher != 'none':
            import torch
            if not torch.cuda.is_available():
                cfg.setdefault('model_wrapper_cfg',
                               dict(type='MMSBDistributedDataParallel'))
                cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})
                cfg.env_cfg.dist_cfg['backend'] = 'gloo'
    except PreflightError as e:
        fail(e)

    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner
    runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else \
        RUNNERS.build(cfg)
    if args.out:
        from mmengine.evaluator import DumpResults
        runner.test_evaluator.metrics.append(
            DumpResults(out_file_path=args.out))
    runner.test()


if __name__ == '__main__':
    main()
