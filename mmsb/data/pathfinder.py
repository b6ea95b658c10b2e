# Copyright (c) mmsb contributors. All rights reserved.
"""Pathfinder: a generated long-range classification task.

After Linsley et al., "Learning long-range spatial dependencies with
horizontal gated recurrent units" (NeurIPS 2018), one of the Long Range
Arena tasks (Tay et al., ICLR 2021). Each image shows a few smooth dashed
curves on a dark background and two marked dots, each at the end of a curve.
The label says whether one curve joins the two dots (``connected``) or they
sit on two different curves (``disconnected``). This is our own generator;
nothing is downloaded.

Why local evidence alone cannot solve it
----------------------------------------
Every image of both classes is built from the same parts: two *main* curves
(A and B) of the same length distribution, the same number of distractor
curves, two markers, and nothing else. A ``connected`` image marks both ends
of A; a ``disconnected`` image marks one end of A and one end of B. So, in
both classes:

* each marker looks the same up close: a dot at the free end of a curve;
* there are exactly two marked and two unmarked ends of main curves, and
  the same number of distractor ends; curves never touch or cross, and all
  curves are drawn with the same intensity, thickness and dash pattern;
* the distance between the two markers follows the same distribution: every
  image first draws a target distance bin (uniform over bins between
  ``min_dist`` and ``max_dist`` of the image side), and scenes are redrawn
  until the markers fall into it. The markers' mere distance therefore
  carries no label information, and it is never below ``min_dist`` (45% of
  the side by default: 29 px at 64 px).

What differs is only whether the curve that leaves one marker ends at the
other, which can be decided only by following the curve over its whole
length, which is at least the marker distance. For the networks of the
Pathfinder configs in ``configs/demo`` (a CIFAR-style ResNet, 3x3 stem at
stride 1, two bottlenecks per stage, strides 1/2/2), the theoretical receptive
field of a stage-2 output is 13 px and of a stage-3 output 29 px at the input,
so no unit up to stage 2 ever sees both markers, and effective receptive
fields are far smaller than theoretical ones. Labels are exactly balanced
(even index: connected).

Deterministic: image ``i`` of a split depends only on (seed, split, i).
"""
import math
from typing import Optional, Tuple

import cv2
import numpy as np

__all__ = ['PATHFINDER_CLASSES', 'PATHFINDER_DEFAULTS', 'render_pathfinder']

PATHFINDER_CLASSES = ('connected', 'disconnected')
# Difficulty at the default size, chosen on a pilot of the *plain* model only
# (see docs/evidence.md): it must neither stay at chance nor saturate.
PATHFINDER_DEFAULTS = dict(
    num_distractors=2,
    length=(1.1, 1.5),       # main-curve length, in image sides
    min_dist=0.45,           # marker distance range, in image sides
    max_dist=0.75,
    dist_bins=4,
    gap_every=3,             # every 3rd step of a curve is left out (dashes)
    curvature=0.25,          # std of the direction change per step (rad)
)


def _walk(rng: np.random.Generator, size: int, length: float, step: float,
          curvature: float, margin: float,
          blocked: np.ndarray) -> Optional[np.ndarray]:
    """(N, 2) points of a smooth random curve that stays inside the image,
    keeps clear of ``blocked`` pixels and of its own earlier points; it turns
    as little as it can to do so. None if it got stuck."""
    n = max(2, int(round(length / step)))
    lo, hi = margin, size - margin
    x, y = (float(v) for v in rng.uniform(lo, hi, 2))
    if blocked[int(y), int(x)]:
        return None
    pts = np.empty((n + 1, 2))
    pts[0] = x, y
    theta = float(rng.uniform(0, 2 * np.pi))
    noise = rng.normal(0, curvature, n)
    near = (2.5 * step)**2
    for i in range(n):
        theta += noise[i]
        for turn in _TURNS:
            qx = x + step * math.cos(theta + turn)
            qy = y + step * math.sin(theta + turn)
            if not (lo <= qx <= hi and lo <= qy <= hi):
                continue
            if blocked[int(qy), int(qx)] or \
                    blocked[int((y + qy) / 2), int((x + qx) / 2)]:
                continue
            if i > 2:
                old = pts[:i - 2]
                if (((old[:, 0] - qx)**2 + (old[:, 1] - qy)**2) <
                        near).any():
                    continue
            theta += turn
            break
        else:
            return None
        x, y = qx, qy
        pts[i + 1] = x, y
    return pts


# Turns tried in order when the drawn direction is blocked (radians).
_TURNS = (0, 0.3, -0.3, 0.6, -0.6, 0.9, -0.9, 1.2, -1.2)


