# Copyright (c) mmsb contributors. All rights reserved.
"""Pathfinder: a generated long-range classification task.

After Linsley et al., "Learning long-range spatial dependencies with
horizontal gated recurrent units" (NeurIPS 2018), one of the Long Range
Arena tasks (Tay et al., ICLR 2021). Each image shows a few smooth curves on
a dark background and two marker dots. The label says whether one curve
joins the two markers (``connected``) or each marker sits at the end of its
own curve (``disconnected``). This is our own generator; nothing is
downloaded.

What the label cannot be read from, by construction
---------------------------------------------------
Every scene is drawn in this order, the class entering only at step 2:

1. the two marker positions ``p`` and ``q``: ``p`` uniform in the image,
   ``q`` at a distance drawn uniformly from ``[min_dist, max_dist]`` image
   sides in a uniform direction (redrawn until inside). Nothing about the
   markers depends on the class.
2. two *main* curves: ``connected`` draws one curve from ``p`` to ``q`` and
   one free curve elsewhere; ``disconnected`` draws one curve leaving ``p``
   and one leaving ``q``, each ending free. Every main curve is the same
   kind of curve: its chord (end-to-end distance) is the marker distance,
   and it bends by the same random harmonics (``wiggle``) about its chord. So both classes have two main curves of the same
   length distribution, two marked ends and two free ends.
3. ``num_distractors`` free curves of the same kind but shorter (chords
   drawn from ``distractor_dist``), in both classes.

Curves never touch or cross each other or a marker they do not end at.
If the curves do not fit around the markers, the curves (never the
markers) are redrawn, up to ``max_tries`` times, and only then the markers
(counted in ``redraws`` when ``return_meta=True``; the tests check that the
class-conditional statistics agree). So the positions and the distance of
the markers, the number of curves and curve ends, and the ink are drawn
from the same distributions in both classes: what differs is whether the
curve that leaves one marker ends at the other, and that is decided only by
following it.

What the label can still be read from is measured, not argued: the
evidence tool (``tools/analysis/evidence.py``) reports probes trained on
the marker positions, on the image average-pooled to the SB branch's
resolution, and on the total ink, beside the models. Which receptive field
a network has is computed from the built model
(:func:`mmsb.analysis.receptive_field`).

Deterministic: image ``i`` of a split depends only on (seed, split, i).
"""
import math
from typing import Tuple

import cv2
import numpy as np

__all__ = ['PATHFINDER_CLASSES', 'PATHFINDER_DEFAULTS', 'render_pathfinder']

PATHFINDER_CLASSES = ('connected', 'disconnected')
# Renderer defaults (the configs in configs/demo set their own difficulty,
# chosen on pilots of the plain model and the shortcut probes only).
PATHFINDER_DEFAULTS = dict(
    num_distractors=2,
    min_dist=0.4,            # marker distance (and curve chord) range,
    max_dist=0.7,            # in image sides
    distractor_dist=(0.2, 0.4),  # chord range of the distractors
    wiggle=0.25,             # bend of a curve about its chord, in chords
    gap_every=0,             # every n-th segment left out (dashes); 0: solid
)


def _bent_curve(rng: np.random.Generator, a: np.ndarray, b: np.ndarray,
                wiggle: float, step: float) -> np.ndarray:
    """(N, 2) points of a smooth curve from ``a`` to ``b``: the chord plus
    three random sine harmonics across and along it (amplitude ``wiggle``
    chords, falling as 1/k)."""
    chord = b - a
    length = float(np.hypot(*chord))
    u = chord / max(length, 1e-6)
    n = np.array([-u[1], u[0]])
    k = np.arange(1, 4)
    across = rng.normal(0, wiggle, 3) / k * length
    along = rng.normal(0, wiggle / 3, 3) / k * length
    num = max(8, int(math.ceil(length * (1 + 3 * wiggle) / step)))
    t = np.linspace(0, 1, num)[:, None]
    s = np.sin(np.pi * t * k[None, :])          # zero at both ends
    return a + t * chord + (s @ across)[:, None] * n + (s @ along)[:, None] * u


