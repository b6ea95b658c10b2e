# Copyright (c) mmsb contributors. All rights reserved.
"""Embedded demo datasets: coloured shapes on cluttered backgrounds.

Five small datasets in the formats the downstream toolboxes read, generated
deterministically (fixed seeds, numpy + OpenCV) so that a fresh machine can
train and evaluate without downloading anything:

========  =====================================  ============================
task      layout under ``root``                  label
========  =====================================  ============================
``det``   ``coco/annotations/instances_{train,   box + class of every shape
          val}2017.json``, ``coco/{train,        (COCO json: bbox, area,
          val}2017/*.jpg``                       iscrowd=0, polygon)
``seg``   ``ade/images/{training,validation}/    per-pixel class, 0 =
          *.jpg``, ``ade/annotations/...*.png``  background
``cls``   ``cls/{train,val}/<class>/*.png``      class of the single shape
``pathf   ``pathfinder/{train,val}/<class>/      connected / disconnected
inder``   *.png``                                (:mod:`.pathfinder`)
``conte   ``context/images/{training,validation}  per-pixel: background or one
xt``      /*.png``, ``context/annotations/...``  of two object classes, by a
          ``*.png``, ``meta-{train,val}.json``   rule (:mod:`.context`)
========  =====================================  ============================

The class of a shape is its kind (circle, square, triangle), never its
colour: colours are random, so a model must look at the outline. Backgrounds
are smooth random colour fields with pixel noise and thin distractor lines.

Generation is atomic and idempotent: a dataset is written into a hidden
temporary folder next to its target and renamed into place in one step, so
concurrent ranks of a distributed run, or a run killed half way, never leave
or see a partial dataset; an existing dataset folder is always reused and
never overwritten.

    python -m mmsb.data.demo --root data/demo          # all five tasks
"""
import argparse
import json
import logging
import os
import os.path as osp
import shutil
import socket
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Dict, List, Optional, Tuple

import cv2
import numpy as np

from .context import CONTEXT_DEFAULTS, render_context
from .pathfinder import (PATHFINDER_CLASSES, PATHFINDER_DEFAULTS,
                         render_pathfinder)

__all__ = [
    'CLASSES', 'SEG_CLASSES', 'TASKS', 'DEFAULTS', 'ensure_demo_data',
    'generate_if_missing', 'render_scene'
]

CLASSES = ('circle', 'square', 'triangle')
SEG_CLASSES = ('background', ) + CLASSES
# (R, G, B) drawing colours of the classes for visualizers.
PALETTE = [(220, 20, 60), (0, 130, 230), (250, 170, 30)]
SEG_PALETTE = [(0, 0, 0)] + PALETTE

TASKS = ('det', 'seg', 'cls', 'pathfinder', 'context')
SUBDIRS = {'det': 'coco', 'seg': 'ade', 'cls': 'cls',
           'pathfinder': 'pathfinder', 'context': 'context'}
# Defaults used by ``make demo`` and the demo configs; tests pass tiny ones.
DEFAULTS: Dict[str, dict] = {
    'det': dict(num_train=1000, num_val=100, img_size=128, seed=0),
    'seg': dict(num_train=640, num_val=60, img_size=96, seed=1),
    'cls': dict(num_train=3000, num_val=300, img_size=32, seed=2),
    'pathfinder': dict(num_train=10000, num_val=2000, img_size=64, seed=3),
    'context': dict(num_train=2000, num_val=400, img_size=80, seed=4),
}
# Renderer options a task takes besides the sizes and the seed, with defaults.
RENDER_OPTIONS: Dict[str, dict] = {'pathfinder': PATHFINDER_DEFAULTS,
                                   'context': CONTEXT_DEFAULTS}
META_FILE = 'demo_meta.json'
_SPLIT_IDS = {'train': 0, 'val': 1}


