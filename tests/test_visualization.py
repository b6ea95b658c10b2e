"""mmsb.visualization: the bias maps of a model, drawn over the image. The
tool (tools/analysis/visualize_bias.py) is tested in
tests/test_tools/test_analysis/test_visualize_bias.py."""
import numpy as np
import pytest
import torch

from mmsb.models import SBResNet
from mmsb.visualization import collect_bias_maps, draw_bias_maps


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
