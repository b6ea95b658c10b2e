"""The evidence pipeline: the Pathfinder generator is deterministic and
balanced, and tools/analysis/evidence.py --quick runs every task through the
real tools and writes a report with both models."""
import hashlib
import os
import os.path as osp
import re
import subprocess
import sys

import numpy as np
import pytest

from mmsb.data.demo import generate_if_missing
from mmsb.data.pathfinder import PATHFINDER_DEFAULTS, render_pathfinder

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


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


def test_marker_distance_carries_no_label():
    """Both classes draw their marker distance from the same bins, all
    beyond ``min_dist`` of the side: distance alone cannot tell them."""
    size = 64
    dist = {True: [], False: []}
    for i in range(240):
        rng = np.random.default_rng([0, i])
        img, (p, q) = render_pathfinder(rng, size, connected=i % 2 == 0,
                                        return_markers=True)
        assert img.shape == (size, size) and img.dtype == np.uint8
        assert img[int(p[1]), int(p[0])] > 0 and img[int(q[1]), int(q[0])]
        dist[i % 2 == 0].append(np.hypot(*(np.asarray(p) - q)) / size)
    lo, hi = PATHFINDER_DEFAULTS['min_dist'], PATHFINDER_DEFAULTS['max_dist']
    for d in dist.values():
        assert lo <= min(d) and max(d) < hi
    bins = np.linspace(lo, hi, PATHFINDER_DEFAULTS['dist_bins'] + 1)
    h1 = np.histogram(dist[True], bins)[0] / len(dist[True])
    h0 = np.histogram(dist[False], bins)[0] / len(dist[False])
    assert np.abs(h1 - h0).max() < 0.12     # the same uniform bins
    assert abs(np.mean(dist[True]) - np.mean(dist[False])) < 0.03


def test_same_seed_same_image():
    imgs = [render_pathfinder(np.random.default_rng([3, 1, 7]), 48, True)
            for _ in range(2)]
    assert np.array_equal(*imgs)


@pytest.mark.slow
def test_quick_mode_writes_the_report(tmp_path):
    out = tmp_path / 'report' / 'evidence.md'
    cmd = [sys.executable, osp.join(REPO, 'tools', 'analysis',
                                    'evidence.py'), '--quick', '--out',
           str(out), '--work-dir', str(tmp_path / 'work')]
    env = dict(os.environ, PYTHONPATH=REPO, OMP_NUM_THREADS='1')
    res = subprocess.run(cmd, cwd=str(tmp_path), env=env,
                         capture_output=True, text=True, timeout=1500)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    text = out.read_text()
    assert 'Quick mode' in text
    for title in ('Pathfinder', 'Shapes (control', 'Demo detection',
                  'Demo segmentation'):
        assert re.search(rf'^\| {re.escape(title)}', text, re.M), title
    # every task section has its seed row with a plain and an SB value
    rows = re.findall(r'^\| 0 \| ([-\d.]+) \| ([-\d.]+) \|', text, re.M)
    assert len(rows) == 4, text
    figures = out.parent / 'evidence'
    for name in ('pathfinder', 'control', 'det', 'seg', 'cam_pathfinder'):
        assert (figures / f'{name}.png').stat().st_size > 5000, name
    assert (figures / 'results.json').is_file()
    # the paired runs started from the same weights for shared tensors
    assert re.search(r'\d+ SB tensors taken whole', text)

    again = subprocess.run(cmd, cwd=str(tmp_path), env=env,
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 2
    assert 'exists; pass --force' in again.stderr
    assert out.read_text() == text

    # an interrupted call picks up its finished runs with --resume
    other = tmp_path / 'again' / 'evidence.md'
    base = cmd[:2] + ['--quick', '--work-dir', str(tmp_path / 'work'),
                      '--out', str(other)]
    refused = subprocess.run(base, cwd=str(tmp_path), env=env,
                             capture_output=True, text=True, timeout=300)
    assert refused.returncode == 2 and 'earlier runs' in refused.stderr
    resumed = subprocess.run(base + ['--resume', '--no-cam'],
                             cwd=str(tmp_path), env=env, capture_output=True,
                             text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert resumed.stdout.count('reused (--resume)') == 8
    assert other.is_file()
