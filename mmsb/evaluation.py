# Copyright (c) mmsb contributors. All rights reserved.
"""Metrics of the context-at-a-distance tasks (:mod:`mmsb.data.context`).

:class:`ContextObjectAccuracy` (registered in mmseg's METRICS on import)
scores a segmentor object by object: an object is right when more of its
pixels are predicted as its class than as the other object class (a tie,
e.g. all background, counts half: chance is 50%). It reports the accuracy
over all objects, within and beyond a receptive field of ``field`` pixels
(an object is beyond when no key pixel lies in the field of any of its
pixels: ``gap > (field - 1) / 2``), and in bins of the gap measured in
half-fields, so that a curve shows where a model stops seeing the keys.
Use it beside mmseg's ``IoUMetric``.
"""
import json
import os.path as osp
from typing import Optional, Sequence

import numpy as np
from mmengine.evaluator import BaseMetric
from mmengine.registry import METRICS as MMENGINE_METRICS

__all__ = ['ContextObjectAccuracy', 'gap_bin_names']

# Bin edges of an object's gap, in half-fields (R - 1) / 2 of the plain
# network: 1 is where the receptive field ends. The last bin is open.
GAP_BINS = (0.5, 1.0, 1.5, 2.0, 2.5, 3.0)


def gap_bin_names(bins: Sequence[float] = GAP_BINS):
    """The metric's keys of the gap bins (without prefix), in order."""
    edges = [0.0] + [float(b) for b in bins]
    names = [f'acc_gap{lo:g}-{hi:g}' for lo, hi in zip(edges, edges[1:])]
    return names + [f'acc_gap{edges[-1]:g}+']


class ContextObjectAccuracy(BaseMetric):
    """Object accuracy by distance to the keys (module docstring).

    Args:
        meta_file (str): The generator's ``meta-<split>.json`` of the scored
            split (per image its objects with pixel box, label and gap).
        field (int): The receptive field R of the plain network, pixels.
        bins (Sequence[float]): Upper edges of the gap bins in half-fields
            (the last bin is open). Default: :data:`GAP_BINS`.
        collect_device (str): As mmengine's ``BaseMetric``.
        prefix (str, optional): Key prefix. Default: 'obj'.
    """

    default_prefix = 'obj'

    def __init__(self,
                 meta_file: str,
                 field: int,
                 bins: Sequence[float] = GAP_BINS,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None):
        super().__init__(collect_device=collect_device, prefix=prefix)
        if isinstance(field, bool) or not isinstance(field, int) or \
                field < 1:
            raise ValueError(f'ContextObjectAccuracy: field must be the '
                             f'receptive field in pixels, an int >= 1, got '
                             f'{field!r}')
        if not bins or list(bins) != sorted(bins) or bins[0] <= 0:
            raise ValueError(f'ContextObjectAccuracy: bins must be positive '
                             f'and increasing, got {bins!r}')
        self.meta_file = meta_file
        self.field = field
        self.bins = tuple(float(b) for b in bins)
        self._meta = None

    @property
    def half_field(self) -> float:
        return (self.field - 1) / 2

    def _objects(self, img_path: str):
        if self._meta is None:  # the data set writes it on first use
            if not osp.isfile(self.meta_file):
                raise FileNotFoundError(
                    f'ContextObjectAccuracy: {self.meta_file} not found; '
                    f'meta_file must be the meta-<split>.json of the '
                    f'scored context data set')
            with open(self.meta_file) as f:
                self._meta = {rec['file']: rec['objects']
                              for rec in json.load(f)}
        name = osp.splitext(osp.basename(img_path))[0]
        if name not in self._meta:
            raise KeyError(f'ContextObjectAccuracy: {name} is not in '
                           f'{self.meta_file} (meta_file of another split?)')
        return self._meta[name]

    def process(self, data_batch, data_samples: Sequence[dict]):
        # one result per image (mmengine cuts the results to the data set's
        # length): the (gap, score) of each of its objects
        for sample in data_samples:
            scores = []
            pred = sample['pred_sem_seg']['data'].squeeze(0).cpu().numpy()
            gt = sample['gt_sem_seg']['data'].squeeze(0).cpu().numpy()
            if pred.shape != gt.shape:
                raise ValueError(f'ContextObjectAccuracy: prediction '
                                 f'{pred.shape} and label {gt.shape} of '
                                 f'{sample["img_path"]} differ in size')
            for obj in self._objects(sample['img_path']):
                x0, y0, x1, y1 = obj['box']
                label = obj['label']
                mask = gt[y0:y1 + 1, x0:x1 + 1] == label
                if not mask.any():
                    raise ValueError(
                        f'ContextObjectAccuracy: no pixel of label {label} '
                        f'in box {obj["box"]} of {sample["img_path"]} (a '
                        f'flipped or resized test pipeline?)')
                p = pred[y0:y1 + 1, x0:x1 + 1][mask]
                right = int((p == label).sum())
                wrong = int((p == 3 - label).sum())
                score = 1.0 if right > wrong else 0.5 if right == wrong \
                    else 0.0
                scores.append((obj['gap'], score))
            self.results.append(scores)

    def compute_metrics(self, results: list) -> dict:
        objects = [o for image in results for o in image]
        gap = np.array([g for g, _ in objects], dtype=float)
        score = np.array([s for _, s in objects], dtype=float)
        h = self.half_field
        out = dict(acc=100 * score.mean(), n=len(score))
        for name, sel in (('within', gap <= h), ('beyond', gap > h)):
            out[f'acc_{name}'] = 100 * score[sel].mean() if sel.any() \
                else float('nan')
            out[f'n_{name}'] = int(sel.sum())
        edges = [0.0] + [b * h for b in self.bins] + [np.inf]
        for name, lo, hi in zip(gap_bin_names(self.bins), edges, edges[1:]):
            # the first bin holds gap 0 too
            sel = (gap > lo) & (gap <= hi) if lo > 0 else (gap <= hi)
            out[name] = 100 * score[sel].mean() if sel.any() \
                else float('nan')
            out['n_' + name[len('acc_'):]] = int(sel.sum())
        return out


def _register():
    try:
        from mmseg.registry import METRICS
    except ImportError:
        METRICS = MMENGINE_METRICS
    if METRICS.module_dict.get('ContextObjectAccuracy') is not \
            ContextObjectAccuracy:
        METRICS.register_module(module=ContextObjectAccuracy, force=True)


_register()