# --------------------------------------------------------------- drawing
def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """Smooth random colour field + pixel noise + thin distractor lines."""
    grid = rng.uniform(40, 215, size=(4, 4, 3)).astype(np.float32)
    img = cv2.resize(grid, (size, size), interpolation=cv2.INTER_CUBIC)
    img += rng.normal(0, 10, size=img.shape).astype(np.float32)
    img = np.clip(img, 0, 255).astype(np.uint8)
    for _ in range(int(rng.integers(1, 4))):
        p1 = tuple(int(v) for v in rng.integers(0, size, 2))
        p2 = tuple(int(v) for v in rng.integers(0, size, 2))
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        cv2.line(img, p1, p2, colour, 1, cv2.LINE_AA)
    return img


def _polygon(rng: np.random.Generator, kind: str, cx: float, cy: float,
             radius: float) -> np.ndarray:
    """(K, 2) float vertices of a shape of circumradius ``radius``."""
    if kind == 'circle':
        angles = np.linspace(0, 2 * np.pi, 24, endpoint=False)
    else:
        n = 4 if kind == 'square' else 3
        angles = rng.uniform(0, 2 * np.pi) + np.arange(n) * 2 * np.pi / n
    return np.stack([cx + radius * np.cos(angles),
                     cy + radius * np.sin(angles)], 1)


def _contrasting_colour(rng: np.random.Generator, img: np.ndarray,
                        box: Tuple[int, int, int, int]) -> Tuple[int, ...]:
    """A random colour clearly different from the background under box."""
    x0, y0, x1, y1 = box
    mean = img[y0:y1, x0:x1].reshape(-1, 3).mean(0)
    for _ in range(20):
        colour = rng.integers(0, 256, 3)
        if np.abs(colour - mean).sum() > 180:
            break
    return tuple(int(v) for v in colour)


def render_scene(rng: np.random.Generator,
                 size: int,
                 num_shapes: Tuple[int, int] = (1, 4),
                 radius: Tuple[float, float] = (0.09, 0.22),
                 centred: bool = False):
    """Draw one image of non-overlapping shapes.

    Args:
        rng: The generator that decides everything about this image.
        size: Side of the square image in pixels.
        num_shapes: Inclusive range of the number of shapes.
        radius: Range of circumradii as fractions of ``size``.
        centred: One shape near the centre (classification images).

    Returns:
        tuple: ``(img, shapes)``; ``img`` is an (H, W, 3) uint8 BGR array,
        ``shapes`` a list of ``(class_index, polygon)`` with (K, 2) float
        vertex arrays in pixel coordinates.
    """
    img = _background(rng, size)
    shapes: List[Tuple[int, np.ndarray]] = []
    boxes: List[np.ndarray] = []
    wanted = 1 if centred else int(rng.integers(num_shapes[0],
                                                num_shapes[1] + 1))
    for _ in range(wanted * 20):  # rejection sampling against overlaps
        if len(shapes) == wanted:
            break
        label = int(rng.integers(len(CLASSES)))
        r = rng.uniform(*radius) * size
        if centred:
            cx, cy = size / 2 + rng.uniform(-0.12, 0.12, 2) * size
        else:
            cx, cy = rng.uniform(r, size - r, 2)
        poly = _polygon(rng, CLASSES[label], cx, cy, r)
        box = np.concatenate([poly.min(0), poly.max(0)])
        if any(_overlap(box, other, margin=2) for other in boxes):
            continue
        ibox = tuple(int(v) for v in np.clip(
            [box[0], box[1], box[2] + 1, box[3] + 1], 0, size))
        colour = _contrasting_colour(rng, img, ibox)
        cv2.fillPoly(img, [np.round(poly * 16).astype(np.int32)], colour,
                     cv2.LINE_AA, shift=4)
        shapes.append((label, poly))
        boxes.append(box)
    return img, shapes


def _overlap(a: np.ndarray, b: np.ndarray, margin: float) -> bool:
    return not (a[2] + margin < b[0] or b[2] + margin < a[0]
                or a[3] + margin < b[1] or b[3] + margin < a[1])


def _clip_polygon(poly: np.ndarray, size: int) -> np.ndarray:
    return np.clip(poly, 0, size - 1e-3)


def _rng(seed: int, split: str, index: int) -> np.random.Generator:
    # One stream per image: an image does not depend on how many came first.
    return np.random.default_rng([seed, _SPLIT_IDS[split], index])


