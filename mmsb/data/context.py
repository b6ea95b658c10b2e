# Copyright (c) mmsb contributors. All rights reserved.
"""Context at a distance: generated segmentation tasks whose answer lies
outside a network's receptive field.

Each image shows a few discs (the objects, to be segmented into two classes)
and two small squares (the keys) on a grey background. Three rules decide
an object's class; they share everything else:

==========  ==============================================================
rule        the class of an object is ...
==========  ==============================================================
``local``   its own colour (yellow: ``a``, cyan: ``b``); the keys are red or
            blue at random and say nothing. The control: local evidence
            suffices.
``global``  the colour of the keys (both red: ``a``, both blue: ``b``); the
            discs all look alike. Needs information from far away, not where
            it is.
``spatial`` the colour of the key *nearer* to it (one key is red, one blue);
            the discs all look alike, and two discs of one image can differ.
            Needs far information *and* where it is: a context vector added
            equally at every position gives two identical discs the same
            answer.
==========  ==============================================================

What the class cannot be read from, by construction
---------------------------------------------------
Every scene is drawn in two steps, the class entering only in the second:

1. the layout, from its own random stream: the two key positions (uniform in
   the image less ``key_border`` pixels at each side, at least
   ``min_key_dist`` apart), the number of discs, and each disc's radius and
   position (uniform, never touching another disc or a key, and one key at
   least ``min_ratio`` times nearer than the other, so "the nearer key" is
   never a close call). Every rule draws the same layout for the same
   (seed, split, index), and nothing in it depends on a class;
2. the colours, from a second stream: fair coins give the classes (local:
   one per disc; global: one per image; spatial: which of the two keys is
   red). A disc's colour in the global and spatial rules is a grey drawn
   alike for both classes.

So the positions, sizes and count of the discs and the positions of the keys
follow one distribution in every class: what the class depends on is a
colour that, beyond the receptive field, only context can bring. How far an
object is from the keys is recorded per object: ``gap``, the L-infinity
distance in pixels from its nearest pixel to the nearest pixel of either
key. A unit of a network whose receptive field is R pixels sees a pixel at
L-infinity distance (R - 1) / 2 or less, so an object with
``gap > (R - 1) / 2`` has no key pixel in the field of any of its pixels.

The data set (``generate_if_missing('context', ...)``) is in mmseg's
ADE20K-like layout: ``images/{training,validation}/*.png``,
``annotations/{training,validation}/*.png`` (0 background, 1 ``a``,
2 ``b``; keys are background), and ``meta-{train,val}.json`` beside them:
per image its file, its keys (centre, colour) and its objects (pixel box,
label, ``gap``, centre distance to each key), read by
:class:`mmsb.evaluation.ContextObjectAccuracy` and the shortcut probes.

Deterministic: image ``i`` of a split depends only on (seed, split, i, rule).
"""
from typing import Sequence

import cv2
import numpy as np

__all__ = ['CONTEXT_CLASSES', 'CONTEXT_DEFAULTS', 'CONTEXT_RULES',
           'render_context']

