"""mmsb.data.pathfinder: the Pathfinder generator is deterministic, balanced
and gives the same statistics to both classes."""
import hashlib
import os
import os.path as osp

import cv2
import numpy as np
import pytest
from utils import REPO

from mmsb.data.demo import generate_if_missing
from mmsb.data.pathfinder import render_pathfinder


def _digest(root):
    h = hashlib.sha256()
    for dirpath, _, files in sorted(os.walk(root)):
        for name in sorted(files):
            if name == 'demo_meta.json':
                continue
            path = osp.join(dirpath, name)
            h.update(osp.relpath(path, root).encode())
            with open(path, 'rb') as f:
                h.update(f.read())
    return h.hexdigest()


def test_pathfinder_data_is_deterministic_and_balanced(tmp_path):
    opts = dict(num_train=40, num_val=10, img_size=32, seed=5,
                num_distractors=1)
    a = generate_if_missing('pathfinder', str(tmp_path / 'a'), **opts)
    b = generate_if_missing('pathfinder', str(tmp_path / 'b'), **opts)
    assert _digest(a) == _digest(b)
    for split, n in (('train', 40), ('val', 10)):
        counts = {c: len(os.listdir(osp.join(a, split, c)))
                  for c in ('connected', 'disconnected')}
        assert counts == {'connected': n // 2, 'disconnected': n // 2}
    other = generate_if_missing('pathfinder', str(tmp_path / 'c'),
                                **dict(opts, seed=6))
    assert _digest(other) != _digest(a)
    with pytest.raises(KeyError, match='unknown option'):
        generate_if_missing('pathfinder', str(tmp_path / 'd'), bogus=1)


def _scenes(n=300, **opts):
    """``n`` scenes of the Pathfinder configs' difficulty, by class."""
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(
        REPO, 'configs', 'demo', 'resnet20-cifar_1xb32-2400it_pathfinder-32.py'))
    demo = dict(cfg.train_dataloader.dataset.demo_cfg)
    size = demo.pop('img_size')
    for key in ('num_train', 'num_val'):
        demo.pop(key)
    demo.update(opts)
    out = {True: [], False: []}
    for i in range(n):
        img, meta = render_pathfinder(np.random.default_rng([11, i]), size,
                                      connected=i % 2 == 0, return_meta=True,
                                      **demo)
        out[i % 2 == 0].append((img, meta))
    return out, demo, size


def test_class_conditional_statistics_agree():
    """Nothing but the joining decides the class: marker coordinates, marker
    distance, ink and the number of separate curves follow the same
    distribution in both classes (two-sample Kolmogorov-Smirnov, 150
    scenes per class), and markers are never drawn again more often in one
    class."""
    from scipy.stats import ks_2samp
    scenes, demo, size = _scenes()

    def stats(group):
        m = np.array([meta['markers'] for _, meta in group])  # (n, 2, 2)
        blobs = [cv2.connectedComponents((img > 0).astype(np.uint8),
                                         connectivity=4)[0] - 1
                 for img, _ in group]
        return dict(x=m[:, :, 0].ravel(), y=m[:, :, 1].ravel(),
                    dist=np.hypot(*(m[:, 0] - m[:, 1]).T) / size,
                    ink=np.array([meta['ink'] for _, meta in group]),
                    blobs=np.array(blobs),
                    redraws=np.array([meta['redraws'] for _, meta in group]))

    conn, disc = stats(scenes[True]), stats(scenes[False])
    for key in ('x', 'y', 'dist', 'ink'):
        p = ks_2samp(conn[key], disc[key]).pvalue
        assert p > 0.01, (key, p, conn[key].mean(), disc[key].mean())
    assert demo['min_dist'] <= conn['dist'].min()
    assert conn['dist'].max() < demo['max_dist'] + 1e-9
    # curves never touch: every scene shows 2 + num_distractors curves, the
    # markers on them (connected: one curve joins both markers)
    expected = 2 + demo['num_distractors']
    assert (conn['blobs'] == expected).mean() > 0.85
    assert abs((conn['blobs'] == expected).mean() -
               (disc['blobs'] == expected).mean()) < 0.08
    assert conn['redraws'].sum() + disc['redraws'].sum() <= 3


def test_markers_sit_on_the_ink():
    scenes, _, _ = _scenes(n=20)
    for group in scenes.values():
        for img, meta in group:
            for x, y in meta['markers']:
                assert img[int(round(y)), int(round(x))] > 200


def test_same_seed_same_image():
    imgs = [render_pathfinder(np.random.default_rng([3, 1, 7]), 48, True)
            for _ in range(2)]
    assert np.array_equal(*imgs)