def _self_clear(pts: np.ndarray, sep: float, step: float) -> bool:
    """No two points farther apart along the curve than about ``3 sep``
    come closer than ``sep`` (no loops, no touching)."""
    gap = int(math.ceil(3 * sep / step)) + 1
    d2 = ((pts[:, None] - pts[None]) ** 2).sum(-1)
    i, j = np.triu_indices(len(pts), gap)
    return bool((d2[i, j] >= sep * sep).all())


def _raster(pts: np.ndarray, size: int, thickness: int, gap_every: int = 0,
            dilate: int = 0) -> np.ndarray:
    """The curve drawn into a fresh uint8 mask (255 = ink)."""
    mask = np.zeros((size, size), np.uint8)
    ipts = np.round(pts * 16).astype(np.int32)
    if not gap_every or dilate:
        cv2.polylines(mask, [ipts], False, 255, thickness + 2 * dilate,
                      cv2.LINE_AA, shift=4)
        return mask
    for i in range(len(ipts) - 1):
        if i % gap_every == gap_every - 1:
            continue
        cv2.line(mask, tuple(map(int, ipts[i])), tuple(map(int, ipts[i + 1])),
                 255, thickness + 2 * dilate, cv2.LINE_AA, shift=4)
    return mask


def _disc(size: int, c: np.ndarray, radius: float) -> np.ndarray:
    mask = np.zeros((size, size), np.uint8)
    cv2.circle(mask, tuple(int(v) for v in np.round(c * 16)),
               int(round(radius * 16)), 255, -1, cv2.LINE_AA, shift=4)
    return mask


def _chord_end(rng, a, size, dists, margin, allowed=None, tries=50):
    """A free end at a chord length drawn from ``dists`` from ``a``,
    inside the image (and on an ``allowed`` pixel); None if none was
    found."""
    for _ in range(tries):
        d = rng.uniform(*dists)
        ang = rng.uniform(0, 2 * np.pi)
        b = a + d * np.array([math.cos(ang), math.sin(ang)])
        if (b >= margin).all() and (b <= size - 1 - margin).all() and (
                allowed is None or allowed[int(b[1]), int(b[0])]):
            return b
    return None


def _markers(rng, size, dists, margin):
    while True:
        p = rng.uniform(margin, size - 1 - margin, 2)
        q = _chord_end(rng, p, size, dists, margin, tries=1)
        if q is not None:
            return p, q


