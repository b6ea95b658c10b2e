import os
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from mmsb.models import SBResNet
from mmsb.visualization import collect_bias_maps, draw_bias_maps

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
# the tool imports this checkout's mmsb, not an installed copy
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join(
    [ROOT] + [p for p in os.environ.get('PYTHONPATH', '').split(os.pathsep)
              if p]))


def test_collect_and_draw():
    model = SBResNet(depth=26, base_channels=16).eval()
    img = (np.random.default_rng(0).random((90, 120, 3)) * 255).astype(
        np.uint8)
    x = torch.from_numpy(img).permute(2, 0, 1).float()[None] / 255
    maps = collect_bias_maps(model, x)
    assert list(maps) == [f'layer{s}.{b}.spatial_bias' for s in (1, 2, 3)
                          for b in (0, 1)]
    assert maps['layer1.0.spatial_bias'].shape == (1, 3, 10, 10)
    pic = draw_bias_maps(img, maps, cell=64)
    assert pic.dtype == np.uint8 and pic.shape[2] == 3
    assert pic.shape[:2] == (6 * 48, 150 + 4 * 64)  # 6 rows, 64x48 tiles
    # Each row: a 150 px label, the image, then one overlay per bias map.
    image_tile = pic[:48, 150:214]
    for r in range(6):
        tiles = np.split(pic[48 * r:48 * (r + 1), 150:], 4, axis=1)
        assert np.array_equal(tiles[0], image_tile)
        for k, tile in enumerate(tiles[1:]):
            assert not np.array_equal(tile, image_tile), (r, k)
    with pytest.raises(KeyError, match='layer9'):
        draw_bias_maps(img, maps, blocks=['layer9.0.spatial_bias'])


@pytest.mark.slow
def test_tool_writes_png_and_refuses_overwrite(tmp_path):
    cfg = tmp_path / 'cls.py'
    cfg.write_text(
        "custom_imports = dict(imports=['mmsb'], allow_failed_imports=False)\n"
        "default_scope = 'mmpretrain'\n"
        "model = dict(type='ImageClassifier', backbone=dict(type='SBResNet',"
        " depth=26, base_channels=16), neck=dict(type='GlobalAveragePooling'),"
        " head=dict(type='LinearClsHead', num_classes=2, in_channels=512),"
        " data_preprocessor=dict(mean=[123.7, 116.3, 103.5],"
        " std=[58.4, 57.1, 57.4]))\n")
    img = tmp_path / 'img.jpg'
    Image.fromarray((np.random.default_rng(1).random((80, 100, 3)) *
                     255).astype(np.uint8)).save(img)
    out = tmp_path / 'maps.png'
    cmd = [sys.executable, 'tools/analysis/visualize_bias.py', str(cfg),
           str(img), '--out', str(out), '--size', '128']
    # the script's path is relative to the repository, whatever pytest's cwd
    res = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True,
                         text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    assert 'wrote' in res.stdout and out.stat().st_size > 1000
    again = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True,
                           text=True)
    assert again.returncode != 0 and 'exists' in again.stderr
