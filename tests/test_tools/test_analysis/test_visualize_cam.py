# Copyright (c) mmsb contributors. All rights reserved.
"""tools/analysis/visualize_cam.py on a tiny SB classifier: Grad-CAM of the
conv and SB branch of each block, one PNG, never overwritten without
--force. The checkpoint is a freshly built, seeded model saved as the
Runner saves one (state_dict and dataset_meta)."""
import mmcv
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.runner import save_checkpoint
from utils import load_tool

from mmsb.apis import load_model

pytest.importorskip('pytorch_grad_cam')

CONFIG = """
custom_imports = dict(imports=['mmsb'], allow_failed_imports=False)
default_scope = 'mmpretrain'
data_preprocessor = dict(mean=[127.5] * 3, std=[64.0] * 3, to_rgb=True)
model = dict(type='ImageClassifier',
             backbone=dict(type='SBResNetCIFAR', depth=11, base_channels=8),
             neck=dict(type='GlobalAveragePooling'),
             head=dict(type='LinearClsHead', num_classes=2, in_channels=128))
"""


def load_cam():
    """tools/analysis/visualize_cam.py as a module."""
    return load_tool('analysis/visualize_cam')


@pytest.fixture(scope='module')
def inputs(tmp_path_factory):
    """(config, checkpoint, two images) in a tmp dir."""
    tmp = tmp_path_factory.mktemp('cam')
    cfg = tmp / 'cls.py'
    cfg.write_text(CONFIG)
    torch.manual_seed(0)
    model = load_model(Config.fromfile(str(cfg)))
    ckpt = tmp / 'iter_1.pth'
    save_checkpoint(dict(state_dict=model.state_dict(),
                         meta=dict(dataset_meta=dict(classes=('a', 'b')))),
                    str(ckpt))
    rng = np.random.default_rng(0)
    images = []
    for i in range(2):
        images.append(tmp / f'img{i}.png')
        mmcv.imwrite((rng.random((32, 32, 3)) * 255).astype(np.uint8),
                     str(images[-1]))
    return cfg, ckpt, images


def test_sb_gradcam_maps_each_branch(inputs):
    cfg, ckpt, images = inputs
    tool = load_cam()
    model = load_model(Config.fromfile(str(cfg)), str(ckpt))
    assert model.dataset_meta == dict(classes=('a', 'b'))
    blocks = tool._last_sb_blocks(model)
    assert blocks and all(b.startswith('backbone.layer') for b in blocks)
    cams = tool.sb_gradcam(model, mmcv.imread(str(images[0])), blocks)
    assert cams['target'] in (0, 1)
    for block in blocks:
        for kind in ('conv', 'sb'):
            cam = cams[block][kind]
            assert cam.shape == (32, 32)
            assert cam.min() >= 0 and cam.max() <= 1
    with pytest.raises(KeyError, match='not a block with spatial bias'):
        tool.sb_gradcam(model, mmcv.imread(str(images[0])),
                        ['backbone.layer9'])


def test_tool_writes_png_and_refuses_overwrite(inputs, tmp_path, capsys):
    cfg, ckpt, images = inputs
    out = tmp_path / 'cam.png'
    argv = [str(cfg), str(ckpt)] + [str(i) for i in images] + [
        '--out', str(out)]
    load_cam().main(argv)
    assert 'wrote' in capsys.readouterr().out
    picture = mmcv.imread(str(out))
    blocks = load_cam()._last_sb_blocks(
        load_model(Config.fromfile(str(cfg))))
    # a 34 px header, then a row of 128 px tiles per image: a 190 px label,
    # the image, then the conv and SB CAM of each block
    assert picture.shape == (34 + 2 * 128, 190 + 128 * (1 + 2 * len(blocks)),
                             3)
    written = out.read_bytes()
    with pytest.raises(SystemExit) as exc:
        load_cam().main(argv)
    assert exc.value.code == (f'error: {out} exists; pass --force to '
                              f'overwrite it')
    assert out.read_bytes() == written
    load_cam().main(argv + ['--force'])
    assert mmcv.imread(str(out)).shape == picture.shape
