"""mmsb.data.context: the context-at-a-distance scenes are deterministic,
share their layout across rules, label by their rule, and give the same
statistics to both classes (nothing but the rule's colour decides); the
data set reads through mmseg and ContextObjectAccuracy scores it."""
import json
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from utils import REPO

from mmsb.data.context import CONTEXT_DEFAULTS, KEY_COLOURS, render_context
from mmsb.data.demo import generate_if_missing

CONFIG = osp.join(REPO, 'configs', 'evidence',
                  'fcn_r20-cifar_1xb8-600it_context-{}-112.py')


def _demo_cfg(rule='spatial'):
    cfg = Config.fromfile(CONFIG.format(rule))
    demo = dict(cfg.train_dataloader.dataset.demo_cfg)
    size = demo.pop('img_size')
    for key in ('num_train', 'num_val', 'seed', 'rule'):
        demo.pop(key)
    return demo, size, cfg


def _scene(rule, i, size, **opts):
    return render_context(np.random.default_rng([9, i, 0]), size, rule,
                          colour_rng=np.random.default_rng([9, i, 1]),
                          **opts)


def test_same_layout_for_every_rule_and_labels_by_the_rule():
    demo, size, _ = _demo_cfg()
    for i in range(20):
        scenes = {r: _scene(r, i, size, **demo)
                  for r in ('local', 'global', 'spatial')}
        layouts = [[(o['box'], o['gap']) for o in meta['objects']]
                   for _, _, meta in scenes.values()]
        assert layouts[0] == layouts[1] == layouts[2]
        keys = [[k['box'] for k in meta['keys']]
                for _, _, meta in scenes.values()]
        assert keys[0] == keys[1] == keys[2]
        for rule, (img, label_map, meta) in scenes.items():
            assert label_map.max() <= 2
            for k in meta['keys']:  # keys: background, drawn in their colour
                x0, y0, x1, y1 = k['box']
                assert (label_map[y0:y1 + 1, x0:x1 + 1] == 0).all()
                assert tuple(img[y0 + 2, x0 + 2]) == KEY_COLOURS[k['colour']]
            for o in meta['objects']:
                x0, y0, x1, y1 = o['box']
                crop = label_map[y0:y1 + 1, x0:x1 + 1]
                assert set(np.unique(crop)) == {0, o['label']}
                colours = [k['colour'] for k in meta['keys']]
                if rule == 'global':
                    assert colours[0] == colours[1] == o['label']
                if rule == 'spatial':
                    assert colours[0] != colours[1]
                    assert o['label'] == colours[o['nearest']]
                    near, far = sorted(o['dists'])
                    assert far >= CONTEXT_DEFAULTS['min_ratio'] * near
            # every labelled pixel belongs to an object's box
            covered = np.zeros_like(label_map, bool)
            for o in meta['objects']:
                x0, y0, x1, y1 = o['box']
                covered[y0:y1 + 1, x0:x1 + 1] = True
            assert not (label_map[~covered] > 0).any()


def test_gap_is_the_linf_distance_to_the_nearest_key_pixel():
    demo, size, _ = _demo_cfg()
    _, label_map, meta = _scene('spatial', 3, size, **demo)
    for o in meta['objects']:
        ys, xs = np.nonzero(label_map == o['label'])
        inside = (xs >= o['box'][0]) & (xs <= o['box'][2]) & \
            (ys >= o['box'][1]) & (ys <= o['box'][3])
        xs, ys = xs[inside], ys[inside]
        best = min(
            max(abs(int(x) - kx), abs(int(y) - ky))
            for k in meta['keys']
            for kx in range(k['box'][0], k['box'][2] + 1)
            for ky in range(k['box'][1], k['box'][3] + 1)
            for x, y in zip(xs, ys))
        assert o['gap'] == best


@pytest.mark.parametrize('rule', ['global', 'spatial'])
def test_class_conditional_statistics_agree(rule):
    """Nothing but the rule's colour decides the class: disc position,
    radius, gap and grey level, the key positions and the number of discs
    follow the same distribution in both classes (two-sample
    Kolmogorov-Smirnov), and the classes are balanced. One disc per scene
    (600 scenes): the discs of a scene share its keys, so taking all of
    them would make the samples dependent."""
    from scipy.stats import binomtest, ks_2samp
    demo, size, _ = _demo_cfg(rule)
    by = {1: [], 2: []}
    for i in range(600):
        img, _, meta = _scene(rule, i, size, **demo)
        keys = [c for k in meta['keys'] for c in k['centre']]
        for o in meta['objects'][:1]:
            cx, cy = (int(round(v)) for v in o['centre'])
            by[o['label']].append(dict(
                x=o['centre'][0], y=o['centre'][1], r=o['radius'],
                gap=o['gap'], grey=int(img[cy, cx, 0]), kx=keys[0],
                ky=keys[1], n=len(meta['objects'])))
    a, b = by[1], by[2]
    assert binomtest(len(a), len(a) + len(b)).pvalue > 0.01
    for key in ('x', 'y', 'r', 'gap', 'grey', 'kx', 'ky', 'n'):
        p = ks_2samp([o[key] for o in a], [o[key] for o in b]).pvalue
        assert p > 0.01, (rule, key, p)


