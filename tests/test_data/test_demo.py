"""mmsb.data.demo, the demo data generators: formats, determinism, atomic
and idempotent generation, the command line."""
import hashlib
import json
import multiprocessing as mp
import os
import os.path as osp
import signal
import socket
import time

import cv2
import numpy as np
import pytest
from utils import TINY

from mmsb.data import demo
from mmsb.data.demo import CLASSES, ensure_demo_data, generate_if_missing


def digest(folder):
    """sha1 of every file under folder, by relative path."""
    out = {}
    for dirpath, _, files in os.walk(folder):
        for name in files:
            path = osp.join(dirpath, name)
            with open(path, 'rb') as f:
                out[osp.relpath(path, folder)] = hashlib.sha1(
                    f.read()).hexdigest()
    return out


@pytest.mark.parametrize('task', ['det', 'seg', 'cls'])
def test_deterministic(tmp_path, task):
    a = ensure_demo_data(task, str(tmp_path / 'a'), **TINY[task])
    b = ensure_demo_data(task, str(tmp_path / 'b'), **TINY[task])
    assert digest(a) == digest(b)
    assert len(digest(a)) > TINY[task]['num_train']


def test_coco_format(tmp_path):
    from pycocotools.coco import COCO
    root = ensure_demo_data('det', str(tmp_path), num_train=10, num_val=5,
                            img_size=96)
    assert root == osp.join(str(tmp_path), 'coco')
    for split, num in (('train', 10), ('val', 5)):
        coco = COCO(osp.join(root, 'annotations',
                             f'instances_{split}2017.json'))
        assert [c['name'] for c in coco.loadCats(coco.getCatIds())] == \
            list(CLASSES)
        assert len(coco.getImgIds()) == num
        for img in coco.dataset['images']:
            pixels = cv2.imread(osp.join(root, f'{split}2017',
                                         img['file_name']))
            assert pixels.shape == (96, 96, 3)
            anns = coco.loadAnns(coco.getAnnIds(imgIds=img['id']))
            assert 1 <= len(anns) <= 4
            for ann in anns:
                x, y, w, h = ann['bbox']
                assert 0 <= x and 0 <= y and x + w <= 96 and y + h <= 96
                assert w > 4 and h > 4 and 0 < ann['area'] <= w * h + 1e-6
                assert ann['iscrowd'] == 0
                assert coco.annToMask(ann).sum() > 0  # polygons decode


def test_seg_layout_and_labels(tmp_path):
    root = ensure_demo_data('seg', str(tmp_path), num_train=6, num_val=3,
                            img_size=64)
    for sub, num in (('training', 6), ('validation', 3)):
        imgs = sorted(os.listdir(osp.join(root, 'images', sub)))
        anns = sorted(os.listdir(osp.join(root, 'annotations', sub)))
        assert len(imgs) == num
        assert [i[:-4] for i in imgs] == [a[:-4] for a in anns]
        assert all(i.endswith('.jpg') for i in imgs)
        for name in anns:
            label = cv2.imread(osp.join(root, 'annotations', sub, name),
                               cv2.IMREAD_UNCHANGED)
            assert label.shape == (64, 64) and label.dtype == np.uint8
            values = set(np.unique(label).tolist())
            assert 0 in values and values <= {0, 1, 2, 3} and len(values) > 1


def test_cls_layout(tmp_path):
    root = ensure_demo_data('cls', str(tmp_path), num_train=30, num_val=9)
    for split, num in (('train', 30), ('val', 9)):
        assert sorted(os.listdir(osp.join(root, split))) == list(CLASSES)
        files = [f for c in CLASSES
                 for f in os.listdir(osp.join(root, split, c))]
        assert len(files) == num and all(f.endswith('.png') for f in files)


def test_class_depends_on_content_not_colour(tmp_path):
    """Colours are random per shape: the mean colour of a class says
    nothing about it, so a model has to look at the outline."""
    root = ensure_demo_data('cls', str(tmp_path), num_train=150, num_val=3)
    means = []
    for name in CLASSES:
        folder = osp.join(root, 'train', name)
        pix = [cv2.imread(osp.join(folder, f))[12:20, 12:20].mean((0, 1))
               for f in os.listdir(folder)]
        means.append(np.mean(pix, 0))
    spread = np.ptp(np.array(means), axis=0)
    assert spread.max() < 40  # class means of the centre colour are close