CONTEXT_RULES = ('local', 'global', 'spatial')
CONTEXT_CLASSES = ('background', 'a', 'b')
CONTEXT_PALETTE = [(0, 0, 0), (230, 200, 30), (30, 200, 230)]  # RGB
# Renderer defaults; the configs in configs/evidence set their own.
CONTEXT_DEFAULTS = dict(
    rule='spatial',
    num_objects=(4, 8),     # inclusive range of discs per image
    radius=(3.5, 5.5),      # disc radius range, pixels
    key_size=5,             # side of a key square, pixels
    key_border=16,          # keys stay this far from every image side
    min_key_dist=24,        # pixels between the two key centres, at least
    min_ratio=1.25,         # far key / near key centre distance, at least
)
# BGR colours: keys by class, local discs by class
KEY_COLOURS = {1: (40, 40, 225), 2: (225, 80, 30)}
LOCAL_COLOURS = {1: (40, 205, 235), 2: (235, 205, 40)}
_MAX_TRIES = 60  # draws per disc before giving up on fitting it


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A smooth grey field with pixel noise: no hue anywhere."""
    grid = rng.uniform(70, 150, size=(4, 4)).astype(np.float32)
    img = cv2.resize(grid, (size, size), interpolation=cv2.INTER_CUBIC)
    img += rng.normal(0, 6, size=img.shape).astype(np.float32)
    img = np.clip(img, 0, 255).astype(np.uint8)
    return np.repeat(img[:, :, None], 3, axis=2)


def _box_gap(box: Sequence[int], pts: np.ndarray) -> int:
    """L-infinity distance from the pixels ``pts`` (N, 2) to the inclusive
    pixel box ``(x0, y0, x1, y1)``."""
    x0, y0, x1, y1 = box
    dx = np.maximum(np.maximum(x0 - pts[:, 0], pts[:, 0] - x1), 0)
    dy = np.maximum(np.maximum(y0 - pts[:, 1], pts[:, 1] - y1), 0)
    return int(np.maximum(dx, dy).min())


def _disc_pixels(size: int, cx: float, cy: float, r: float) -> np.ndarray:
    """(N, 2) x, y of the pixels the label map gives a disc."""
    mask = np.zeros((size, size), np.uint8)
    cv2.circle(mask, (int(round(cx * 16)), int(round(cy * 16))),
               int(round(r * 16)), 1, -1, cv2.LINE_8, shift=4)
    ys, xs = np.nonzero(mask)
    return np.stack([xs, ys], 1)


def _layout(rng: np.random.Generator, size: int, num_objects, radius,
            key_size, key_border, min_key_dist, min_ratio):
    """Keys and discs of one scene (step 1; no class anywhere)."""
    lo, hi = key_border, size - key_border
    if hi - lo < 1:
        raise ValueError(f'context data: key_border={key_border} leaves no '
                         f'room for keys in a {size}x{size} image')
    for _ in range(1000):
        centres = rng.uniform(lo, hi, size=(2, 2))
        if np.hypot(*(centres[0] - centres[1])) >= min_key_dist:
            break
    else:
        raise ValueError(f'context data: keys {min_key_dist} px apart do '
                         f'not fit in [{lo}, {hi}] of a {size}x{size} image')
    keys = []
    for c in centres:
        x0, y0 = (int(round(v - key_size / 2)) for v in c)
        keys.append(dict(centre=[float(c[0]), float(c[1])],
                         box=[x0, y0, x0 + key_size - 1, y0 + key_size - 1]))
    wanted = int(rng.integers(num_objects[0], num_objects[1] + 1))
    objects = []
    for _ in range(wanted * _MAX_TRIES):
        if len(objects) == wanted:
            break
        r = float(rng.uniform(*radius))
        cx, cy = rng.uniform(r + 1, size - r - 1, size=2)
        pts = _disc_pixels(size, cx, cy, r)
        box = [int(pts[:, 0].min()), int(pts[:, 1].min()),
               int(pts[:, 0].max()), int(pts[:, 1].max())]
        # 2 px between discs' boxes and 3 px to a key: no touching
        if any(_box_gap(o['box'], pts) < 3 for o in objects) or \
                any(_box_gap(k['box'], pts) < 4 for k in keys):
            continue
        dists = [float(np.hypot(cx - k['centre'][0], cy - k['centre'][1]))
                 for k in keys]
        if max(dists) < min_ratio * min(dists):
            continue
        objects.append(dict(
            centre=[float(cx), float(cy)], radius=r, box=box,
            dists=dists, nearest=int(np.argmin(dists)),
            gap=min(_box_gap(k['box'], pts) for k in keys)))
    return keys, objects


def render_context(rng: np.random.Generator,
                   size: int,
                   rule: str = 'spatial',
                   colour_rng: np.random.Generator = None,
                   num_objects=CONTEXT_DEFAULTS['num_objects'],
                   radius=CONTEXT_DEFAULTS['radius'],
                   key_size: int = CONTEXT_DEFAULTS['key_size'],
                   key_border: int = CONTEXT_DEFAULTS['key_border'],
                   min_key_dist: float = CONTEXT_DEFAULTS['min_key_dist'],
                   min_ratio: float = CONTEXT_DEFAULTS['min_ratio']):
    """Draw one scene.

    Args:
        rng: The generator of the layout (step 1 in the module docstring).
        size: Side of the square image in pixels.
        rule: 'local', 'global' or 'spatial'.
        colour_rng: The generator of classes and colours (step 2); default:
            one seeded from ``rng``.
        num_objects, radius, key_size, key_border, min_key_dist, min_ratio:
            See :data:`CONTEXT_DEFAULTS`.

    Returns:
        tuple: ``(img, label_map, meta)``: (H, W, 3) uint8 BGR, (H, W) uint8
        class indices, and ``dict(keys=[dict(centre, box, colour)],
        objects=[dict(centre, radius, box, label, gap, dists, nearest)])``
        (``colour``: 1 red, 2 blue; ``label``: 1 ``a``, 2 ``b``).
    """
    if rule not in CONTEXT_RULES:
        raise KeyError(f'context data: unknown rule {rule!r}; expected one '
                       f'of {CONTEXT_RULES}')
    keys, objects = _layout(rng, size, num_objects, radius, key_size,
                            key_border, min_key_dist, min_ratio)
    crng = colour_rng if colour_rng is not None else \
        np.random.default_rng(rng.integers(2**63))
    img = _background(crng, size)
    if rule == 'local':
        key_colours = [int(c) for c in crng.integers(1, 3, size=2)]
        labels = [int(c) for c in crng.integers(1, 3, size=len(objects))]
    elif rule == 'global':
        c = int(crng.integers(1, 3))
        key_colours = [c, c]
        labels = [c] * len(objects)
    else:
        red = int(crng.integers(2))  # which key is red
        key_colours = [1 if i == red else 2 for i in range(2)]
        labels = [key_colours[o['nearest']] for o in objects]
    label_map = np.zeros((size, size), np.uint8)
    for obj, label in zip(objects, labels):
        if rule == 'local':
            colour = tuple(int(np.clip(v + crng.integers(-15, 16), 0, 255))
                           for v in LOCAL_COLOURS[label])
        else:
            v = int(crng.integers(185, 236))
            colour = (v, v, v)
        centre = tuple(int(round(c * 16)) for c in obj['centre'])
        radius_16 = int(round(obj['radius'] * 16))
        cv2.circle(img, centre, radius_16, colour, -1, cv2.LINE_AA, shift=4)
        cv2.circle(label_map, centre, radius_16, label, -1, cv2.LINE_8,
                   shift=4)
        obj['label'] = label
    for key, colour in zip(keys, key_colours):
        x0, y0, x1, y1 = key['box']
        img[y0:y1 + 1, x0:x1 + 1] = KEY_COLOURS[colour]
        key['colour'] = colour
    return img, label_map, dict(keys=keys, objects=objects)
