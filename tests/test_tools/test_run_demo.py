"""Pieces of tools/run_demo.py (``make demo``) that do not need a training
run: chance levels, the run folder, the stage headers, the console filter,
the tools' environment, the picture tiling."""
import glob
import os
import os.path as osp
import sys

import cv2
import numpy as np
import pytest
from utils import REPO, load_tool

from mmsb.data.demo import ensure_demo_data


@pytest.fixture(scope='module')
def demo():
    return load_tool('run_demo')


def test_chance_of_random_boxes_is_near_zero(demo, tmp_path):
    root = ensure_demo_data('det', str(tmp_path), num_train=1, num_val=30)
    ann = osp.join(root, 'annotations', 'instances_val2017.json')
    ap, ap50 = demo.det_chance_map(ann)
    assert 0 <= ap < 0.02 and 0 <= ap50 < 0.05
    assert demo.det_chance_map(ann) == (ap, ap50)  # seeded


def test_chance_miou_is_background_share_over_classes(demo, tmp_path):
    root = ensure_demo_data('seg', str(tmp_path), num_train=1, num_val=5,
                            img_size=48)
    ann_dir = osp.join(root, 'annotations', 'validation')
    labels = np.stack([cv2.imread(p, 0) for p in
                       glob.glob(osp.join(ann_dir, '*.png'))])
    share = (labels == 0).mean()
    miou, bg = demo.seg_chance_miou(ann_dir, num_classes=4)
    assert bg == pytest.approx(share) and miou == pytest.approx(share / 4)


def test_run_dirs_are_never_shared(demo, tmp_path):
    first = demo.unique_run_dir(str(tmp_path))
    second = demo.unique_run_dir(str(tmp_path))
    assert first != second and osp.isdir(first) and osp.isdir(second)


def test_stage_headers_count_the_stages(demo, capsys):
    header = demo.stage_headers(5)
    header('train det')
    header('test det')
    shown = capsys.readouterr().out  # not a terminal: no colour codes
    assert shown == ('\n[demo 1/5] train det   (at 0s)\n'
                     '\n[demo 2/5] test det   (at 0s)\n')


def test_tools_get_the_threads_and_this_repo(demo, monkeypatch):
    monkeypatch.setenv('PYTHONPATH', '/elsewhere')
    monkeypatch.delenv('OMP_WAIT_POLICY', raising=False)
    env, threads = demo.child_env(3)
    assert threads == 3 and env['OMP_NUM_THREADS'] == '3'
    assert env['PYTHONPATH'].split(os.pathsep) == [REPO, '/elsewhere']
    assert env['OMP_WAIT_POLICY'] == 'PASSIVE'
    env, threads = demo.child_env(0)  # the idle cores, at least one
    assert 1 <= threads <= (os.cpu_count() or 1)


def test_console_shows_progress_hides_dumps(demo, tmp_path, capsys):
    lines = [
        '11/21 12:00:00 - mmengine - INFO - ',
        '------------------------------------------------------------',
        'System environment:',
        '11/21 12:00:01 - mmengine - INFO - Config:',
        "model = dict(type='FasterRCNN')",
        '11/21 12:00:02 - mmengine - INFO - Iter(train) [ 20/300]  loss: 1.0',
        '11/21 12:00:03 - mmengine - INFO - per class results:',
        '11/21 12:00:03 - mmengine - INFO - ',
        '+------------+-------+',
        '| background | 97.61 |',
        '11/21 12:00:04 - mmengine - INFO - Iter(test) [8/8]  mIoU: 56.4',
    ]
    script = tmp_path / 'talk.py'
    script.write_text(f'print({chr(10).join(lines)!r})\n')
    log = tmp_path / 'talk.out'
    demo.run_tool([sys.executable, str(script)], str(log), env=None)
    shown = capsys.readouterr().out
    for hidden in ('System environment', 'Config:', 'FasterRCNN'):
        assert hidden not in shown
    for kept in ('Iter(train) [ 20/300]', 'per class results',
                 '| background | 97.61 |', 'mIoU: 56.4'):
        assert kept in shown
    assert log.read_text().splitlines() == lines  # the file keeps it all


def test_console_failure_names_the_log(demo, tmp_path):
    with pytest.raises(SystemExit, match='failed with exit code 3'):
        demo.run_tool([sys.executable, '-c', 'import sys; sys.exit(3)'],
                      str(tmp_path / 'x.out'), env=None)


def test_tile_and_summary(demo, tmp_path):
    for i in range(3):
        cv2.imwrite(str(tmp_path / f'{i}.jpg'),
                    np.full((20, 40, 3), 60 * i, np.uint8))
    out = demo.tile_pictures(str(tmp_path), str(tmp_path / 'tile.png'),
                             count=3, cols=2, scale=2)
    assert cv2.imread(out).shape == (80, 160, 3)
    table = demo.summary_table(
        [('detection', 'bbox mAP', 0.5, 0.0003, 'random boxes', 190.0)],
        330.0)
    assert 'detection  bbox mAP  0.500   0.000   random boxes  190s' in \
        table
    assert table.endswith('total wall time: 330s (5.5 min)')


def test_latest_links_the_newest_run_and_spares_a_real_folder(demo,
                                                              tmp_path):
    first = demo.unique_run_dir(str(tmp_path))
    second = demo.unique_run_dir(str(tmp_path))
    link = demo.link_latest(str(tmp_path), first)
    assert osp.realpath(link) == osp.realpath(first)
    assert os.readlink(link) == osp.basename(first)  # relative
    demo.link_latest(str(tmp_path), second)
    assert osp.realpath(link) == osp.realpath(second)
    other = tmp_path / 'elsewhere'
    (other / 'latest').mkdir(parents=True)
    (other / 'latest' / 'mine.txt').write_text('keep')
    assert demo.link_latest(str(other), str(other / 'run')) is None
    assert (other / 'latest' / 'mine.txt').read_text() == 'keep'


def test_inference_doc_names_the_checkpoints_make_demo_writes(demo):
    """docs/inference.md's det and seg weights are the last checkpoints
    `make demo` saves, under work_dirs/demo/latest/<task>/."""
    import re

    from mmengine.config import Config
    with open(osp.join(REPO, 'docs', 'inference.md')) as f:
        text = f.read()
    for task, config in (('det', demo.DET_CONFIG), ('seg', demo.SEG_CONFIG)):
        cfg = Config.fromfile(osp.join(REPO, config))
        last = cfg.train_cfg.max_iters
        assert last % cfg.default_hooks.checkpoint.interval == 0
        path = f'work_dirs/demo/latest/{task}/iter_{last}.pth'
        assert re.search(rf"model='{re.escape(config)}',\n\s+weights="
                         rf"'{re.escape(path)}'", text), (task, path)
    assert demo.parse_args([]).work_dir == 'work_dirs/demo'
