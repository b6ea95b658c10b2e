# Copyright (c) mmsb contributors. All rights reserved.
"""Draw the spatial bias maps a model produces for an image.

    python tools/analysis/visualize_bias.py CONFIG IMAGE [--checkpoint CKPT] \
        [--out bias.png] [--size 512] [--blocks backbone.layer1.0.spatial_bias]

Works with any mmdet / mmseg / mmpretrain config whose model has SB blocks:
the image is normalised with the config's data_preprocessor and fed to the
model's backbone. One row per SB block (input image, then each bias map as a
heatmap). An existing output file is not overwritten unless --force.
"""
import argparse
import os
import os.path as osp
import sys


def main(argv=None):
    p = argparse.ArgumentParser(description='Draw spatial bias maps')
    p.add_argument('config')
    p.add_argument('image')
    p.add_argument('--checkpoint', help='weights (default: random init)')
    p.add_argument('--out', default='bias_maps.png')
    p.add_argument('--size', type=int, default=512,
                   help='longer image side fed to the model')
    p.add_argument('--blocks', nargs='+', help='SB module names to draw')
    p.add_argument('--force', action='store_true')
    args = p.parse_args(argv)
    for path, what in ((args.config, 'config'), (args.image, 'image')):
        if not osp.isfile(path):
            sys.exit(f'error: {what} not found: {path}')
    if osp.exists(args.out) and not args.force:
        sys.exit(f'error: {args.out} exists; pass --force to overwrite it')

    import mmcv
    import torch
    from mmengine.config import Config

    from mmsb.apis import load_model, runner_model_cfg
    from mmsb.visualization import collect_bias_maps, draw_bias_maps

    cfg = Config.fromfile(args.config)
    model = load_model(cfg, args.checkpoint, strict=False)
    net = getattr(model, 'backbone', model)

    img = mmcv.imread(args.image, channel_order='rgb')
    img = mmcv.imrescale(img, (args.size, args.size))
    pre = runner_model_cfg(cfg).get('data_preprocessor') or {}
    mean = torch.tensor(pre.get('mean', [0.0] * 3)).view(3, 1, 1)
    std = torch.tensor(pre.get('std', [1.0] * 3)).view(3, 1, 1)
    x = (torch.from_numpy(img).permute(2, 0, 1).float() - mean) / std
    try:
        maps = collect_bias_maps(net, x[None])
        picture = draw_bias_maps(img, maps, blocks=args.blocks)
    except (KeyError, ValueError) as e:
        sys.exit(f'error: {e}')
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    mmcv.imwrite(picture[..., ::-1], args.out)
    print(f'wrote {args.out}: {len(maps)} SB blocks x '
          f'{next(iter(maps.values())).shape[1]} bias maps')


if __name__ == '__main__':
    main()
