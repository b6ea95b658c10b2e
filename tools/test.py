# Copyright (c) mmsb contributors. All rights reserved.
"""Evaluate a checkpoint with the config's evaluator (COCO mAP, mIoU,
accuracy ...), for mmdet, mmseg and mmpretrain configs alike.

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--show-dir DIR]
    bash tools/dist_test.sh CONFIG CHECKPOINT 2
"""
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from _common import (PreflightError, build_runner,  # noqa: E402
                     config_with_work_dir, fail, finish_distributed,
                     make_parser, parse, preflight, setup_distributed)


def parse_args(argv=None):
    p = make_parser('Test a model (mmsb)', checkpoint=True)
    p.add_argument('--out', help='dump the raw predictions to this pickle')
    p.add_argument('--show-dir', help='draw predictions into images under '
                   'work_dir/timestamp/DIR')
    return parse(p, argv)


def check_out(path):
    # DumpResults refuses other names, but only once the Runner has started
    if not path.endswith(('.pkl', '.pickle')):
        raise PreflightError(f'--out {path}: expected a .pkl or .pickle file '
                             f'(the raw predictions are pickled)')


def enable_visualization(cfg, cfg_path, show_dir):
    hooks = cfg.get('default_hooks') or {}
    if 'visualization' not in hooks:
        raise PreflightError(f'{cfg_path}: --show-dir needs a `visualization` '
                             f'hook in default_hooks of the config')
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
        if args.out:
            check_out(args.out)
        cfg = config_with_work_dir(args)
        cfg.load_from = args.checkpoint
        if args.show_dir:
            enable_visualization(cfg, args.config, args.show_dir)
        setup_distributed(cfg)
        model, model_cfg = preflight(cfg, args.config, args.checkpoint)
    except PreflightError as e:
        fail(e)
    runner = build_runner(cfg, model, model_cfg)
    if args.out:
        from mmengine.evaluator import DumpResults
        runner.test_evaluator.metrics.append(
            DumpResults(out_file_path=args.out))
    runner.test()
    finish_distributed()


if __name__ == '__main__':
    main()