def test_local_discs_differ_by_colour_only_there():
    demo, size, _ = _demo_cfg('local')
    greys = {1: set(), 2: set()}
    for i in range(10):
        img, _, meta = _scene('local', i, size, **demo)
        for o in meta['objects']:
            cx, cy = (int(round(v)) for v in o['centre'])
            greys[o['label']].add(tuple(int(v) for v in img[cy, cx]))
    blue_channel = {k: np.mean([c[0] for c in v]) for k, v in greys.items()}
    assert blue_channel[2] - blue_channel[1] > 100


def test_bad_options_are_refused_naming_the_value():
    rng = np.random.default_rng(0)
    with pytest.raises(KeyError, match="unknown rule 'left'"):
        render_context(rng, 64, 'left')
    with pytest.raises(ValueError, match='key_border=40 leaves no room'):
        render_context(rng, 64, 'spatial', key_border=40)


@pytest.fixture(scope='module')
def tiny_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('ctx') / 'context-spatial')
    demo, size, _ = _demo_cfg()
    generate_if_missing('context', root, num_train=4, num_val=6,
                        img_size=size, seed=2, rule='spatial', **demo)
    return root


def _val_samples(root, cfg):
    """The config's val dataset on ``root``, through mmseg's registry."""
    from mmseg.registry import DATASETS

    import mmsb.data  # noqa: F401
    init_default_scope('mmseg')
    ds_cfg = cfg.val_dataloader.dataset.copy()
    ds_cfg.update(data_root=root)
    return DATASETS.build(ds_cfg)


def _metric(root, cfg):
    from mmseg.registry import METRICS

    import mmsb.evaluation  # noqa: F401
    ev = [e for e in cfg.val_evaluator
          if e['type'] == 'ContextObjectAccuracy'][0].copy()
    ev.update(meta_file=osp.join(root, 'meta-val.json'))
    return METRICS.build(ev)


def _score(metric, dataset, predict):
    from mmengine.structures import PixelData
    for i in range(len(dataset)):
        sample = dataset[i]['data_samples']
        gt = sample.gt_sem_seg.data
        sample.pred_sem_seg = PixelData(data=predict(gt))
        metric.process({}, [sample.to_dict()])
    return metric.evaluate(len(dataset))


def test_dataset_and_metric_through_mmseg(tiny_root):
    """The val split reads through mmseg's dataset and pipeline; the metric
    scores a perfect prediction 100, all background 50 (a tie per object),
    the swapped classes 0, and one class everywhere by the share of
    objects of that class."""
    _, _, cfg = _demo_cfg()
    dataset = _val_samples(tiny_root, cfg)
    assert len(dataset) == 6
    with open(osp.join(tiny_root, 'meta-val.json')) as f:
        meta = json.load(f)
    objects = [o for rec in meta for o in rec['objects']]
    half = (cfg.field - 1) / 2
    beyond = sum(o['gap'] > half for o in objects)

    perfect = _score(_metric(tiny_root, cfg), dataset, lambda gt: gt)
    assert perfect['obj/acc'] == 100 and perfect['obj/n'] == len(objects)
    assert perfect['obj/n_beyond'] == beyond
    assert perfect['obj/n_within'] == len(objects) - beyond
    assert sum(v for k, v in perfect.items()
               if k.startswith('obj/n_gap')) == len(objects)
    blank = _score(_metric(tiny_root, cfg), dataset, torch.zeros_like)
    assert blank['obj/acc'] == 50
    swapped = _score(_metric(tiny_root, cfg), dataset,
                     lambda gt: torch.where(gt > 0, 3 - gt, gt))
    assert swapped['obj/acc'] == 0
    all_a = _score(_metric(tiny_root, cfg), dataset,
                   lambda gt: torch.full_like(gt, 1))
    share = 100 * sum(o['label'] == 1 for o in objects) / len(objects)
    assert all_a['obj/acc'] == pytest.approx(share)


def test_metric_refuses_bad_arguments(tiny_root):
    from mmsb.evaluation import ContextObjectAccuracy
    with pytest.raises(ValueError, match="field must be .* got '33'"):
        ContextObjectAccuracy(meta_file='x', field='33')
    with pytest.raises(ValueError, match='bins must be positive'):
        ContextObjectAccuracy(meta_file='x', field=33, bins=(2, 1))
    metric = ContextObjectAccuracy(
        meta_file=osp.join(tiny_root, 'meta-train.json'), field=33)
    _, _, cfg = _demo_cfg()
    dataset = _val_samples(tiny_root, cfg)
    with pytest.raises(KeyError, match='meta_file of another split'):
        _score(metric, dataset, lambda gt: gt)
