# Copyright (c) mmsb contributors. All rights reserved.
"""Grad-CAM of the convolution branch and the spatial-bias branch of SB
blocks, side by side over the input (paper Fig. 2 and Fig. 4).

    python tools/analysis/visualize_cam.py CONFIG CHECKPOINT IMAGE [IMAGE ...] \\
        [--blocks backbone.layer1.1 backbone.layer2.1] [--target N] [--out cam.png]

For mmpretrain classifiers (the target is a class score) and mmseg
segmentors (the target is a class over the pixels predicted as it). Images
are read and normalised as the config's pipeline and data_preprocessor do.
Needs the ``grad-cam`` package (``pip install "mmsb[cam]"``). An existing
output file is not overwritten unless --force.
"""
import argparse
import os
import os.path as osp
import sys


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('config')
    p.add_argument('checkpoint')
    p.add_argument('images', nargs='+')
    p.add_argument('--blocks', nargs='+', default=None,
                   help='SB blocks (default: the last SB block of each stage)')
    p.add_argument('--target', type=int, default=None,
                   help='class to explain (default: the prediction)')
    p.add_argument('--size', type=int, default=None,
                   help='resize the longer image side to this first')
    p.add_argument('--out', default='cam.png')
    p.add_argument('--force', action='store_true')
    args = p.parse_args(argv)
    for path, what in [(args.config, 'config'),
                       (args.checkpoint, 'checkpoint')] + \
            [(i, 'image') for i in args.images]:
        if not osp.isfile(path):
            sys.exit(f'error: {what} not found: {path}')
    if osp.exists(args.out) and not args.force:
        sys.exit(f'error: {args.out} exists; pass --force to overwrite it')

    import mmcv
    from mmengine.config import Config

    from mmsb.visualization import draw_gradcam_grid, load_model, sb_gradcam
    cfg = Config.fromfile(args.config)
    if cfg.get('default_scope') not in ('mmpretrain', 'mmseg'):
        sys.exit(f'error: {args.config}: Grad-CAM here explains classifiers '
                 f'(mmpretrain) and segmentors (mmseg); default_scope is '
                 f'{cfg.get("default_scope")!r}')
    try:
        model = load_model(cfg, args.checkpoint)
        blocks = args.blocks or _last_sb_blocks(model)
        rows = []
        for path in args.images:
            img = mmcv.imread(path)
            if args.size:
                img = mmcv.imrescale(img, (args.size, args.size))
            cams = sb_gradcam(model, img, blocks, target=args.target)
            rows.append((osp.basename(path), mmcv.bgr2rgb(img), cams))
    except (KeyError, ValueError, RuntimeError, ImportError) as e:
        sys.exit(f'error: {e}')
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    mmcv.imwrite(mmcv.rgb2bgr(draw_gradcam_grid(rows, blocks)), args.out)
    print(f'wrote {args.out}: {len(rows)} image(s) x {len(blocks)} SB '
          f'block(s), conv and SB branch each')


def _last_sb_blocks(model):
    from mmsb.visualization import sb_block_names
    last = {name.rsplit('.', 1)[0]: name for name in sb_block_names(model)}
    return list(last.values())


if __name__ == '__main__':
    main()