def _raster(pts: np.ndarray, size: int, thickness: int, gap_every: int,
            dilate: int = 0) -> np.ndarray:
    """The dashed curve drawn into a fresh uint8 mask (255 = ink)."""
    mask = np.zeros((size, size), np.uint8)
    ipts = np.round(pts * 16).astype(np.int32)
    for i in range(len(ipts) - 1):
        if gap_every and dilate == 0 and i % gap_every == gap_every - 1:
            continue
        cv2.line(mask, tuple(map(int, ipts[i])), tuple(map(int, ipts[i + 1])),
                 255, thickness + 2 * dilate, cv2.LINE_AA, shift=4)
    return mask


def _curve(rng, size, length, step, curvature, margin, blocked, tries=20):
    for _ in range(tries):
        pts = _walk(rng, size, rng.uniform(*length) * size, step, curvature,
                    margin, blocked)
        if pts is not None:
            return pts
    return None


def _dist(p, q) -> float:
    return float(math.hypot(p[0] - q[0], p[1] - q[1]))


def render_pathfinder(rng: np.random.Generator,
                      size: int,
                      connected: bool,
                      num_distractors: int = 2,
                      length: Tuple[float, float] = (1.1, 1.5),
                      min_dist: float = 0.45,
                      max_dist: float = 0.75,
                      dist_bins: int = 4,
                      gap_every: int = 3,
                      curvature: float = 0.25,
                      max_tries: int = 2000,
                      return_markers: bool = False):
    """One Pathfinder image (uint8, ``size`` x ``size``, one channel).

    Args:
        rng: The generator that decides everything about this image.
        size: Side of the square image in pixels (>= 32).
        connected: True: the markers sit at both ends of one curve.
        num_distractors: Unmarked curves besides the two main ones.
        length: Range of the main curves' length, in image sides.
        min_dist, max_dist: Range of the marker distance, in image sides.
        dist_bins: The distance range is cut into this many bins; the image
            draws one uniformly and is redrawn until its markers fall in it.
        gap_every: Every ``gap_every``-th step of a curve is left blank
            (dashed curves); 0 draws solid curves.
        curvature: Std of a curve's change of direction per step, in
            radians (a step is 3 px at 64 px).
        max_tries: Scenes to draw before giving up (RuntimeError).
        return_markers: Also return the two marker centres (x, y).

    Returns:
        np.ndarray | tuple: the image, or (image, (p, q)).
    """
    if size < 32:
        raise ValueError(f'pathfinder: size must be >= 32 px, got {size}')
    if not 0 < min_dist < max_dist:
        raise ValueError(f'pathfinder: expected 0 < min_dist < max_dist, got '
                         f'{min_dist}, {max_dist}')
    scale = size / 64
    step = 3.0 * scale
    thickness = max(1, int(round(scale)))
    radius = 2.0 * scale + 0.5
    margin = radius + 2 * thickness
    bin_ = int(rng.integers(dist_bins))
    width = (max_dist - min_dist) / dist_bins
    lo, hi = (min_dist + bin_ * width) * size, \
        (min_dist + (bin_ + 1) * width) * size
    sep = thickness + 1
    for _ in range(max_tries):
        blocked = np.zeros((size, size), bool)
        a = _curve(rng, size, length, step, curvature, margin, blocked)
        if a is None:
            continue
        ends_a = (a[0], a[-1]) if rng.integers(2) == 0 else (a[-1], a[0])
        if connected and not lo <= _dist(*ends_a) < hi:
            continue
        blocked |= _raster(a, size, thickness, 0, dilate=sep) > 0
        b = _curve(rng, size, length, step, curvature, margin, blocked)
        if b is None:
            continue
        p = ends_a[0]
        if connected:
            q = ends_a[1]
        else:
            fits = [e for e in (b[0], b[-1]) if lo <= _dist(p, e) < hi]
            if not fits:
                continue
            q = fits[int(rng.integers(len(fits)))]
        blocked |= _raster(b, size, thickness, 0, dilate=sep) > 0
        curves = [a, b]
        for _ in range(num_distractors):
            c = _curve(rng, size, (0.5 * length[0], length[0]), step,
                       curvature, margin, blocked)
            if c is None:
                break
            blocked |= _raster(c, size, thickness, 0, dilate=sep) > 0
            curves.append(c)
        else:
            img = np.zeros((size, size), np.uint8)
            for pts in curves:
                np.maximum(img, _raster(pts, size, thickness, gap_every),
                           out=img)
            for c in (p, q):
                cv2.circle(img, tuple(int(v) for v in np.round(c * 16)),
                           int(round(radius * 16)), 255, -1, cv2.LINE_AA,
                           shift=4)
            return (img, (p, q)) if return_markers else img
    raise RuntimeError(
        f'pathfinder: no scene with markers {lo:.0f}-{hi:.0f} px apart in '
        f'{max_tries} tries (size={size}, length={length}); lower min_dist '
        f'or raise length')
