# Copyright (c) mmsb contributors. All rights reserved.
r"""Convert an SB-ResNet trained with the authors' code (their train.py, saved
by timm's CheckpointSaver) into mmsb's layout.

The authors publish code, not trained weights: the input is a file of your
own run, e.g. output/train/<run>/model_best.pth.tar.

    # mmpretrain ImageClassifier (backbone + head), for tools/test.py:
    python tools/model_converters/sbnet_to_mmsb.py \
        model_best.pth.tar sb-r50_in1k.pth
    # bare backbone, for init_cfg=dict(type='Pretrained', ...) in mmdet/mmseg:
    python tools/model_converters/sbnet_to_mmsb.py \
        model_best.pth.tar sb-r50_backbone.pth --backbone-only
    # the EMA weights of a run trained with --model-ema:
    python tools/model_converters/sbnet_to_mmsb.py \
        model_best.pth.tar sb-r50_ema_in1k.pth --ema

The file is read with torch.load(weights_only=True); argparse.Namespace (the
run's arguments) is the only class allowed beyond tensors and plain
containers. The state dict taken and the backbone arguments that match it are
printed. An existing output file is never overwritten unless --force is given.
"""
import argparse
import os
import os.path as osp
import sys


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument(
        'src', help="checkpoint of the authors' train.py (.pth/.pth.tar)")
    parser.add_argument('dst', help='where to write the mmsb checkpoint')
    parser.add_argument(
        '--backbone-only',
        action='store_true',
        help='drop the classifier and the backbone. prefix (mmdet/mmseg)')
    parser.add_argument(
        '--ema',
        action='store_true',
        help='convert state_dict_ema (saved with --model-ema) instead of '
        'state_dict')
    parser.add_argument(
        '--force', action='store_true', help='overwrite dst if it exists')
    args = parser.parse_args(argv)

    if not osp.isfile(args.src):
        sys.exit(f'error: source checkpoint not found: {args.src}')
    if osp.isdir(args.dst):
        sys.exit(f'error: {args.dst} is a directory; expected the path of '
                 f'the file to write')
    if osp.exists(args.dst) and not args.force:
        sys.exit(f'error: {args.dst} exists; pass --force to overwrite it')

    import torch

    from mmsb.converters import (checkpoint_summary,
                                 convert_official_sb_resnet,
                                 load_training_checkpoint, unwrap_state_dict)
    which = 'state_dict_ema' if args.ema else 'state_dict'
    try:
        ckpt = load_training_checkpoint(args.src)
        state_dict = unwrap_state_dict(ckpt, which)
        summary = checkpoint_summary(ckpt)
        converted, backbone = convert_official_sb_resnet(
            state_dict, with_head=not args.backbone_only)
    except Exception as e:  # noqa: BLE001  one line for the user
        # str(KeyError) is the repr of its message: quoted, escapes doubled
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        sys.exit(f'error: {args.src}: {type(e).__name__}: {msg}')

    origin = ', '.join(f'{k} {v}' for k, v in summary.items())
    print(f'took {which}' + (f' ({origin})' if origin else ''))
    out_dir = osp.dirname(osp.abspath(args.dst))
    os.makedirs(out_dir, exist_ok=True)
    tmp = args.dst + '.tmp'
    torch.save(
        dict(
            state_dict=converted,
            meta=dict(
                converted_from=osp.basename(args.src),
                source_state_dict=which,
                source=summary,
                backbone=backbone)), tmp)
    os.replace(tmp, args.dst)
    print(f'wrote {len(converted)} tensors to {args.dst}')
    print(f'backbone config: {backbone}')
    if 'fc.weight' in state_dict and not args.backbone_only:
        classes, channels = state_dict['fc.weight'].shape
        print(f'head: num_classes={classes}, in_channels={channels}')


if __name__ == '__main__':
    main()
