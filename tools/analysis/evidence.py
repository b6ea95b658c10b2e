# Copyright (c) mmsb contributors. All rights reserved.
"""Measured evidence: SB-ResNet against its plain twin, paired and seeded.

    python tools/analysis/evidence.py                    # all tasks -> docs/evidence.md
    python tools/analysis/evidence.py --tasks pathfinder control --seeds 5
    python tools/analysis/evidence.py --quick --out /tmp/ev/evidence.md   # minutes
    python tools/analysis/evidence.py --resume   # after an interruption
    python tools/analysis/evidence.py --tasks pathfinder --device cuda --seeds 10 \
        --cfg-options train_cfg.max_iters=20000 --out docs/evidence_gpu.md

Each task is a pair of our configs that differ only in the backbone (spatial
bias on or off), trained with ``tools/train.py`` (mmengine's Runner) and
scored by the configs' own evaluators:

==========  =========================================================  =========
task        configs (configs/demo/)                                    metric
==========  =========================================================  =========
pathfinder  ``{,sb-}resnet20-cifar_1xb32-2400it_pathfinder-32``        top-1
control     ``{,sb-}resnet20-cifar_1xb32-600it_demo-cls`` (shapes)     top-1
det         ``faster-rcnn_{r26,sb-r26}_fpn_1xb8-300it_demo-coco-128``  bbox mAP
seg         ``fpn_{r26,sb-r26}_1xb8-500it_demo-ade-96x96``             mIoU
==========  =========================================================  =========

Pairing: for seed ``s`` both runs get ``randomness.seed=s`` (same data order
and augmentation) and start from weights made here: the plain model is built
and initialised under ``torch.manual_seed(s)``; the SB model is initialised
the same way and then takes every tensor it shares with the plain model from
it (the widened ``norm2``/``conv3`` take the shared channels; the bias
channels and the spatial-bias branch keep their own initialisation). The
runs of one seed go side by side (``--jobs 2``, one thread each on a 2-core
machine), so both see the same load when their time per iteration is
compared.

The report gives per-seed values, mean and std, the paired difference
SB - plain with a 95% t interval, time per iteration, learning curves read
from mmengine's scalar logs, and Grad-CAM pictures of the trained Pathfinder
SB model (:func:`mmsb.visualization.sb_gradcam`). An existing report is
never overwritten without ``--force``.
"""
import argparse
import datetime
import json
import math
import os
import os.path as osp
import platform
import shlex
import statistics
import subprocess
import sys
import time

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEMO = osp.join(REPO, 'configs', 'demo')

# name: (plain config, SB config, metric key, metric label, chance, seeds)
TASKS = {
    'pathfinder': ('resnet20-cifar_1xb32-2400it_pathfinder-32.py',
                   'sb-resnet20-cifar_1xb32-2400it_pathfinder-32.py',
                   'accuracy/top1', 'top-1 (%)', 50.0, 5),
    'control': ('resnet20-cifar_1xb32-600it_demo-cls.py',
                'sb-resnet20-cifar_1xb32-600it_demo-cls.py',
                'accuracy/top1', 'top-1 (%)', 34.0, 5),
    'det': ('faster-rcnn_r26_fpn_1xb8-300it_demo-coco-128.py',
            'faster-rcnn_sb-r26_fpn_1xb8-300it_demo-coco-128.py',
            'coco/bbox_mAP', 'bbox mAP', 0.0, 3),
    'seg': ('fpn_r26_1xb8-500it_demo-ade-96x96.py',
            'fpn_sb-r26_1xb8-500it_demo-ade-96x96.py',
            'mIoU', 'mIoU (%)', 21.7, 3),
}
TITLES = {
    'pathfinder': 'Pathfinder (long range)',
    'control': 'Shapes (control: local evidence suffices)',
    'det': 'Demo detection (Faster R-CNN + FPN)',
    'seg': 'Demo segmentation (semantic FPN)',
}
CHANCE_NOTE = {
    'pathfinder': 'balanced classes',
    'control': 'majority class',
    'det': 'random boxes',
    'seg': 'all background',
}
# How the recipes were fixed (before the final runs, on the plain model).
RECIPE_NOTES = {
    'pathfinder': (
        'Difficulty and schedule were chosen on pilots of the **plain** '
        'model only (seed 0, one thread, validation accuracy after the '
        'schedule); the SB model took no part. At 64x64 with four dashed '
        'curves (the generator\'s defaults), 32x32 with one distractor, '
        'and 32x32 with two solid curves of 0.8-1.2 sides, the plain model '
        'stayed at chance (50.0-50.8% after 1500-1600 iterations). With two '
        'solid, nearly straight curves of 0.6-0.9 sides and markers 45-75% '
        'of the side apart it reached 56.6% after 2400 iterations. The final '
        'setting (curves of 0.5-0.75 sides, markers 45-60% apart, still '
        'beyond the receptive field of stage 2) was fixed from the last '
        'pilot: {final}.'),
    'control': 'The demo classifier\'s own recipe (configs/demo), unchanged.',
    'det': 'The demo recipe (`make demo`), unchanged.',
    'seg': 'The demo recipe (`make demo`), unchanged.',
}
PILOT_FINAL = ('the plain model reached {acc} after 2400 iterations '
               '(pilot, not one of the seeds below)')