# ----------------------------------------------------------- the datasets
def _write_det(out: str, num_train: int, num_val: int, img_size: int,
               seed: int):
    os.makedirs(osp.join(out, 'annotations'))
    categories = [dict(id=i + 1, name=n, supercategory='shape')
                  for i, n in enumerate(CLASSES)]
    for split, num in (('train', num_train), ('val', num_val)):
        img_dir = osp.join(out, f'{split}2017')
        os.makedirs(img_dir)
        images, annotations = [], []
        for i in range(num):
            img, shapes = render_scene(_rng(seed, split, i), img_size)
            name = f'{i:06d}.jpg'
            cv2.imwrite(osp.join(img_dir, name), img,
                        [cv2.IMWRITE_JPEG_QUALITY, 95])
            images.append(dict(id=i + 1, file_name=name, width=img_size,
                               height=img_size))
            for label, poly in shapes:
                poly = _clip_polygon(poly, img_size)
                x0, y0 = poly.min(0)
                x1, y1 = poly.max(0)
                area = float(cv2.contourArea(poly.astype(np.float32)))
                annotations.append(
                    dict(id=len(annotations) + 1, image_id=i + 1,
                         category_id=label + 1,
                         bbox=[round(float(v), 2)
                               for v in (x0, y0, x1 - x0, y1 - y0)],
                         area=round(area, 2), iscrowd=0,
                         segmentation=[[round(float(v), 2)
                                        for v in poly.reshape(-1)]]))
        with open(osp.join(out, 'annotations',
                           f'instances_{split}2017.json'), 'w') as f:
            json.dump(dict(images=images, annotations=annotations,
                           categories=categories), f)


def _ade_splits(out: str, num_train: int, num_val: int):
    """(split, number of images, image folder, label folder) of the ADE20K
    layout's two splits, the folders made."""
    for split, sub, num in (('train', 'training', num_train),
                            ('val', 'validation', num_val)):
        img_dir = osp.join(out, 'images', sub)
        ann_dir = osp.join(out, 'annotations', sub)
        os.makedirs(img_dir)
        os.makedirs(ann_dir)
        yield split, num, img_dir, ann_dir


def _write_seg(out: str, num_train: int, num_val: int, img_size: int,
               seed: int):
    for split, num, img_dir, ann_dir in _ade_splits(out, num_train, num_val):
        for i in range(num):
            img, shapes = render_scene(_rng(seed, split, i), img_size)
            label_map = np.zeros((img_size, img_size), np.uint8)
            for label, poly in shapes:
                cv2.fillPoly(label_map,
                             [np.round(poly * 16).astype(np.int32)],
                             label + 1, cv2.LINE_8, shift=4)
            name = f'demo_{split}_{i:06d}'
            cv2.imwrite(osp.join(img_dir, name + '.jpg'), img,
                        [cv2.IMWRITE_JPEG_QUALITY, 95])
            cv2.imwrite(osp.join(ann_dir, name + '.png'), label_map)


def _write_cls(out: str, num_train: int, num_val: int, img_size: int,
               seed: int):
    for split, num in (('train', num_train), ('val', num_val)):
        for name in CLASSES:
            os.makedirs(osp.join(out, split, name))
        for i in range(num):
            img, shapes = render_scene(
                _rng(seed, split, i), img_size, radius=(0.22, 0.36),
                centred=True)
            label = shapes[0][0]
            cv2.imwrite(
                osp.join(out, split, CLASSES[label], f'{i:06d}.png'), img)


def _pathfinder_image(args):
    seed, split, i, img_size, options = args
    return render_pathfinder(_rng(seed, split, i), img_size,
                             connected=i % 2 == 0, return_meta=True,
                             **options)


