# Copyright (c) mmsb contributors. All rights reserved.
"""Dataset types of the demo configs: the downstream's own dataset classes,
which first generate their files (:mod:`mmsb.data.demo`) if missing.

Registered in the DATASETS registry of each installed toolbox:
``DemoCocoDataset`` (mmdet, a ``CocoDataset``), ``DemoSegDataset`` (mmseg, a
``BaseSegDataset`` whose label 0 is a real background class) and
``DemoClsDataset`` (mmpretrain, a ``CustomDataset``). Besides their parent's
arguments they take ``demo_cfg``: ``num_train``, ``num_val``, ``img_size``,
``seed`` of the generator (defaults: :data:`mmsb.data.demo.DEFAULTS`).
``generates_on_first_use`` tells tools/_common.py that a ``data_root``
which does not exist yet is fine.
"""
from importlib.util import find_spec

from .context import CONTEXT_CLASSES, CONTEXT_PALETTE
from .demo import (CLASSES, PALETTE, SEG_CLASSES, SEG_PALETTE,
                   generate_if_missing)

__all__ = []


def _check_root(dataset, data_root):
    if not isinstance(data_root, str) or not data_root or '://' in data_root:
        raise ValueError(f'{dataset}: data_root must be a local folder to '
                         f'generate the demo data in, got {data_root!r}')


def _generate(task, dataset, data_root, demo_cfg):
    _check_root(dataset, data_root)
    generate_if_missing(task, data_root, **(demo_cfg or {}))


if find_spec('mmdet') is not None:
    from mmdet.datasets import CocoDataset
    from mmdet.registry import DATASETS as MMDET_DATASETS

    @MMDET_DATASETS.register_module(force=True)
    class DemoCocoDataset(CocoDataset):
        """COCO-format shapes detection set, generated on first use."""

        METAINFO = dict(classes=CLASSES, palette=PALETTE)
        generates_on_first_use = True

        def __init__(self, *args, data_root='data/demo/coco/', demo_cfg=None,
                     **kwargs):
            _check_root(type(self).__name__, data_root)
            self._demo_cfg = demo_cfg
            super().__init__(*args, data_root=data_root, **kwargs)

        def full_init(self):
            # Generate when the files are first read, not on construction:
            # mmdet's DetInferencer builds the test dataset with
            # lazy_init=True only to read its palette, and must not write
            # 1100 images under the caller's working directory.
            if not self._fully_initialized:
                _generate('det', type(self).__name__, self.data_root,
                          self._demo_cfg)
            super().full_init()

    __all__.append('DemoCocoDataset')

if find_spec('mmseg') is not None:
    from mmseg.datasets import BaseSegDataset
    from mmseg.registry import DATASETS as MMSEG_DATASETS

    @MMSEG_DATASETS.register_module(force=True)
    class DemoSegDataset(BaseSegDataset):
        """ADE20K-layout shapes segmentation set, generated on first use.

        Unlike ADE20K (``reduce_zero_label=True``: 0 means "unlabelled"),
        label 0 is the background class and is learnt and scored.
        """

        METAINFO = dict(classes=SEG_CLASSES, palette=SEG_PALETTE)
        generates_on_first_use = True

        def __init__(self, *args, data_root='data/demo/ade/', demo_cfg=None,
                     img_suffix='.jpg', seg_map_suffix='.png',
                     reduce_zero_label=False, **kwargs):
            _generate('seg', type(self).__name__, data_root, demo_cfg)
            super().__init__(
                *args, data_root=data_root, img_suffix=img_suffix,
                seg_map_suffix=seg_map_suffix,
                reduce_zero_label=reduce_zero_label, **kwargs)

    __all__.append('DemoSegDataset')

    @MMSEG_DATASETS.register_module(force=True)
    class ContextSegDataset(BaseSegDataset):
        """Context-at-a-distance segmentation (:mod:`mmsb.data.context`) in
        the ADE20K-like layout, generated on first use. ``demo_cfg`` also
        takes the renderer's options (``rule``: 'local', 'global' or
        'spatial'; ``num_objects``, ``radius``, ``key_border``, ...).
        Label 0 is the background class and is learnt and scored; keys are
        background."""

        METAINFO = dict(classes=CONTEXT_CLASSES, palette=CONTEXT_PALETTE)
        generates_on_first_use = True

        def __init__(self, *args, data_root='data/demo/context/',
                     demo_cfg=None, img_suffix='.png', seg_map_suffix='.png',
                     reduce_zero_label=False, **kwargs):
            _generate('context', type(self).__name__, data_root, demo_cfg)
            super().__init__(
                *args, data_root=data_root, img_suffix=img_suffix,
                seg_map_suffix=seg_map_suffix,
                reduce_zero_label=reduce_zero_label, **kwargs)

    __all__.append('ContextSegDataset')

if find_spec('mmpretrain') is not None:
    from mmpretrain.datasets import CustomDataset
    from mmpretrain.registry import DATASETS as MMPRETRAIN_DATASETS

    @MMPRETRAIN_DATASETS.register_module(force=True)
    class DemoClsDataset(CustomDataset):
        """Shapes classification set in ``CustomDataset`` folder layout
        (``<split>/<class>/*.png``), generated on first use.

        The classes are the sub-folder names, as for any CustomDataset; they
        sort in the order of :data:`mmsb.data.demo.CLASSES`.
        """

        generates_on_first_use = True

        def __init__(self, *args, data_root='data/demo/cls/', demo_cfg=None,
                     **kwargs):
            _generate('cls', type(self).__name__, data_root, demo_cfg)
            super().__init__(*args, data_root=data_root, **kwargs)

    __all__.append('DemoClsDataset')

    @MMPRETRAIN_DATASETS.register_module(force=True)
    class PathfinderDataset(CustomDataset):
        """Pathfinder (:mod:`mmsb.data.pathfinder`) in ``CustomDataset``
        folder layout (``<split>/{connected,disconnected}/*.png``; the
        classes are the folder names, in this order), generated on first
        use. ``demo_cfg`` also takes the renderer's difficulty
        options (``num_distractors``, ``length``, ``min_dist``, ...)."""

        generates_on_first_use = True

        def __init__(self, *args, data_root='data/demo/pathfinder/',
                     demo_cfg=None, **kwargs):
            _generate('pathfinder', type(self).__name__, data_root, demo_cfg)
            super().__init__(*args, data_root=data_root, **kwargs)

    __all__.append('PathfinderDataset')