def render_pathfinder(rng: np.random.Generator,
                      size: int,
                      connected: bool,
                      num_distractors: int = 2,
                      min_dist: float = 0.4,
                      max_dist: float = 0.7,
                      distractor_dist: Tuple[float, float] = (0.2, 0.4),
                      wiggle: float = 0.25,
                      gap_every: int = 0,
                      max_tries: int = 1000,
                      return_meta: bool = False):
    """One Pathfinder image (uint8, ``size`` x ``size``, one channel).

    Args:
        rng: The generator that decides everything about this image.
        size: Side of the square image in pixels (>= 32).
        connected: True: one curve joins the two markers.
        num_distractors: Free curves besides the two main ones.
        min_dist, max_dist: Range of the marker distance (which is also the
            chord of both main curves), in image sides.
        distractor_dist: Range of the distractors' chords, in image sides.
        wiggle: Std of a curve's bend about its chord, in chords (the first
            harmonic; the k-th has 1/k of it). 0 draws straight lines.
        gap_every: Every ``gap_every``-th segment of a curve (about a pixel
            long at 32 px) is left blank; 0 draws solid curves.
        max_tries: Curve sets drawn around one marker pair before the
            markers are drawn again.
        return_meta: Also return a dict with the marker centres
            (``markers``: ``[[x, y], [x, y]]``, ordered by x), the ink
            (sum of pixel values / 255) and ``redraws``, how often the
            markers were drawn again.

    Returns:
        np.ndarray | tuple: the image, or (image, meta).
    """
    if size < 32:
        raise ValueError(f'pathfinder: size must be >= 32 px, got {size}')
    if not 0 < min_dist < max_dist < 1:
        raise ValueError(f'pathfinder: expected 0 < min_dist < max_dist < 1, '
                         f'got {min_dist}, {max_dist}')
    if wiggle < 0 or num_distractors < 0:
        raise ValueError(f'pathfinder: wiggle and num_distractors must be '
                         f'>= 0, got {wiggle}, {num_distractors}')
    scale = size / 32
    step = 0.75 * scale
    thickness = max(1, int(round(scale)))
    radius = 1.5 * scale
    margin = radius + thickness
    sep = thickness  # one clear pixel between curves at 32 px
    dists = (min_dist * size, max_dist * size)
    short = tuple(v * size for v in distractor_dist)
    for redraws in range(1000):
        p, q = _markers(rng, size, dists, margin)
        discs = [_disc(size, c, radius + sep) > 0 for c in (p, q)]
        for _ in range(max_tries):
            curves = _draw_curves(rng, size, connected, p, q, discs,
                                  num_distractors, dists, short, wiggle, step,
                                  margin, thickness, sep)
            if curves is not None:
                break
        else:
            continue
        img = np.zeros((size, size), np.uint8)
        for pts in curves:
            np.maximum(img, _raster(pts, size, thickness, gap_every), out=img)
        for c in (p, q):
            np.maximum(img, _disc(size, c, radius), out=img)
        if not return_meta:
            return img
        markers = sorted([[float(v) for v in p], [float(v) for v in q]])
        return img, dict(markers=markers, ink=float(img.sum()) / 255,
                         redraws=redraws)
    raise RuntimeError(
        f'pathfinder: no scene fits at size={size} with num_distractors='
        f'{num_distractors}, min_dist={min_dist}, max_dist={max_dist}')


def _draw_curves(rng, size, connected, p, q, discs, num_distractors, dists,
                 short, wiggle, step, margin, thickness, sep, tries=20):
    """The curves of one scene around markers ``p``, ``q``, or None if one
    of them did not fit (touching another, a marker, itself or the
    border)."""
    # every main curve has the markers' distance as its chord: the ink of
    # the main curves does not depend on the class
    dist = float(np.hypot(*(q - p)))
    main = (dist, dist)
    if connected:
        ends = [(p, q, (0, 1), main), (None, None, (), main)]
    else:
        ends = [(p, None, (0, ), main), (q, None, (1, ), main)]
    ends += [(None, None, (), short)] * num_distractors
    blocked = np.zeros((size, size), bool)
    curves = []
    for a0, b0, own, chords in ends:
        off_limits = blocked.copy()
        for i, disc in enumerate(discs):
            if i not in own:
                off_limits |= disc
        allowed = ~off_limits
        for _ in range(tries):
            pts = _one_curve(rng, size, a0, b0, chords, wiggle, step, margin,
                             sep, allowed)
            if pts is not None and not (
                    (_raster(pts, size, thickness) > 0) & off_limits).any():
                break
        else:
            return None
        blocked |= _raster(pts, size, thickness, dilate=sep) > 0
        curves.append(pts)
    return curves


def _one_curve(rng, size, a, b, chords, wiggle, step, margin, sep, allowed):
    """A curve from ``a`` (drawn on an allowed pixel if None) to ``b``
    (drawn if None) inside the image and clear of itself, or None."""
    if a is None:
        lo, hi = int(math.ceil(margin)), int(size - 1 - margin)
        ys, xs = np.nonzero(allowed[lo:hi, lo:hi])
        if not len(xs):
            return None
        k = int(rng.integers(len(xs)))
        a = np.array([xs[k] + lo, ys[k] + lo]) + rng.uniform(0, 1, 2)
    if b is None:
        b = _chord_end(rng, a, size, chords, margin, allowed)
        if b is None:
            return None
    pts = _bent_curve(rng, a, b, wiggle, step)
    if (pts < margin).any() or (pts > size - 1 - margin).any() or \
            not _self_clear(pts, sep, step):
        return None
    return pts