def _write_pathfinder(out: str, num_train: int, num_val: int, img_size: int,
                      seed: int, **options):
    """Images in CustomDataset layout (even index: connected, so exactly
    balanced), and ``meta-<split>.json`` beside the split folders: per image
    its file, label, marker centres and ink, which the shortcut probes read.
    Large sets are drawn on all cores (each image has its own generator)."""
    workers = min(os.cpu_count() or 1, 8)
    pool = ProcessPoolExecutor(workers) if workers > 1 and \
        num_train + num_val >= 500 else None
    try:
        for split, num in (('train', num_train), ('val', num_val)):
            for name in PATHFINDER_CLASSES:
                os.makedirs(osp.join(out, split, name))
            jobs = [(seed, split, i, img_size, options) for i in range(num)]
            scenes = pool.map(_pathfinder_image, jobs, chunksize=64) \
                if pool else map(_pathfinder_image, jobs)
            meta = []
            for i, (img, info) in enumerate(scenes):
                label = i % 2
                name = osp.join(split, PATHFINDER_CLASSES[label],
                                f'{i:06d}.png')
                cv2.imwrite(osp.join(out, name), img)
                meta.append(dict(file=name, label=label,
                                 markers=info['markers'], ink=info['ink']))
            with open(osp.join(out, f'meta-{split}.json'), 'w') as f:
                json.dump(meta, f)
    finally:
        if pool:
            pool.shutdown()


def _write_context(out: str, num_train: int, num_val: int, img_size: int,
                   seed: int, **options):
    """mmseg layout (:mod:`.context`): ``images/`` and ``annotations/``
    with ``training``/``validation`` folders of PNGs, and
    ``meta-<split>.json`` beside them (per image: file, keys, objects). The
    layout of image ``i`` comes from its own stream, its colours from a
    second one, so every rule draws the same layouts."""
    for split, num, img_dir, ann_dir in _ade_splits(out, num_train, num_val):
        meta = []
        for i in range(num):
            ids = [seed, _SPLIT_IDS[split], i]
            img, label_map, info = render_context(
                np.random.default_rng(ids + [0]), img_size,
                colour_rng=np.random.default_rng(ids + [1]), **options)
            name = f'context_{split}_{i:06d}'
            cv2.imwrite(osp.join(img_dir, name + '.png'), img)
            cv2.imwrite(osp.join(ann_dir, name + '.png'), label_map)
            meta.append(dict(file=name, **info))
        with open(osp.join(out, f'meta-{split}.json'), 'w') as f:
            json.dump(meta, f)


_WRITERS = {'det': _write_det, 'seg': _write_seg, 'cls': _write_cls,
            'pathfinder': _write_pathfinder, 'context': _write_context}


# ------------------------------------------------- atomic, idempotent use
def _tmp_prefix(target: str) -> str:
    return f'.{osp.basename(target)}.part-{socket.gethostname()}-'


def _remove_stale_parts(target: str):
    """Delete temporary folders of generators on this host that died."""
    parent = osp.dirname(target)
    prefix = _tmp_prefix(target)
    for name in os.listdir(parent):
        if not name.startswith(prefix):
            continue
        try:
            pid = int(name[len(prefix):].split('-', 1)[0])
            os.kill(pid, 0)
        except ProcessLookupError:  # its writer is gone: a killed run
            shutil.rmtree(osp.join(parent, name), ignore_errors=True)
        except (ValueError, PermissionError):
            pass