PILOT_ACC = '60.3% top-1'

# Data options of the quick mode: seconds to generate.
QUICK_DATA = {
    'pathfinder': dict(num_train=32, num_val=16, img_size=32),
    'control': dict(num_train=24, num_val=9, img_size=32),
    'det': dict(num_train=12, num_val=4, img_size=64),
    'seg': dict(num_train=12, num_val=4, img_size=64),
}
QUICK_SUBDIR = {'pathfinder': 'pathfinder', 'control': 'cls', 'det': 'coco',
                'seg': 'ade'}
def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description='Train SB-ResNet and its plain twin, paired and seeded, '
        'and write the evidence report')
    p.add_argument('--tasks', nargs='+', choices=list(TASKS),
                   default=list(TASKS))
    p.add_argument('--seeds', type=int, default=None,
                   help='seeds per model (default: 5 for pathfinder and '
                   'control, 3 for det and seg; 1 with --quick)')
    p.add_argument('--quick', action='store_true',
                   help='tiny data, a few iterations, one seed: checks the '
                   'whole pipeline in minutes; the numbers mean nothing')
    p.add_argument('--cfg-options', nargs='+', default=[],
                   metavar='KEY=VALUE',
                   help='more --cfg-options for every run of every task '
                   '(both models), e.g. a longer schedule')
    p.add_argument('--out', default=osp.join(REPO, 'docs', 'evidence.md'),
                   help='the report (figures go to a folder beside it, '
                   'named after it)')
    p.add_argument('--work-dir', default=None,
                   help='runs, logs and init weights (default: '
                   'work_dirs/evidence[-quick])')
    p.add_argument('--jobs', type=int, default=2,
                   help='runs at a time: the plain and SB run of a seed go '
                   'side by side (default: 2)')
    p.add_argument('--threads', type=int, default=None,
                   help='torch threads per run (default: cores // jobs)')
    p.add_argument('--device', default='cpu', choices=['cpu', 'cuda'],
                   help='cpu hides GPUs from the runs; cuda lets mmengine '
                   'use them (default: cpu)')
    p.add_argument('--no-cam', action='store_true',
                   help='skip the Grad-CAM pictures')
    p.add_argument('--force', action='store_true',
                   help='overwrite an existing report and its figures; '
                   'without --resume also start the runs over (earlier runs '
                   'in the work dir are deleted)')
    p.add_argument('--resume', action='store_true',
                   help='reuse the finished runs of an earlier call (same '
                   'work dir and options): an interrupted call, or a report '
                   'to write again (with --force)')
    args = p.parse_args(argv)
    if args.seeds is not None and args.seeds < 1:
        p.error(f'--seeds must be >= 1, got {args.seeds}')
    if args.jobs < 1:
        p.error(f'--jobs must be >= 1, got {args.jobs}')
    for opt in args.cfg_options:
        if '=' not in opt:
            p.error(f'--cfg-options takes KEY=VALUE items, got {opt!r}')
    args.out = osp.abspath(args.out)
    args.fig_dir = osp.splitext(args.out)[0]
    if not args.force:
        for path in (args.out, args.fig_dir):
            if osp.exists(path):
                p.error(f'{path} exists; pass --force to overwrite it (or '
                        f'--out elsewhere)')
    if args.work_dir is None:
        suffix = '-quick' if args.quick else ''
        args.work_dir = osp.join(REPO, 'work_dirs', f'evidence{suffix}')
    args.work_dir = osp.abspath(args.work_dir)
    earlier = [t for t in TASKS if osp.isdir(osp.join(args.work_dir, t))]
    if earlier and not (args.force or args.resume):
        p.error(f'{args.work_dir} holds earlier runs ({", ".join(earlier)});'
                f' pass --resume to reuse the finished ones or --force to '
                f'start over')
    if args.threads is None:
        args.threads = max(1, (os.cpu_count() or 1) // args.jobs)
    return args


# ----------------------------------------------------------------- a run
class Run:
    """One training run: a task, a model ('plain' or 'sb'), a seed."""

    def __init__(self, args, task, model, seed):
        self.task, self.model, self.seed = task, model, seed
        plain, sb = TASKS[task][:2]
        self.config = osp.join(DEMO, plain if model == 'plain' else sb)
        self.work_dir = osp.join(args.work_dir, task, f'{model}_seed{seed}')
        self.init = osp.join(args.work_dir, task, 'init',
                             f'{model}_seed{seed}.pth')
        self.options = [f'randomness.seed={seed}', f'load_from={self.init}']
        self.options += task_options(args, task)

    def command(self):
        return [sys.executable, osp.join(REPO, 'tools', 'train.py'),
                self.config, '--work-dir', self.work_dir,
                '--cfg-options'] + self.options


def task_options(args, task):
    """``--cfg-options`` that every run of ``task`` gets (both models)."""
    opts = []
    metric_every = None
    if args.quick:
        root = osp.join(args.work_dir, 'data', QUICK_SUBDIR[task]) + '/'
        iters = 4
        metric_every = 2
        opts += [f'train_cfg.max_iters={iters}',
                 'default_hooks.logger.interval=1',
                 f'default_hooks.checkpoint.interval={iters}',
                 'train_dataloader.batch_size=2',
                 'val_dataloader.batch_size=2',
                 'test_dataloader.batch_size=2']
        opts += data_options(root, QUICK_DATA[task])
        if task == 'det':
            ann = root + 'annotations/instances_val2017.json'
            opts += [f'val_evaluator.ann_file={ann}',
                     f'test_evaluator.ann_file={ann}']
    opts += list(args.cfg_options)
    if metric_every is None:
        metric_every = max(1, max_iters(task, opts) // 4)
    # log validation metrics at their iteration (mmengine's default logs
    # them at the epoch, which an iteration-based loop keeps at 0)
    opts += [f'train_cfg.val_interval={metric_every}',
             'default_hooks.logger.log_metric_by_epoch=False']
    return opts


def data_options(root, data):
    opts = []
    for split in ('train', 'val', 'test'):
        opts.append(f'{split}_dataloader.dataset.data_root={root}')
        for key, value in data.items():
            opts.append(f'{split}_dataloader.dataset.demo_cfg.{key}={value}')
    return opts


def max_iters(task, opts):
    for opt in opts:
        if opt.startswith('train_cfg.max_iters='):
            return int(opt.split('=', 1)[1])
    from mmengine.config import Config
    return Config.fromfile(osp.join(DEMO, TASKS[task][0])).train_cfg.max_iters


def task_config(args, task, model='plain'):
    """A task's config with the options its runs get (``--cfg-options``
    parsed as tools/train.py does)."""
    from mmengine.config import Config, DictAction
    plain, sb = TASKS[task][:2]
    cfg = Config.fromfile(osp.join(DEMO, plain if model == 'plain' else sb))
    parser = argparse.ArgumentParser()
    parser.add_argument('--o', nargs='+', action=DictAction)
    cfg.merge_from_dict(parser.parse_args(
        ['--o'] + task_options(args, task)).o)
    return cfg


def prepare_data(args, task):
    """Generate the task's dataset once, before its runs start side by
    side (each would otherwise generate it, and one copy be discarded)."""
    from mmsb.data.demo import generate_if_missing
    cfg = task_config(args, task)
    kind = {'control': 'cls'}.get(task, task)
    for split in ('train', 'val'):
        ds = cfg[f'{split}_dataloader'].dataset
        generate_if_missing(kind, ds.data_root, **(ds.get('demo_cfg') or {}))


# ------------------------------------------------------- paired weights
def make_init_weights(args, task, seed):
    """Initial weights of both models of a seed (see the module docstring).

    Returns:
        dict: counts of SB tensors taken whole / in part from the plain
        model and kept as initialised.
    """
    import torch
    from mmengine.logging import MMLogger
    from mmengine.registry import MODELS, init_default_scope

    import mmsb  # noqa: F401  registers the backbones

    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel('WARNING')  # init_weights logs every tensor
    models = {}
    try:
        for which in ('plain', 'sb'):
            cfg = task_config(args, task, which)
            init_default_scope(cfg.get('default_scope', 'mmengine'))
            torch.manual_seed(seed)
            model = MODELS.build(cfg.model)
            model.init_weights()
            models[which] = model.state_dict()
    finally:
        logger.setLevel(level)
    plain, sb = models['plain'], models['sb']
    counts = dict(whole=0, part=0, own=0)
    for key, value in sb.items():
        src = plain.get(key)
        if src is None or src.dim() != value.dim():
            counts['own'] += 1
            continue
        if src.shape == value.shape:
            value.copy_(src)
            counts['whole'] += 1
            continue
        if all(a <= b for a, b in zip(src.shape, value.shape)):
            value[tuple(slice(0, n) for n in src.shape)] = src
            counts['part'] += 1
            continue
        raise ValueError(f'{task}: {key} is {tuple(src.shape)} in the plain '
                         f'model and {tuple(value.shape)} in the SB model')
    os.makedirs(osp.join(args.work_dir, task, 'init'), exist_ok=True)
    for which, state in (('plain', plain), ('sb', sb)):
        torch.save(dict(state_dict=state, meta=dict(seed=seed, task=task)),
                   osp.join(args.work_dir, task, 'init',
                            f'{which}_seed{seed}.pth'))
    return counts


# ---------------------------------------------------------------- running
def run_all(args, runs, log):
    """Run ``runs`` ``args.jobs`` at a time, in order; a failed run stops
    everything (its log tail is printed)."""
    env = dict(os.environ)
    env['PYTHONPATH'] = REPO + os.pathsep + env.get('PYTHONPATH', '')
    for var in ('OMP_NUM_THREADS', 'MKL_NUM_THREADS'):
        env[var] = str(args.threads)
    if args.device == 'cpu':
        env['CUDA_VISIBLE_DEVICES'] = ''
    pending, active = list(runs), []
    while pending or active:
        while pending and len(active) < args.jobs:
            run = pending.pop(0)
            if args.resume and osp.isfile(result_file(run)):
                log(f'  {run.task} {run.model} seed {run.seed}: done before, '
                    f'reused (--resume)')
                continue
            os.makedirs(run.work_dir, exist_ok=True)
            logf = open(osp.join(run.work_dir, 'train.log'), 'w')
            run.proc = subprocess.Popen(run.command(), stdout=logf,
                                        stderr=subprocess.STDOUT, env=env,
                                        cwd=REPO)
            run.logf, run.start = logf, time.time()
            active.append(run)
            log(f'  {run.task} {run.model} seed {run.seed}: started')
        time.sleep(1)
        for run in list(active):
            if run.proc.poll() is None:
                continue
            active.remove(run)
            run.logf.close()
            if run.proc.returncode != 0:
                for other in active:
                    other.proc.kill()
                with open(osp.join(run.work_dir, 'train.log')) as f:
                    tail = f.read()[-3000:]
                raise RuntimeError(
                    f'{run.task} {run.model} seed {run.seed} failed '
                    f'(exit {run.proc.returncode}); command:\n'
                    f'{shlex.join(run.command())}\n{tail}')
            res = collect(run)
            res.update(wall_s=time.time() - run.start, start=run.start,
                       end=time.time())
            with open(result_file(run), 'w') as f:
                json.dump(res, f)
            log(f'  {run.task} {run.model} seed {run.seed}: '
                f'{TASKS[run.task][2]} {res["metric"]:.4g} '
                f'({res["wall_s"]:.0f}s)')


def result_file(run):
    return osp.join(run.work_dir, 'result.json')


def collect(run):
    """Metric, time per iteration and curves from mmengine's scalars.json
    (the newest timestamped folder of the run)."""
    stamps = sorted(d for d in os.listdir(run.work_dir)
                    if osp.isfile(osp.join(run.work_dir, d, 'vis_data',
                                           'scalars.json')))
    if not stamps:
        raise RuntimeError(f'{run.work_dir}: no vis_data/scalars.json')
    path = osp.join(run.work_dir, stamps[-1], 'vis_data', 'scalars.json')
    key = TASKS[run.task][2]
    train, val = [], []
    with open(path) as f:
        for line in f:
            rec = json.loads(line)
            if key in rec:
                val.append((rec['step'], rec[key]))
            elif 'loss' in rec:
                train.append((rec.get('iter', rec.get('step')), rec['loss'],
                              rec.get('time')))
    if not val:
        raise RuntimeError(f'{path}: no {key} was logged')
    times = [t for _, _, t in train[1:] if t is not None] or \
        [t for _, _, t in train if t is not None]
    return dict(metric=val[-1][1], val_curve=val,
                loss_curve=[(i, loss) for i, loss, _ in train],
                s_per_iter=statistics.median(times) if times else None,
                scalars=path)


# ------------------------------------------------------------- statistics
def t95(n):
    """Two-sided 95% t quantile with n-1 degrees of freedom."""
    from scipy.stats import t
    return float(t.ppf(0.975, n - 1))


def summarise(values):
    n = len(values)
    mean = statistics.fmean(values)
    std = statistics.stdev(values) if n > 1 else float('nan')
    return mean, std


def paired(plain, sb):
    diffs = [b - a for a, b in zip(plain, sb)]
    n = len(diffs)
    mean = statistics.fmean(diffs)
    if n < 2:
        return mean, float('nan'), float('nan'), diffs
    half = t95(n) * statistics.stdev(diffs) / math.sqrt(n)
    return mean, mean - half, mean + half, diffs


def verdict(lo, hi):
    if math.isnan(lo):
        return 'one seed: no interval'
    if lo > 0:
        return 'SB better (interval above 0)'
    if hi < 0:
        return 'SB worse (interval below 0)'
    return 'no measurable difference (interval contains 0)'


# ------------------------------------------------------------------ report
def plot_task(task, results, path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
    colours = {'plain': 'tab:blue', 'sb': 'tab:red'}
    for model in ('plain', 'sb'):
        for i, res in enumerate(results[model]):
            label = ('plain' if model == 'plain' else 'SB') if i == 0 else None
            it, loss = zip(*res['loss_curve']) if res['loss_curve'] else \
                ((), ())
            ax1.plot(it, loss, color=colours[model], alpha=0.5, lw=1,
                     label=label)
            vi, vm = zip(*res['val_curve'])
            ax2.plot(vi, vm, color=colours[model], alpha=0.6, lw=1,
                     marker='o', ms=3, label=label)
    ax1.set(xlabel='iteration', ylabel='training loss', yscale='log')
    ax2.set(xlabel='iteration', ylabel=TASKS[task][3])
    ax2.axhline(TASKS[task][4], color='grey', ls=':', lw=1,
                label=f'chance ({CHANCE_NOTE[task]})')
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f'{TITLES[task]}: one line per seed')
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def cam_pictures(args, results, path):
    """Grad-CAM of the conv and SB branch of the trained Pathfinder SB
    model (first seed), last block of stages 1 and 2, on validation
    images (two per class)."""
    import glob

    import mmcv

    from mmsb.visualization import draw_gradcam_grid, load_model, sb_gradcam
    run = results['sb'][0]
    ckpts = sorted(glob.glob(osp.join(run['work_dir'], 'iter_*.pth')),
                   key=lambda p: int(p.rsplit('_', 1)[1].split('.')[0]))
    cfg = task_config(args, 'pathfinder', 'sb')
    root = cfg.val_dataloader.dataset.data_root
    model = load_model(cfg, ckpts[-1])
    blocks = ['backbone.layer1.1', 'backbone.layer2.1']
    files, rows = [], []
    for cls in ('connected', 'disconnected'):
        files += sorted(glob.glob(osp.join(root, 'val', cls, '*.png')))[:2]
    for f in files:
        img = mmcv.imread(f)
        cams = sb_gradcam(model, img, blocks)
        label = f'{osp.basename(osp.dirname(f))} {osp.basename(f)}'
        rows.append((label, mmcv.bgr2rgb(img), cams))
    classes = model.dataset_meta.get('classes') if getattr(
        model, 'dataset_meta', None) else None
    mmcv.imwrite(mmcv.rgb2bgr(draw_gradcam_grid(rows, blocks, classes)),
                 path)
    return [_shown_path(f) for f in files], blocks


def _shown_path(path):
    rel = osp.relpath(path, REPO)
    return path if rel.startswith('..') else rel


def machine_info(args):
    import mmcv
    import mmdet
    import mmengine
    import mmpretrain
    import mmseg
    import torch

    import mmsb
    cpu = platform.processor() or platform.machine()
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    cpu = line.split(':', 1)[1].strip()
                    break
    except OSError:
        pass
    device = f'CPU: {cpu}, {os.cpu_count()} cores'
    if args.device == 'cuda' and torch.cuda.is_available():
        device = (f'GPU: {torch.cuda.get_device_name(0)} (CUDA '
                  f'{torch.version.cuda}); host {device}')
    versions = (f'Python {platform.python_version()}, torch '
                f'{torch.__version__}, mmcv {mmcv.__version__}, mmengine '
                f'{mmengine.__version__}, mmdet {mmdet.__version__}, mmseg '
                f'{mmseg.__version__}, mmpretrain {mmpretrain.__version__}, '
                f'mmsb {mmsb.__version__}')
    return device, versions


def fmt(v, task):
    if math.isnan(v):
        return '–'
    return f'{v:.3f}' if task == 'det' else f'{v:.2f}'


def fmt_diff(d, lo, hi):
    if math.isnan(lo):
        return f'{d:+.3f}'
    return f'{d:+.3f} [{lo:+.3f}, {hi:+.3f}]'


def shown_options(opts):
    """The options worth printing: the data ones only by their root."""
    keep = [o for o in opts if '.dataset.' not in o and 'evaluator' not in o
            and not o.startswith('default_hooks.logger.')]
    roots = sorted({o.split('=', 1)[1] for o in opts
                    if o.startswith('train_dataloader.dataset.data_root=')})
    return keep + [f'(data in {r})' for r in roots]


def write_report(args, all_results, inits, cam, started, argv):
    device, versions = machine_info(args)
    now = datetime.datetime.now(datetime.timezone.utc)
    wall = time.time() - started
    runs = [r for res in all_results.values() for m in res.values()
            for r in m]
    if all('start' in r for r in runs):
        span = max(r['end'] for r in runs) - min(r['start'] for r in runs)
        took = (f'the training runs took {span / 60:.1f} min from the first '
                f'start to the last end')
    else:
        took = 'run times of the training runs: see the tables'
    lines = [
        '# Evidence: SB-ResNet against its plain twin',
        '',
        'Generated by `python tools/analysis/evidence.py` '
        f'(`{shlex.join(["tools/analysis/evidence.py"] + argv)}`) on '
        f'{now:%Y-%m-%d %H:%M} UTC; this call {wall / 60:.1f} min, {took}.',
        '',
        f'- Machine: {device}; {args.jobs} runs at a time, '
        f'{args.threads} thread(s) each.',
        f'- Versions: {versions}.',
        '- Design: each task trains the plain model and the SB model with '
        'the same data, data order, augmentation, schedule and optimizer '
        '(configs that differ only in `sb_stages`), and the same initial '
        'weights for every tensor they share (see the tool\'s docstring). '
        'Hyper-parameters were fixed before these runs (docs section '
        '"Recipe" below) and are the same for both models.',
        '- Statistics: mean ± sample std over seeds; the paired difference '
        'is SB − plain for the same seed, with a two-sided 95% t interval '
        '(n − 1 degrees of freedom).',
    ]
    if args.quick:
        lines += ['', '**Quick mode: tiny data and 4 iterations. These '
                  'numbers check the pipeline and mean nothing.**']
    lines += ['', '## Summary', '',
              '| task | metric | plain | SB | SB − plain [95% CI] | '
              'verdict | s/iter plain | s/iter SB | time SB/plain |',
              '|---|---|---|---|---|---|---|---|---|']
    for task, res in all_results.items():
        p = [r['metric'] for r in res['plain']]
        s = [r['metric'] for r in res['sb']]
        (pm, ps), (sm, ss) = summarise(p), summarise(s)
        d, lo, hi, _ = paired(p, s)
        tp = statistics.median(r['s_per_iter'] for r in res['plain'])
        ts = statistics.median(r['s_per_iter'] for r in res['sb'])
        lines.append(
            f'| {TITLES[task]} | {TASKS[task][3]} | {fmt(pm, task)} ± '
            f'{fmt(ps, task)} | {fmt(sm, task)} ± {fmt(ss, task)} | '
            f'{fmt_diff(d, lo, hi)} | {verdict(lo, hi)} | '
            f'{tp:.3f} | {ts:.3f} | {ts / tp:.3f} |')
    lines += ['', '## Conclusions (computed from the tables)', '']
    lines += conclusions(all_results)
    lines += ['', '## Recipe', '']
    for task in all_results:
        lines.append(f'- **{TITLES[task]}**: {recipe(args, task)} ' +
                     RECIPE_NOTES[task].format(
                         final=PILOT_FINAL.format(acc=PILOT_ACC)))
    for task, res in all_results.items():
        plain_cfg, sb_cfg, key, label, chance, _ = TASKS[task]
        p = [r['metric'] for r in res['plain']]
        s = [r['metric'] for r in res['sb']]
        d, lo, hi, diffs = paired(p, s)
        lines += ['', f'## {TITLES[task]}', '',
                  f'Configs: `configs/demo/{plain_cfg}` (plain) and '
                  f'`configs/demo/{sb_cfg}` (SB). Metric: `{key}` from the '
                  f'config\'s evaluator on the validation split after the '
                  f'last iteration; chance {chance} ({CHANCE_NOTE[task]}). '
                  f'Initial weights: {inits[task]["whole"]} SB tensors taken '
                  f'whole and {inits[task]["part"]} in part from the plain '
                  f'model, {inits[task]["own"]} its own.',
                  '']
        lines += ['Options given to both runs: `' +
                  ' '.join(shown_options(task_options(args, task))) + '`.',
                  '']
        lines += ['| seed | plain | SB | SB − plain | s/iter plain | '
                  's/iter SB |', '|---|---|---|---|---|---|']
        for rp, rs, diff in zip(res['plain'], res['sb'], diffs):
            lines.append(
                f'| {rp["seed"]} | {fmt(rp["metric"], task)} | '
                f'{fmt(rs["metric"], task)} | {diff:+.3f} | '
                f'{rp["s_per_iter"]:.3f} | {rs["s_per_iter"]:.3f} |')
        (pm, ps), (sm, ss) = summarise(p), summarise(s)
        lines += [f'| mean ± std | {fmt(pm, task)} ± {fmt(ps, task)} | '
                  f'{fmt(sm, task)} ± {fmt(ss, task)} | '
                  f'{fmt_diff(d, lo, hi)} | | |', '',
                  f'Verdict: {verdict(lo, hi)}.', '',
                  f'![{task} learning curves]'
                  f'({osp.basename(args.fig_dir)}/{task}.png)']
    if cam is not None:
        images, blocks = cam
        lines += ['', '## What the SB model looks at (Grad-CAM, paper '
                  'Fig. 2/4)', '',
                  'Grad-CAM of the predicted class on the trained Pathfinder '
                  'SB model (first seed), for the convolution branch (the '
                  'block\'s `conv2` output) and the spatial-bias branch (its '
                  'bias maps) of the last block of stages 1 and 2 '
                  f'({", ".join(f"`{b}`" for b in blocks)}), over validation '
                  'images ' + ', '.join(f'`{i}`' for i in images) +
                  '. Drawn by `mmsb.visualization.sb_gradcam` (the '
                  '`grad-cam` package); `tools/analysis/visualize_cam.py` '
                  'draws the same for any classifier or segmentor config.',
                  '', f'![Grad-CAM]({osp.basename(args.fig_dir)}/'
                  'cam_pathfinder.png)']
    os.makedirs(osp.dirname(args.out), exist_ok=True)
    with open(args.out, 'w') as f:
        f.write('\n'.join(lines) + '\n')


def recipe(args, task):
    """One line of the recipe both models of ``task`` share."""
    cfg = task_config(args, task)
    opt = cfg.optim_wrapper.optimizer
    ds = cfg.train_dataloader.dataset
    demo = ds.get('demo_cfg') or {}
    size = demo.get('img_size')
    return (f'{opt.type} lr {opt.lr:g}, weight decay '
            f'{opt.get("weight_decay", 0):g}, batch '
            f'{cfg.train_dataloader.batch_size}, '
            f'{cfg.train_cfg.max_iters} iterations'
            + (f', {size}x{size} images' if size else '') + '.')


def conclusions(all_results):
    out = []
    diffs = {}
    for task, res in all_results.items():
        p = [r['metric'] for r in res['plain']]
        s = [r['metric'] for r in res['sb']]
        d, lo, hi, _ = paired(p, s)
        diffs[task] = (d, lo, hi)
        tp = statistics.median(r['s_per_iter'] for r in res['plain'])
        ts = statistics.median(r['s_per_iter'] for r in res['sb'])
        out.append(f'- {TITLES[task]}: SB − plain = {fmt_diff(d, lo, hi)} '
                   f'({TASKS[task][3]}, {len(p)} seeds): '
                   f'{verdict(lo, hi)}. SB costs {100 * (ts / tp - 1):+.0f}% '
                   f'time per training iteration.')
    if 'pathfinder' in diffs and 'control' in diffs:
        def effect(lo, hi):
            return 'better' if lo > 0 else 'worse' if hi < 0 else 'same'

        long_ = effect(*diffs['pathfinder'][1:])
        ctrl = effect(*diffs['control'][1:])
        text = {
            ('better', 'same'): 'SB helps on the long-range task and not '
            'measurably on the control, as the paper\'s claim predicts.',
            ('better', 'better'): 'SB helps on both the long-range task and '
            'the control: this does not single out long-range structure.',
            ('better', 'worse'): 'SB helps on the long-range task and hurts '
            'on the control: its gain is specific to long-range structure, '
            'and it is not free where local evidence suffices.',
            ('same', 'better'): 'SB helps on the control but not measurably '
            'on the long-range task: this does not support the claim that '
            'its gain comes from long-range structure.',
            ('worse', 'better'): 'SB hurts on the long-range task and helps '
            'on the control: the opposite of the paper\'s claim.',
        }.get((long_, ctrl), f'SB is {long_} on the long-range task and '
              f'{ctrl} on the control (95% intervals); at this scale this '
              f'neither supports nor refutes the paper\'s claim.')
        out.append(f'- Long range against control: {text}')
    return out


# -------------------------------------------------------------------- main
def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    started = time.time()

    def log(msg):
        print(f'[evidence {time.time() - started:6.0f}s] {msg}', flush=True)

    if args.force and not args.resume:
        import shutil
        for task in TASKS:
            if osp.isdir(osp.join(args.work_dir, task)):
                log(f'--force: removing the earlier runs in '
                    f'{osp.join(args.work_dir, task)}')
                shutil.rmtree(osp.join(args.work_dir, task))
    os.makedirs(args.work_dir, exist_ok=True)
    os.makedirs(args.fig_dir, exist_ok=True)
    all_results, inits = {}, {}
    for task in args.tasks:
        seeds = args.seeds or (1 if args.quick else TASKS[task][5])
        log(f'{task}: {seeds} seed(s) x 2 models')
        prepare_data(args, task)
        runs = []
        for seed in range(seeds):
            inits[task] = make_init_weights(args, task, seed)
            runs += [Run(args, task, 'plain', seed), Run(args, task, 'sb',
                                                          seed)]
        run_all(args, runs, log)
        res = {'plain': [], 'sb': []}
        for run in runs:
            with open(result_file(run)) as f:
                r = json.load(f)
            r.update(collect(run))  # the logs, as this version reads them
            r.update(seed=run.seed, work_dir=run.work_dir)
            res[run.model].append(r)
        all_results[task] = res
        plot_task(task, res, osp.join(args.fig_dir, f'{task}.png'))
    cam = None
    if 'pathfinder' in all_results and not args.no_cam:
        log('Grad-CAM pictures')
        cam = cam_pictures(args, all_results['pathfinder'],
                           osp.join(args.fig_dir, 'cam_pathfinder.png'))
    with open(osp.join(args.fig_dir, 'results.json'), 'w') as f:
        json.dump(all_results, f, indent=1)
    write_report(args, all_results, inits, cam, started, argv)
    log(f'wrote {args.out}')


if __name__ == '__main__':
    main()
