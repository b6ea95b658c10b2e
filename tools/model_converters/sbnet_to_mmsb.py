# Copyright (c) mmsb contributors. All rights reserved.
"""Convert an SB-ResNet checkpoint released by the paper's authors (timm
``sb_resnet50`` layout) into mmsb's layout.

    # mmpretrain ImageClassifier (backbone + head), for tools/test.py:
    python tools/model_converters/sbnet_to_mmsb.py sb_resnet50.pth sb-r50_in1k.pth
    # bare backbone, for init_cfg=dict(type='Pretrained', ...) in mmdet/mmseg:
    python tools/model_converters/sbnet_to_mmsb.py sb_resnet50.pth sb-r50_backbone.pth --backbone-only

The backbone arguments that match the checkpoint are printed. An existing
output file is never overwritten unless --force is given.
"""
import argparse
import os
import os.path as osp
import sys


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('src', help="the authors' checkpoint (.pth/.pth.tar)")
    parser.add_argument('dst', help='where to write the mmsb checkpoint')
    parser.add_argument(
        '--backbone-only',
        action='store_true',
        help='drop the classifier and the backbone. prefix (mmdet/mmseg)')
    parser.add_argument(
        '--force', action='store_true', help='overwrite dst if it exists')
    args = parser.parse_args(argv)

    if not osp.isfile(args.src):
        sys.exit(f'error: source checkpoint not found: {args.src}')
    if osp.exists(args.dst) and not args.force:
        sys.exit(f'error: {args.dst} exists; pass --force to overwrite it')

    import torch

    from mmsb.converters import convert_official_sb_resnet, unwrap_state_dict
    try:
        # Released checkpoints hold plain tensors: weights_only stays on.
        ckpt = torch.load(args.src, map_location='cpu', weights_only=True)
        state_dict = unwrap_state_dict(ckpt)
        converted, backbone = convert_official_sb_resnet(
            state_dict, with_head=not args.backbone_only)
    except Exception as e:  # noqa: BLE001  one line for the user
        sys.exit(f'error: {args.src}: {type(e).__name__}: {e}')

    out_dir = osp.dirname(osp.abspath(args.dst))
    os.makedirs(out_dir, exist_ok=True)
    tmp = args.dst + '.tmp'
    torch.save(
        dict(
            state_dict=converted,
            meta=dict(converted_from=osp.basename(args.src),
                      backbone=backbone)), tmp)
    os.replace(tmp, args.dst)
    print(f'wrote {len(converted)} tensors to {args.dst}')
    print(f'backbone config: {backbone}')


if __name__ == '__main__':
    main()
