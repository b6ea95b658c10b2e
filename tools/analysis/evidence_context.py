# Copyright (c) mmsb contributors. All rights reserved.
"""The context-at-a-distance part of the evidence tool (``evidence.py``):
the receptive field of the plain network, the cost of each model, and what
the report shows of the context tasks (``ctx-local``, ``ctx-global``,
``ctx-spatial``: :mod:`mmsb.data.context`).

The report's words are in ``docs/evidence/evidence.md.j2``; this module
computes the numbers from the run files, ``probes.json`` (with the field
measured from the built model) and ``context-costs.json``.
"""
import json
import os
import os.path as osp
import platform
import random
import statistics
import time

# the models of the family, in the order of the tables
MODELS = ('plain', 'sb', 'nl', 'gc')
# seeds per model of the 4x schedule, run on a rule where a model stays
# at chance at 1x (for all four models, so 4x tells speed from capability)
SEEDS_4X = 3
# which part of SB carries position (optional rows)
ABLATIONS = ('sb-global', 'sb-pool-only')
FOUR_X = {'plain-4x': 'plain', 'sb-4x': 'sb', 'nl-4x': 'nl', 'gc-4x': 'gc'}
COLOURS = {'plain': 'tab:blue', 'sb': 'tab:red', 'nl': 'tab:green',
           'gc': 'tab:purple', 'sb-global': 'tab:orange',
           'sb-pool-only': 'tab:brown'}
COSTS_FILE = 'context-costs.json'


def _build(cfg):
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS as SEG_MODELS

    import mmsb  # noqa: F401  registers the backbones
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    return SEG_MODELS.build(cfg.model)


def context_field(cfg) -> int:
    """Receptive field (pixels) of the segmentor of ``cfg``, head and the
    resize of its logits to the image included: the side of the square,
    centred on a pixel, outside which no pixel changes that pixel's logits,
    over the four phases of a stride-4 map
    (:func:`mmsb.analysis.receptive_field` with ``units=4``), at the
    config's image size."""
    import torch

    from mmsb.analysis import receptive_field
    model = _build(cfg)
    size = cfg.train_dataloader.dataset.demo_cfg.img_size

    class Logits(torch.nn.Module):
        """Image -> logits at the image's size, by mmseg's own path."""

        def __init__(self, seg):
            super().__init__()
            self.seg = seg

        def forward(self, x):
            return self.seg.encode_decode(
                x, [dict(img_shape=tuple(x.shape[-2:]))])

    return receptive_field(Logits(model), input_size=size, units=4)[0]


def measure_costs(cfgs, rounds=7, warmup=2, batch=8, seed=0):
    """Parameters, FLOPs (mmengine's complexity analysis, multiply-adds, at
    the config's image size) and the time of a training step (forward,
    loss, backward, AdamW step; batch ``batch``, random labels), the models
    of ``cfgs`` (name -> config) timed interleaved: each round runs every
    model once, in an order shuffled per round; ``warmup`` rounds untimed,
    then the median of ``rounds``."""
    import torch
    from mmengine.analysis import get_model_complexity_info
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    rng = random.Random(seed)
    torch.manual_seed(seed)
    models, opts, out = {}, {}, {}
    size = None
    for name, cfg in cfgs.items():
        size = cfg.train_dataloader.dataset.demo_cfg.img_size
        model = _build(cfg)
        model.init_weights()
        flops = get_model_complexity_info(
            model.eval(), input_shape=(3, size, size),
            show_table=False, show_arch=False)['flops']
        models[name] = model.train()
        opts[name] = torch.optim.AdamW(model.parameters(), lr=1e-4)
        out[name] = dict(params=sum(p.numel() for p in model.parameters()),
                         gflops=flops / 1e9, times=[])
    x = torch.rand(batch, 3, size, size) * 255
    samples = []
    for _ in range(batch):
        s = SegDataSample(gt_sem_seg=PixelData(
            data=torch.randint(0, 3, (1, size, size))))
        s.set_metainfo(dict(img_shape=(size, size), pad_shape=(size, size),
                            ori_shape=(size, size)))
        samples.append(s)
    for r in range(warmup + rounds):
        order = list(models)
        rng.shuffle(order)
        for name in order:
            model = models[name]
            start = time.perf_counter()
            data = model.data_preprocessor(
                dict(inputs=list(x), data_samples=samples), True)
            losses = model(**data, mode='loss')
            loss = sum(v for k, v in losses.items() if 'loss' in k)
            opts[name].zero_grad()
            loss.backward()
            opts[name].step()
            if r >= warmup:
                out[name]['times'].append(time.perf_counter() - start)
    for name, rec in out.items():
        rec['s_per_iter'] = statistics.median(rec.pop('times'))
    return dict(models=out, batch=batch, img_size=size, rounds=rounds,
                threads=torch.get_num_threads(),
                torch=torch.__version__, python=platform.python_version())