def test_idempotent_reuse_never_overwrites(tmp_path):
    root = ensure_demo_data('cls', str(tmp_path), num_train=6, num_val=3)
    marker = osp.join(root, 'train', 'mine.txt')
    with open(marker, 'w') as f:
        f.write('user file')
    before = digest(root)
    again = ensure_demo_data('cls', str(tmp_path), num_train=6, num_val=3)
    assert again == root and digest(root) == before
    # other settings: still reused as it is (and a warning says so)
    ensure_demo_data('cls', str(tmp_path), num_train=50, num_val=3)
    assert digest(root) == before


def test_reuse_with_other_settings_warns(tmp_path):
    from mmengine.logging import MMLogger
    logger = MMLogger.get_instance('demo_test_warn')
    records = []

    class Grab:
        level = 0

        def handle(self, record):
            records.append(record.getMessage())

    logger.addHandler(Grab())
    generate_if_missing('cls', str(tmp_path / 'c'), num_train=6, num_val=3,
                        logger=logger)
    generate_if_missing('cls', str(tmp_path / 'c'), num_train=9, num_val=3,
                        logger=logger)
    assert any('num_train=6 (asked 9)' in r for r in records), records


def test_bad_settings(tmp_path):
    with pytest.raises(KeyError, match='unknown demo task'):
        ensure_demo_data('depth', str(tmp_path))
    with pytest.raises(ValueError, match='num_train must be a positive int'):
        ensure_demo_data('cls', str(tmp_path), num_train=0)
    assert not os.listdir(str(tmp_path))


def _generate_forever(root):
    generate_if_missing('det', root, num_train=5000, num_val=10)


def test_killed_generation_leaves_nothing_half_written(tmp_path):
    target = str(tmp_path / 'coco')
    ctx = mp.get_context('fork')
    proc = ctx.Process(target=_generate_forever, args=(target, ))
    proc.start()
    parts = []
    for _ in range(200):  # wait until its temporary folder has files
        parts = [p for p in os.listdir(str(tmp_path)) if '.part-' in p]
        if parts and osp.isdir(osp.join(str(tmp_path), parts[0],
                                        'train2017')):
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.join()
    assert parts, 'the generator never started writing'
    assert not osp.exists(target)  # no half dataset under the real name
    # the next use cleans the dead writer's folder and generates it all
    generate_if_missing('det', target, num_train=3, num_val=2, img_size=48)
    assert sorted(os.listdir(str(tmp_path))) == ['coco']
    with open(osp.join(target, 'demo_meta.json')) as f:
        assert json.load(f)['num_train'] == 3


def _generate_small(root, queue):
    generate_if_missing('seg', root, num_train=40, num_val=8, img_size=64)
    queue.put(digest(root))


def test_concurrent_generation(tmp_path):
    """Two ranks generating at once both end with the same full dataset."""
    target = str(tmp_path / 'ade')
    ctx = mp.get_context('fork')
    queue = ctx.Queue()
    procs = [ctx.Process(target=_generate_small, args=(target, queue))
             for _ in range(2)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=120) for _ in procs]
    for p in procs:
        p.join()
        assert p.exitcode == 0
    assert results[0] == results[1]
    assert len(results[0]) == 2 * (40 + 8) + 1
    assert os.listdir(str(tmp_path)) == ['ade']


def test_stale_parts_of_live_writers_are_kept(tmp_path):
    """Only temporary folders of dead processes on this host are removed."""
    live = tmp_path / f'.cls.part-{socket.gethostname()}-{os.getpid()}-x'
    live.mkdir()
    other_host = tmp_path / '.cls.part-elsewhere-1-y'
    other_host.mkdir()
    ensure_demo_data('cls', str(tmp_path), num_train=3, num_val=3)
    assert live.is_dir() and other_host.is_dir()


def test_cli(tmp_path, capsys):
    demo.main(['--root', str(tmp_path), '--tasks', 'cls'])
    assert capsys.readouterr().out.strip() == \
        f'cls: {osp.join(str(tmp_path), "cls")}'
    assert osp.isfile(osp.join(str(tmp_path), 'cls', 'demo_meta.json'))