def generate_if_missing(task: str,
                        out_dir: str,
                        num_train: Optional[int] = None,
                        num_val: Optional[int] = None,
                        img_size: Optional[int] = None,
                        seed: Optional[int] = None,
                        logger=None,
                        **options) -> str:
    """Generate the ``task`` demo dataset in ``out_dir`` unless it exists.

    ``options`` go to the task's renderer (``pathfinder``: the arguments of
    :func:`render_pathfinder`; ``context``: those of
    :func:`~mmsb.data.context.render_context`) and are recorded with the
    data.

    An existing ``out_dir`` is reused as it is (a warning says so when it was
    generated with other settings). Otherwise the data is written into a
    temporary sibling folder and renamed to ``out_dir`` in one step; if
    another process renamed its copy first, ours is discarded.

    Returns:
        str: ``out_dir``.
    """
    if task not in TASKS:
        raise KeyError(f'unknown demo task {task!r}; expected one of {TASKS}')
    allowed = RENDER_OPTIONS.get(task, {})
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise KeyError(f'demo {task} data: unknown option(s) {unknown}; '
                       f'allowed: {sorted(allowed)}')
    settings = dict(DEFAULTS[task], **allowed)
    given = dict(num_train=num_train, num_val=num_val, img_size=img_size,
                 seed=seed, **options)
    settings.update({k: v for k, v in given.items() if v is not None})
    for key in ('num_train', 'num_val', 'img_size'):
        if not isinstance(settings[key], int) or settings[key] < 1:
            raise ValueError(f'demo {task} data: {key} must be a positive '
                             f'int, got {settings[key]!r}')
    out_dir = osp.normpath(out_dir)
    if osp.isdir(out_dir):
        _warn_if_different(task, out_dir, settings, given, logger)
        return out_dir

    parent = osp.dirname(osp.abspath(out_dir))
    os.makedirs(parent, exist_ok=True)
    _remove_stale_parts(osp.abspath(out_dir))
    _log(f'mmsb: generating the demo {task} dataset in {out_dir} '
         f'({settings["num_train"]} train + {settings["num_val"]} val '
         f'images, {settings["img_size"]}x{settings["img_size"]})', logger)
    start = time.time()
    tmp = tempfile.mkdtemp(
        prefix=f'{_tmp_prefix(out_dir)}{os.getpid()}-', dir=parent)
    try:
        _WRITERS[task](tmp, **settings)
        with open(osp.join(tmp, META_FILE), 'w') as f:
            json.dump(dict(task=task, **settings), f, indent=1)
        os.chmod(tmp, 0o755)  # mkdtemp makes it private
        try:
            os.rename(tmp, out_dir)
        except OSError:
            if not osp.isdir(out_dir):
                raise
            # another rank finished first: use its identical copy
    finally:
        if osp.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
    _log(f'mmsb: demo {task} dataset ready in {time.time() - start:.1f}s',
         logger)
    return out_dir


def ensure_demo_data(task: str, root: str = 'data/demo', **kwargs) -> str:
    """Path of the ``task`` demo dataset under ``root``, generated on first
    use (``root/coco``, ``root/ade``, ``root/cls``, ``root/pathfinder`` or
    ``root/context``).

    Args:
        task (str): One of :data:`TASKS`: 'det', 'seg', 'cls', 'pathfinder'
            or 'context'.
        root (str): Folder that holds the demo datasets.
        **kwargs: ``num_train``, ``num_val``, ``img_size``, ``seed``; unset
            ones take :data:`DEFAULTS`. For 'pathfinder' and 'context' also
            the options of their renderers (see :func:`generate_if_missing`).
    """
    if task not in TASKS:
        raise KeyError(f'unknown demo task {task!r}; expected one of {TASKS}')
    return generate_if_missing(task, osp.join(root, SUBDIRS[task]), **kwargs)


def _warn_if_different(task, out_dir, settings, given, logger):
    meta_path = osp.join(out_dir, META_FILE)
    if not osp.isfile(meta_path):
        return  # not generated by us: the user's own data, used as it is
    with open(meta_path) as f:
        meta = json.load(f)
    asked = {k: settings[k] for k, v in given.items() if v is not None}
    differ = {k: (meta.get(k), v) for k, v in asked.items()
              if meta.get(k) != json.loads(json.dumps(v))}
    if differ:
        text = ', '.join(f'{k}={old} (asked {new})'
                         for k, (old, new) in differ.items())
        _log(f'mmsb: reusing the demo {task} dataset in {out_dir}, generated '
             f'with {text}; delete the folder to regenerate it', logger,
             warn=True)


def _log(msg: str, logger=None, warn: bool = False):
    """To ``logger``, else to mmengine's current logger (the Runner's)."""
    level = logging.WARNING if warn else logging.INFO
    if logger is not None:
        logger.log(level, msg)
        return
    from mmengine.logging import print_log
    print_log(msg, logger='current', level=level)


def main(argv=None):
    parser = argparse.ArgumentParser(
        description='Generate the mmsb demo datasets (reused if present).')
    parser.add_argument('--root', default='data/demo',
                        help='folder for coco/, ade/, cls/, pathfinder/ and '
                        'context/')
    parser.add_argument('--tasks', nargs='+', choices=TASKS,
                        default=list(TASKS))
    args = parser.parse_args(argv)
    for task in args.tasks:
        path = ensure_demo_data(task, args.root)
        print(f'{task}: {path}')


if __name__ == '__main__':
    main()