def write_costs(path, costs, extra):
    os.makedirs(osp.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        json.dump(dict(costs, **extra), f, indent=1)


def load_costs(runs_dir):
    path = osp.join(runs_dir, COSTS_FILE)
    if not osp.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


def _spread(values):
    from mmsb.analysis import paired_stats
    values = [v for v in values if v == v]
    if not values:
        return None
    return paired_stats(values, values)['base']


def _mean(values):
    values = [v for v in values if v == v]
    return sum(values) / len(values) if values else float('nan')


def carry_rows(store, titles):
    """Rows of the carry table (``--carry``): per variant, over the seeds
    probed, the mean validation accuracy of each probe beyond and within
    the field, beside the model's own accuracy beyond it."""
    by_variant = {}
    for rec in store.values():
        by_variant.setdefault(rec['variant'], []).append(rec)
    rows = []
    for v in MODELS + ABLATIONS + tuple(FOUR_X):
        recs = sorted(by_variant.get(v, []), key=lambda r: r['seed'])
        if not recs:
            continue
        row = dict(variant=v, title=titles.get(v, v), n=len(recs),
                   seeds=[r['seed'] for r in recs])
        row['model_beyond'] = _mean([r.get('model', {}).get(
            'obj/acc_beyond', float('nan')) for r in recs])
        for name in ('features', 'sb'):
            if all(name in r['probes'] for r in recs):
                row[name] = {k: _mean([r['probes'][name][k] for r in recs])
                             for k in ('beyond', 'within')}
        rows.append(row)
    return rows


def schedule_rows(by_variant, pair, read, titles):
    """Each model against plain at 4x the schedule beside the same
    comparison at 1x, both on the seeds all four ran (``pair``:
    ``evidence.schedule_pair``), on the accuracy beyond the field, with
    ``read``'s words for the two (``evidence.schedule_reading``)."""
    rows = []
    for model in MODELS[1:]:
        got = pair(by_variant, model)
        if not got:
            continue
        one, four = got
        a, b = one['stats']['diff'], four['stats']['diff']
        at_1x = {r['seed']: r['metric'] for _, r in one['pairs']}
        rows.append(dict(variant=four['variant'], title=titles[model],
                         seeds=[r['seed'] for r, _ in four['pairs']],
                         one=a, four=b, reading=read(a, b, model.upper()),
                         # the model's own accuracy, seed by seed
                         per_seed=[(r['seed'], at_1x[r['seed']], r['metric'])
                                   for _, r in four['pairs']]))
    return rows


def task_summary(task, spec, by_variant, probes, compare, titles,
                 schedule=None):
    """What the template shows of one context task: a row per model (and
    per optional variant) with its accuracy beyond and within the field and
    overall, paired against plain and SB on the beyond-field accuracy; the
    4x rows and, given ``schedule`` (``evidence.schedule_pair`` and
    ``evidence.schedule_reading``), their reading against 1x; the curve by
    distance."""
    from mmsb.evaluation import GAP_BINS, gap_bin_names
    rows = []

    def row(variant, base, sb_base):
        recs = by_variant.get(variant)
        if not recs:
            return None
        metrics = [r.get('metrics', {}) for r in recs]
        return dict(
            variant=variant, title=titles[variant], n=len(recs),
            beyond=_spread([r['metric'] for r in recs]),
            within=_spread([m.get('obj/acc_within', float('nan'))
                            for m in metrics]),
            overall=_spread([m.get('obj/acc', float('nan'))
                             for m in metrics]),
            miou=_spread([m.get('mIoU', float('nan')) for m in metrics]),
            s_per_iter=statistics.median(r['s_per_iter'] for r in recs),
            notes=[(r['seed'], r['note']) for r in recs if r.get('note')],
            vs_plain=compare(by_variant, variant, base)
            if base and base in by_variant else None,
            vs_sb=compare(by_variant, variant, sb_base)
            if sb_base and sb_base in by_variant else None)

    for v in MODELS + ABLATIONS:
        r = row(v, None if v == 'plain' else 'plain',
                None if v in ('plain', 'sb') else 'sb')
        if r:
            rows.append(r)
    four = []
    for v, model in FOUR_X.items():
        r = row(v, None if model == 'plain' else 'plain-4x',
                None if model in ('plain', 'sb') else 'sb-4x')
        if r:
            four.append(r)
    # the curve: per model the mean over seeds of each gap bin
    names = gap_bin_names()
    curves = {}
    counts = None
    for v in MODELS + ABLATIONS + tuple(FOUR_X):
        recs = [r for r in by_variant.get(v, []) if 'metrics' in r]
        if not recs:
            continue
        curves[v] = [_mean([r['metrics'].get(f'obj/{n}', float('nan'))
                            for r in recs]) for n in names]
        counts = [recs[0]['metrics'].get(
            'obj/n_' + n[len('acc_'):], 0) for n in names]
    pr = probes.get(task)
    field = pr.get('field') if pr else None
    first = next(iter(by_variant.values()))[0]
    return dict(
        spec, name=task, rule=task.split('-', 1)[1], rows=rows,
        rows_4x=four, probes=pr, field=field, bins=list(GAP_BINS),
        seeds_4x=SEEDS_4X,
        schedule_4x=schedule_rows(by_variant, *schedule, titles)
        if schedule else [],
        bin_names=names, curves=curves, counts=counts,
        n_beyond=first.get('metrics', {}).get('obj/n_beyond'),
        n_within=first.get('metrics', {}).get('obj/n_within'),
        options=[o for o in first['options']
                 if not o.startswith(('randomness.seed=',
                                      'default_hooks.logger.'))],
        data=first['data'],
        commits=sorted({r['commit'] for recs in by_variant.values()
                        for r in recs}))


def plot_curves(summary, path):
    """Object accuracy against the gap to the nearest key, one line per
    model (mean over seeds), the field's reach marked."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    field = summary['field'] or 0
    half = (field - 1) / 2
    edges = [0.0] + summary['bins']
    labels = [f'{lo * half:.0f}-{hi * half:.0f}\n({lo:g}-{hi:g})'
              for lo, hi in zip(edges, edges[1:])]
    labels.append(f'>{edges[-1] * half:.0f}\n(>{edges[-1]:g})')
    fig, ax = plt.subplots(figsize=(8, 3.8))
    xs = list(range(len(labels)))
    for v, ys in summary['curves'].items():
        style = '--' if v.endswith('-4x') else '-'
        ax.plot(xs, ys, style, marker='o', ms=4, lw=1.5,
                color=COLOURS.get(v.replace('-4x', ''), 'tab:grey'),
                label=v)
    ax.axhline(50, color='grey', ls=':', lw=1, label='chance')
    # the field ends between the bins (0.5-1) and (1-1.5)
    ax.axvline(edges.index(1.0) - 0.5, color='black', ls='--', lw=1)
    ax.text(edges.index(1.0) - 0.45, 97, 'beyond the field →', fontsize=8,
            va='top')
    ax.set_xticks(xs)
    ax.set_xticklabels(labels, fontsize=7)
    ax.set(xlabel='gap to the nearest key: pixels (half-fields)',
           ylabel='object accuracy (%)', ylim=(40, 101))
    if summary['counts']:
        for x, n in zip(xs, summary['counts']):
            ax.text(x, 41, f'n={n}', ha='center', fontsize=6,
                    color='grey')
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=4, loc='upper right')
    ax.set_title(f'{summary["title"]}: accuracy by distance (mean over '
                 f'seeds)', fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def cost_rows(costs, tasks):
    """The cost table: per model its parameters, GFLOPs and interleaved
    time per training step (``context-costs.json``), the median time per
    iteration of its runs, and what it buys beyond the field on each task
    (mean difference against plain)."""
    if not costs:
        return []
    base = costs['models']['plain']
    rows = []
    for v in MODELS:
        c = costs['models'].get(v)
        if not c:
            continue
        gains = {}
        for t in tasks:
            r = next((r for r in t['rows'] if r['variant'] == v), None)
            if r and r['vs_plain']:
                gains[t['rule']] = r['vs_plain']['stats']['diff']['mean']
        rows.append(dict(
            variant=v, params=c['params'], gflops=c['gflops'],
            s_per_iter=c['s_per_iter'],
            extra_params=c['params'] - base['params'],
            extra_time=c['s_per_iter'] / base['s_per_iter'] - 1,
            gains=gains))
    return rows


def nl_share(cost_rows_, rule, who='sb'):
    """``(points who recovers, points NL recovers, who's extra time as a
    share of NL's)`` beyond the field on ``rule``, or None."""
    by = {r['variant']: r for r in cost_rows_}
    if who not in by or 'nl' not in by or rule not in by[who]['gains'] \
            or rule not in by['nl']['gains']:
        return None
    nl_time = by['nl']['extra_time']
    return (by[who]['gains'][rule], by['nl']['gains'][rule],
            by[who]['extra_time'] / nl_time if nl_time > 0 else
            float('nan'))
