# Copyright (c) mmsb contributors. All rights reserved.
"""Measured evidence: SB-ResNet against its plain twin, paired and seeded.

    python tools/analysis/evidence.py --tasks pathfinder control --resume
    python tools/analysis/evidence.py --report-only --force   # no training
    python tools/analysis/evidence.py --quick --out /tmp/ev/evidence.md

    python tools/analysis/evidence.py --tasks control --resume --variants
        plain sb sb-pool-only sb-global sb-add sb-kaiming plain-4x sb-4x

Each task (``TASKS``) is a plain config and its SB twin (``configs/demo``,
``configs/evidence``); each variant (``VARIANTS``) a model of the task: one
of the two configs, options, a schedule factor and the variant it is
compared with (the ablations of paper Table 5 and the 4x schedule). A run
(task, variant, seed) trains with ``tools/train.py`` (mmengine's Runner),
is scored by the config's own evaluator, and leaves a small JSON under
``--runs-dir`` (default ``docs/evidence/runs/<task>/<variant>-seed<k>.json``:
metric, curves, time per iteration, options, commit). The report is
rendered from those files alone, through the template beside it
(``docs/evidence/evidence.md.j2``), so runs can be added over several
sittings (``--resume`` skips the runs whose JSON exists) and any reader can
regenerate the tables without training (``--report-only``). One copy
works in a work folder at a time (training, ``--carry``, ``--costs``): a
second one started on the same ``--work-dir`` stops before any work and
names the first one's pid; ``--report-only`` may run beside it.

Pairing: for seed ``s`` every variant gets ``randomness.seed=s`` (same data
order and augmentation) and starts from weights made here: the plain model
is built and initialised under ``torch.manual_seed(s)``; every other variant
is initialised the same way and then takes each tensor it shares with the
plain model from it (widened norms and convs take the shared channels).
The variants of a seed run side by side (``--jobs``), so their times per
iteration are comparable.

The context tasks (``ctx-local``, ``ctx-global``, ``ctx-spatial``:
:mod:`mmsb.data.context`) have two more models, the blocks spatial bias
claims to replace: ``nl`` (mmcv's NonLocal2d) and ``gc`` (ContextBlock);
their metric is the object accuracy beyond the plain network's receptive
field, and ``--costs`` times the four models interleaved
(``context-costs.json``); ``--carry`` trains nothing and probes what the
stored checkpoints' features and bias maps hold per disc
(``context_carry.py``, ``<task>/carry.json``). Their part of the report is
computed by ``evidence_context.py``.

A task with ``probes`` also scores the shortcut probes of
``shortcut_probes.py`` on its data. Statistics: :func:`mmsb.analysis.
paired_stats` (t interval, exact Wilcoxon, sign count, median/IQR,
outliers) and its verdict rule. An existing report or run file is never
overwritten without ``--force``.
"""
import argparse
import copy
import datetime
import fcntl
import functools
import glob
import json
import math
import os
import os.path as osp
import re
import shlex
import statistics
import subprocess
import sys
import time

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DOCS = osp.join(REPO, 'docs')
TEMPLATE = osp.join(DOCS, 'evidence', 'evidence.md.j2')
sys.path.insert(0, osp.dirname(osp.abspath(__file__)))

CONFIGS = osp.join(REPO, 'configs')
# demo_data: the data set's name in mmsb.data.demo (generated), or
# 'fashion' (Fashion-MNIST's files, read by mmsb.data.idx)
TASKS = {
    'pathfinder': dict(
        title='Pathfinder (long range)', demo_data='pathfinder',
        plain='demo/resnet20-cifar_1xb32-2400it_pathfinder-32.py',
        sb='demo/sb-resnet20-cifar_1xb32-2400it_pathfinder-32.py',
        metric='accuracy/top1', label='top-1 (%)', chance=50.0,
        chance_note='balanced classes', seeds=8, probes=True,
        quick=dict(num_train=32, num_val=16, img_size=32)),
    'control': dict(
        title='Shapes (control: local evidence suffices)', demo_data='cls',
        plain='demo/resnet20-cifar_1xb32-600it_demo-cls.py',
        sb='demo/sb-resnet20-cifar_1xb32-600it_demo-cls.py',
        metric='accuracy/top1', label='top-1 (%)', chance=34.0,
        chance_note='majority class', seeds=8, probes=False,
        quick=dict(num_train=24, num_val=9, img_size=32)),
    'fashion': dict(
        title='Fashion-MNIST (real photographs)', demo_data='fashion',
        plain='evidence/resnet20-cifar_1xb128-600it_fashion-mnist.py',
        sb='evidence/sb-resnet20-cifar_1xb128-600it_fashion-mnist.py',
        metric='accuracy/top1', label='top-1 (%)', chance=10.0,
        chance_note='balanced classes', seeds=6, probes=False,
        val_split='the whole 10,000-image test set (the data set has no '
        'validation split)', quick=dict(num_train=16, num_test=8)),
    'det': dict(
        title='Demo detection (Faster R-CNN + FPN)', demo_data='det',
        plain='demo/faster-rcnn_r26_fpn_1xb8-300it_demo-coco-128.py',
        sb='demo/faster-rcnn_sb-r26_fpn_1xb8-300it_demo-coco-128.py',
        metric='coco/bbox_mAP', label='bbox mAP', chance=0.0,
        chance_note='random boxes', seeds=3, probes=False,
        quick=dict(num_train=12, num_val=4, img_size=64)),
    # Context at a distance (mmsb.data.context): dense, through mmseg; the
    # metric is the object accuracy beyond the plain network's receptive
    # field; every model of the family (plain, sb, nl, gc) has a config.
    **{f'ctx-{rule}': dict(
        title=f'Context: {rule} rule{" (control)" if rule == "local" else ""}',
        demo_data='context', family='context',
        **{model: f'evidence/fcn_{prefix}r20-cifar_1xb8-600it_context-'
                  f'{rule}-112.py'
           for model, prefix in (('plain', ''), ('sb', 'sb-'), ('nl', 'nl-'),
                                 ('gc', 'gc-'))},
        metric='obj/acc_beyond', label='object accuracy beyond the field (%)',
        chance=50.0, chance_note='a fair coin per object', seeds=6,
        probes=True, quick=dict(num_train=16, num_val=4, img_size=96))
       for rule in ('local', 'global', 'spatial')},
    'seg': dict(
        title='Demo segmentation (semantic FPN)', demo_data='seg',
        plain='demo/fpn_r26_1xb8-500it_demo-ade-96x96.py',
        sb='demo/fpn_sb-r26_1xb8-500it_demo-ade-96x96.py',
        metric='mIoU', label='mIoU (%)', chance=21.7,
        chance_note='all background', seeds=3, probes=False,
        quick=dict(num_train=12, num_val=4, img_size=64)),
}
# A variant is a model of the task (its 'plain' or 'sb' config), more
# --cfg-options, a schedule factor (the iterations, and every scheduler end
# or checkpoint interval that sits at the last iteration, times `schedule`)
# and the variant it is compared with, paired by seed. The ablations are
# the parts of paper Table 5 that SpatialBias has as options, and the
# initialisation of its mixing conv (docs/evidence/control-mixing-init.md).
KAIMING = [f'model.backbone.sb_cfg.init_cfg.{k}={v}' for k, v in (
    ('type', 'Kaiming'), ('layer', 'Conv1d'), ('mode', 'fan_out'),
    ('nonlinearity', 'relu'), ('bias', 0))]
VARIANTS = {
    'plain': dict(model='plain', title='plain'),
    'sb': dict(model='sb', title='SB (paper defaults)'),
    'sb-pool-only': dict(model='sb', title='pool only: no 1-D mixing',
                         options=['model.backbone.sb_cfg.mixing=none']),
    'sb-global': dict(model='sb', title='P = 1: a global summary, no layout',
                      options=['model.backbone.sb_cfg.pooled_size=1']),
    'sb-add': dict(model='sb', title='add instead of concat',
                   options=['model.backbone.sb_cfg.fusion=add']),
    'sb-kaiming': dict(model='sb', title='mixing conv Kaiming-initialised',
                       options=KAIMING),
    'plain-4x': dict(model='plain', title='plain, 4x schedule', schedule=4),
    'sb-4x': dict(model='sb', title='SB, 4x schedule', schedule=4,
                  base='plain-4x'),
    # the blocks spatial bias claims to replace (tasks that have their
    # configs: the context family)
    'nl': dict(model='nl', title='non-local (NonLocal2d)'),
    'gc': dict(model='gc', title='GCNet (ContextBlock)'),
    'nl-4x': dict(model='nl', title='non-local, 4x schedule', schedule=4,
                  base='plain-4x'),
    'gc-4x': dict(model='gc', title='GCNet, 4x schedule', schedule=4,
                  base='plain-4x'),
}
for _v in VARIANTS.values():
    _v.setdefault('options', [])
    _v.setdefault('schedule', 1)
    _v.setdefault('base', None if _v['model'] == 'plain' else 'plain')
ABLATIONS = ['sb', 'sb-pool-only', 'sb-global', 'sb-add', 'sb-kaiming']
# the fewest pairs at which the exact two-sided Wilcoxon p can be < 0.05
# (2 / 2**n: 0.0625 at 5, 0.031 at 6)
MIN_SEEDS = 6
QUICK_SUBDIR = {'pathfinder': 'pathfinder', 'cls': 'cls', 'det': 'coco',
                'seg': 'ade', 'fashion': 'fashion-mnist', 'context': None}


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description='Train SB-ResNet and its plain twin, paired and seeded, '
        'store each run, and write the evidence report')
    p.add_argument('--tasks', nargs='+', choices=list(TASKS),
                   default=list(TASKS))
    p.add_argument('--variants', nargs='+', choices=list(VARIANTS),
                   default=['plain', 'sb'])
    p.add_argument('--seeds', type=int, default=None,
                   help='seeds per variant (default: the task\'s, 8 for '
                   'pathfinder and control, 3 for det and seg; 1 with '
                   '--quick)')
    p.add_argument('--first-seed', type=int, default=0,
                   help='seeds are first-seed, first-seed + 1, ...')
    p.add_argument('--quick', action='store_true',
                   help='tiny data, a few iterations, one seed: checks the '
                   'whole pipeline in minutes; the numbers mean nothing')
    p.add_argument('--report-only', action='store_true',
                   help='train nothing: render the report from the run '
                   'files in --runs-dir')
    p.add_argument('--cfg-options', nargs='+', default=[],
                   metavar='KEY=VALUE',
                   help='more --cfg-options for every run (all variants)')
    p.add_argument('--out', default=None,
                   help='the report (default: docs/evidence.md; with '
                   '--quick: WORK_DIR/evidence.md); figures go to a folder '
                   'beside it, named after it')
    p.add_argument('--readme', default=None,
                   help='a README whose evidence-summary table to update '
                   '(default: README.md when --out is docs/evidence.md)')
    p.add_argument('--runs-dir', default=None,
                   help='run result files (default: docs/evidence/runs; '
                   'with --quick: WORK_DIR/runs)')
    p.add_argument('--work-dir', default=None,
                   help='checkpoints, logs and init weights (default: '
                   'work_dirs/evidence[-quick])')
    p.add_argument('--jobs', type=int, default=2,
                   help='runs at a time: the variants of a seed go side by '
                   'side (default: 2)')
    p.add_argument('--threads', type=int, default=None,
                   help='torch threads per run (default: cores // jobs)')
    p.add_argument('--device', default='cpu', choices=['cpu', 'cuda'])
    p.add_argument('--cam', action='store_true',
                   help='draw Grad-CAM of the Pathfinder SB model of seed '
                   '--first-seed (needs its checkpoint in --work-dir; also '
                   'with --report-only)')
    p.add_argument('--costs', action='store_true',
                   help='measure the context models\' parameters, FLOPs '
                   'and training step, interleaved, into RUNS_DIR/'
                   'context-costs.json (on a quiet machine: no runs beside '
                   'it)')
    p.add_argument('--carry', action='store_true',
                   help='context tasks: probe what the trained models\' '
                   'features and bias maps hold per disc '
                   '(context_carry.py), for the variants and seeds asked '
                   'whose checkpoints are in --work-dir, into RUNS_DIR/'
                   'TASK/carry.json (no training)')
    p.add_argument('--resume', action='store_true',
                   help='skip the runs whose result file exists')
    p.add_argument('--force', action='store_true',
                   help='overwrite an existing report, and (without '
                   '--resume) existing run files')
    args = p.parse_args(argv)
    if args.seeds is not None and args.seeds < 1:
        p.error(f'--seeds must be >= 1, got {args.seeds}')
    if args.jobs < 1:
        p.error(f'--jobs must be >= 1, got {args.jobs}')
    for opt in args.cfg_options:
        if '=' not in opt:
            p.error(f'--cfg-options takes KEY=VALUE items, got {opt!r}')
    suffix = '-quick' if args.quick else ''
    args.work_dir = osp.abspath(args.work_dir or osp.join(
        REPO, 'work_dirs', f'evidence{suffix}'))
    args.out = osp.abspath(args.out or (
        osp.join(args.work_dir, 'evidence.md') if args.quick else
        osp.join(DOCS, 'evidence.md')))
    args.runs_dir = osp.abspath(args.runs_dir or (
        osp.join(args.work_dir, 'runs') if args.quick else
        osp.join(DOCS, 'evidence', 'runs')))
    args.fig_dir = osp.splitext(args.out)[0]
    if osp.exists(args.out) and not args.force:
        p.error(f'{args.out} exists; pass --force to overwrite it (or --out '
                f'elsewhere)')
    if not (args.report_only or args.resume or args.force):
        done = [osp.relpath(f, args.runs_dir) for r in plan(args)
                for f in [r.result] if osp.isfile(f)]
        if done:
            p.error(f'{args.runs_dir} holds results of these runs already '
                    f'({", ".join(done[:4])}{", ..." if len(done) > 4 else ""}'
                    f'); pass --resume to keep them or --force to run them '
                    f'again')
    for task in args.tasks:
        missing = [v for v in args.variants
                   if VARIANTS[v]['model'] not in TASKS[task]]
        if missing and not args.report_only:
            p.error(f'task {task} has no config for variant(s) '
                    f'{", ".join(missing)} (its models: '
                    f'{", ".join(m for m in ("plain", "sb", "nl", "gc") if m in TASKS[task])})')
    if args.threads is None:
        args.threads = max(1, (os.cpu_count() or 1) // args.jobs)
    return args


# ----------------------------------------------------------------- runs
class Run:
    """One training run: a task, a variant, a seed."""

    def __init__(self, args, task, variant, seed):
        self.task, self.variant, self.seed = task, variant, seed
        self.config = config_path(task, variant)
        self.work_dir = osp.join(args.work_dir, task, f'{variant}-seed{seed}')
        self.init = osp.join(args.work_dir, task, 'init',
                             f'{variant}-seed{seed}.pth')
        self.options = [f'randomness.seed={seed}', f'load_from={self.init}']
        self.options += run_options(args, task, variant)
        self.result = osp.join(args.runs_dir, task,
                               f'{variant}-seed{seed}.json')

    def command(self):
        return [sys.executable, osp.join(REPO, 'tools', 'train.py'),
                self.config, '--work-dir', self.work_dir,
                '--cfg-options'] + self.options


def plan(args):
    runs = []
    for task in args.tasks:
        n = args.seeds or (1 if args.quick else TASKS[task]['seeds'])
        for seed in range(args.first_seed, args.first_seed + n):
            runs += [Run(args, task, v, seed) for v in args.variants]
    return runs


def config_path(task, variant='plain'):
    return osp.join(CONFIGS, TASKS[task][VARIANTS[variant]['model']])


def quick_root(args, task):
    # the context rules share a generator, not their data
    sub = QUICK_SUBDIR[TASKS[task]['demo_data']] or task
    return osp.join(args.work_dir, 'data', sub) + '/'


def run_options(args, task, variant='plain'):
    """The ``--cfg-options`` of a run of ``task`` and ``variant`` (all but
    the seed and the initial weights)."""
    opts = []
    if args.quick:
        root = quick_root(args, task)
        opts += ['train_cfg.max_iters=4', 'default_hooks.logger.interval=1',
                 'default_hooks.checkpoint.interval=4',
                 'train_dataloader.batch_size=2',
                 'val_dataloader.batch_size=2',
                 'test_dataloader.batch_size=2']
        for split in ('train', 'val', 'test'):
            opts.append(f'{split}_dataloader.dataset.data_root={root}')
            if TASKS[task]['demo_data'] != 'fashion':  # generated data
                opts += [f'{split}_dataloader.dataset.demo_cfg.{k}={v}'
                         for k, v in TASKS[task]['quick'].items()]
        if task == 'det':
            ann = root + 'annotations/instances_val2017.json'
            opts += [f'val_evaluator.ann_file={ann}',
                     f'test_evaluator.ann_file={ann}']
        if TASKS[task]['demo_data'] == 'context':  # [IoUMetric, objects]
            opts += [f'{e}_evaluator.1.meta_file={root}meta-val.json'
                     for e in ('val', 'test')]
    opts += list(args.cfg_options)
    spec = VARIANTS[variant]
    opts += spec['options']
    cfg = _config(config_path(task, variant))
    if opts:
        cfg = copy.deepcopy(cfg)
        cfg.merge_from_dict(_parsed(opts))
    base = cfg.train_cfg.max_iters  # with every option so far
    iters = base * spec['schedule']
    if spec['schedule'] != 1:
        opts.append(f'train_cfg.max_iters={iters}')
        scheds = cfg.get('param_scheduler') or []
        for i, sched in enumerate(
                scheds if isinstance(scheds, list) else [scheds]):
            if sched.get('end') == base:
                opts.append(f'param_scheduler.{i}.end={iters}')
        if cfg.default_hooks.checkpoint.get('interval') == base:
            opts.append(f'default_hooks.checkpoint.interval={iters}')
    # validate 4 times; log metrics at their iteration (mmengine logs them
    # at the epoch, which an iteration-based loop keeps at 0)
    return opts + [f'train_cfg.val_interval={max(1, iters // 4)}',
                   'default_hooks.logger.log_metric_by_epoch=False']


def task_config(args, task, variant='plain'):
    """A variant's config with the options its runs get."""
    cfg = copy.deepcopy(_config(config_path(task, variant)))
    cfg.merge_from_dict(_parsed(run_options(args, task, variant)))
    return cfg


@functools.lru_cache(maxsize=None)
def _config(path):
    """The config file, parsed once (callers copy it before changing it)."""
    from mmengine.config import Config
    return Config.fromfile(path)


def prepare_data(args, task):
    """Generate the task's data once, before its runs start side by side;
    for Fashion-MNIST check that the files are there (or, with --quick,
    write a tiny stand-in)."""
    from mmsb.data.demo import generate_if_missing
    from mmsb.data.idx import FILES, write_tiny_fashion_mnist
    cfg = task_config(args, task)
    if TASKS[task]['demo_data'] == 'fashion':
        root = osp.join(REPO, cfg.train_dataloader.dataset.data_root)
        if args.quick:
            write_tiny_fashion_mnist(root, **TASKS[task]['quick'])
        elif not all(osp.isfile(osp.join(root, f)) for f in FILES):
            # `make data-fashion`: fetches them, or says in one line how
            subprocess.run(['bash', osp.join(REPO, 'tools', 'data',
                                             'fashion_mnist.sh'), root])
        missing = [f for f in FILES if not osp.isfile(osp.join(root, f))]
        if missing:
            raise SystemExit(
                f'error: {task} needs Fashion-MNIST in {root} (missing '
                f'{", ".join(missing)}): see `make data-fashion`')
        return cfg
    for split in ('train', 'val'):
        ds = cfg[f'{split}_dataloader'].dataset
        generate_if_missing(TASKS[task]['demo_data'], ds.data_root,
                            **(ds.get('demo_cfg') or {}))
    return cfg


def make_init_weights(args, task, seed, variants):
    """Initial weights of the variants of a seed (see the docstring)."""
    import torch
    from mmengine.logging import MMLogger
    from mmengine.registry import MODELS, init_default_scope

    import mmsb  # noqa: F401  registers the backbones
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel('WARNING')  # init_weights logs every tensor
    states = {}
    try:
        for v in ['plain'] + [v for v in variants if v != 'plain']:
            cfg = task_config(args, task, v)
            init_default_scope(cfg.get('default_scope', 'mmengine'))
            torch.manual_seed(seed)
            model = MODELS.build(cfg.model)
            model.init_weights()
            states[v] = model.state_dict()
    finally:
        logger.setLevel(level)
    plain = states['plain']
    for v, state in states.items():
        for key, value in state.items():
            src = plain.get(key)
            if v == 'plain' or src is None or src.dim() != value.dim():
                continue
            if not all(a <= b for a, b in zip(src.shape, value.shape)):
                raise ValueError(f'{task}: {key} is {tuple(src.shape)} in '
                                 f'the plain model and {tuple(value.shape)} '
                                 f'in {v}')
            value[tuple(slice(0, n) for n in src.shape)] = src
    os.makedirs(osp.join(args.work_dir, task, 'init'), exist_ok=True)
    for v in variants:
        torch.save(dict(state_dict=states[v], meta=dict(seed=seed)),
                   osp.join(args.work_dir, task, 'init', f'{v}-seed{seed}.pth'))


def run_all(args, runs, log):
    """Run ``runs`` ``args.jobs`` at a time; store each finished run's
    result file at once; a failed run stops everything."""
    env = dict(os.environ)
    env['PYTHONPATH'] = REPO + os.pathsep + env.get('PYTHONPATH', '')
    for var in ('OMP_NUM_THREADS', 'MKL_NUM_THREADS'):
        env[var] = str(args.threads)
    if args.device == 'cpu':
        env['CUDA_VISIBLE_DEVICES'] = ''
    pending, active = list(runs), []
    try:
        _run_all(args, env, pending, active, log)
    except BaseException:
        # no training outlives this copy (nor its lock on the work folder)
        for run in active:
            run.proc.kill()
            run.proc.wait()
        raise


def _run_all(args, env, pending, active, log):
    while pending or active:
        while pending and len(active) < args.jobs:
            run = pending.pop(0)
            os.makedirs(run.work_dir, exist_ok=True)
            run.logf = open(osp.join(run.work_dir, 'train.log'), 'w')
            run.proc = subprocess.Popen(run.command(), stdout=run.logf,
                                        stderr=subprocess.STDOUT, env=env,
                                        cwd=REPO)
            run.start = time.time()
            active.append(run)
            log(f'  {run.task} {run.variant} seed {run.seed}: started')
        time.sleep(1)
        for run in [r for r in active if r.proc.poll() is not None]:
            active.remove(run)
            run.logf.close()
            if run.proc.returncode != 0:  # run_all stops the others
                with open(osp.join(run.work_dir, 'train.log')) as f:
                    tail = f.read()[-3000:]
                raise RuntimeError(
                    f'{run.task} {run.variant} seed {run.seed} failed (exit '
                    f'{run.proc.returncode}); command:\n'
                    f'{shlex.join(run.command())}\n{tail}')
            res = collect(run)
            res.update(wall_s=round(time.time() - run.start, 1),
                       threads=args.threads, device=args.device)
            res.update(provenance(args, run))
            os.makedirs(osp.dirname(run.result), exist_ok=True)
            with open(run.result, 'w') as f:
                json.dump(res, f, indent=1)
            log(f'  {run.task} {run.variant} seed {run.seed}: '
                f'{TASKS[run.task]["metric"]} {res["metric"]:.4g} '
                f'({res["wall_s"]:.0f}s)')


def collect(run):
    """Metric, time per iteration and curves from mmengine's scalars.json
    (the newest timestamped folder of the run)."""
    stamps = sorted(d for d in os.listdir(run.work_dir)
                    if osp.isfile(osp.join(run.work_dir, d, 'vis_data',
                                           'scalars.json')))
    if not stamps:
        raise RuntimeError(f'{run.work_dir}: no vis_data/scalars.json')
    path = osp.join(run.work_dir, stamps[-1], 'vis_data', 'scalars.json')
    key = TASKS[run.task]['metric']
    train, val = [], []
    last = {}
    with open(path) as f:
        for line in f:
            rec = json.loads(line)
            if key in rec:
                val.append([rec['step'], rec[key]])
                last = rec
            elif 'loss' in rec:
                train.append((rec.get('iter', rec.get('step')), rec['loss'],
                              rec.get('time')))
    if not val:
        raise RuntimeError(f'{path}: no {key} was logged')
    times = [t for _, _, t in train[1:] if t is not None] or \
        [t for _, _, t in train if t is not None]
    res = dict(task=run.task, variant=run.variant, seed=run.seed,
               metric_key=key, metric=val[-1][1], val_curve=val,
               loss_curve=[[i, round(loss, 5)] for i, loss, _ in train],
               s_per_iter=statistics.median(times) if times else None)
    if TASKS[run.task].get('family') == 'context':
        # every metric of the last validation (by distance, IoU)
        res['metrics'] = {k: v for k, v in last.items()
                          if k not in ('step', 'time', 'data_time')}
    return res


def provenance(args, run):
    cfg = task_config(args, run.task, run.variant)
    commit = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'],
                            cwd=REPO, capture_output=True,
                            text=True).stdout.strip() or 'unknown'
    dirty = subprocess.run(['git', 'status', '--porcelain', '--', 'mmsb',
                            'configs', 'tools'], cwd=REPO,
                           capture_output=True, text=True).stdout.strip()
    return dict(
        config=osp.relpath(run.config, REPO),
        options=[o for o in run.options if not o.startswith('load_from=')],
        data=dict(cfg.train_dataloader.dataset.get('demo_cfg') or {}),
        commit=commit + ('+changes' if dirty else ''),
        finished=datetime.datetime.now(datetime.timezone.utc).strftime(
            '%Y-%m-%d %H:%M UTC'),
        machine=machine())


def machine():
    import platform

    import torch
    from _machine import cpu_name
    cpu = cpu_name(default=platform.machine())
    return (f'{cpu}, {os.cpu_count()} cores; Python '
            f'{platform.python_version()}, torch {torch.__version__}')


def run_probes(args, task, log):
    """Score the shortcut probes on the task's data; store them beside the
    runs (``probes.json``)."""
    from shortcut_probes import (CONTEXT_PROBES, PROBES,
                                 config_context_probes, config_probes)
    path = osp.join(args.runs_dir, task, 'probes.json')
    if osp.isfile(path) and args.resume:
        log(f'  {task} probes: done before, reused (--resume)')
        return
    context = TASKS[task].get('family') == 'context'
    model = 'plain' if context else 'sb'
    cfg = task_config(args, task, model)
    res = (config_context_probes if context else config_probes)(
        config_path(task, model), _parsed(run_options(args, task, model)))
    if context:  # the config's field, measured again from its model
        from evidence_context import context_field
        res['field_measured'] = context_field(cfg)
    res.update(data=dict(cfg.train_dataloader.dataset.demo_cfg),
               commit=provenance(args, Run(args, task, model, 0))['commit'])
    os.makedirs(osp.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        json.dump(res, f, indent=1)
    if context:
        log(f'  {task} probes (beyond / within the field): ' + ', '.join(
            f'{k} {res[k]["beyond"]:.1f} / {res[k]["within"]:.1f}%'
            for k in CONTEXT_PROBES))
    else:
        log(f'  {task} probes: ' + ', '.join(
            f'{k} {res[k]:.1f}%' for k in PROBES))


def run_carry(args, task, log):
    """``--carry``: probe the stored checkpoints of the task's runs asked
    for (``context_carry.carry``); keep them in ``carry.json`` beside the
    runs, by variant and seed."""
    from context_carry import carry
    path = osp.join(args.runs_dir, task, 'carry.json')
    store = {}
    if osp.isfile(path):
        with open(path) as f:
            store = json.load(f)
    for run in plan(args):
        if run.task != task:
            continue
        key = f'{run.variant}-seed{run.seed}'
        ckpts = sorted(glob.glob(osp.join(run.work_dir, 'iter_*.pth')),
                       key=lambda p: int(re.findall(r'\d+',
                                                    osp.basename(p))[0]))
        if not ckpts:
            log(f'  {task} {key} carry: no checkpoint in {run.work_dir}, '
                f'skipped')
            continue
        if key in store and args.resume:
            log(f'  {task} {key} carry: done before, reused (--resume)')
            continue
        res = carry(run.config, ckpts[-1], cfg_options=_parsed(
            run_options(args, task, run.variant)))
        if osp.isfile(run.result):  # the model's own accuracy, beside
            with open(run.result) as f:
                res['model'] = json.load(f).get('metrics', {})
        res.update(variant=run.variant, seed=run.seed,
                   checkpoint=osp.relpath(ckpts[-1], REPO),
                   commit=provenance(args, run)['commit'])
        store[key] = res
        os.makedirs(osp.dirname(path), exist_ok=True)
        with open(path, 'w') as f:
            json.dump(store, f, indent=1, sort_keys=True)
        log(f'  {task} {key} carry (beyond / within the field): ' + ', '.join(
            f'{k} {v["beyond"]:.1f} / {v["within"]:.1f}%'
            for k, v in res['probes'].items() if k in ('features', 'sb')))


def measure_context_costs(args, log):
    """``--costs``: the context models of the first context task asked
    for (the same models on every rule), timed interleaved."""
    from evidence_context import COSTS_FILE, MODELS, measure_costs
    task = next((t for t in args.tasks
                 if TASKS[t].get('family') == 'context'), 'ctx-spatial')
    log(f'costs of {", ".join(MODELS)} on {task} (interleaved)')
    cfgs = {m: task_config(args, task, m) for m in MODELS}
    prepare_data(args, task)  # the data preprocessor's config, as the runs
    res = measure_costs(cfgs, rounds=2 if args.quick else 15,
                        warmup=1 if args.quick else 2)
    res.update(task=task, configs={m: osp.relpath(config_path(task, m), REPO)
                                   for m in MODELS},
               machine=machine(), commit=provenance(
                   args, Run(args, task, 'plain', 0))['commit'],
               measured=datetime.datetime.now(
                   datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC'))
    path = osp.join(args.runs_dir, COSTS_FILE)
    os.makedirs(args.runs_dir, exist_ok=True)
    with open(path, 'w') as f:
        json.dump(res, f, indent=1)
    log('  ' + ', '.join(f'{m} {c["s_per_iter"]:.3f} s/iter'
                         for m, c in res['models'].items()))


def _parsed(opts):
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser()
    parser.add_argument('--o', nargs='+', action=DictAction)
    return parser.parse_args(['--o'] + opts).o


# --------------------------------------------------------------- report
def load_runs(runs_dir):
    """``{task: {variant: [run, ...] by seed}}`` and ``{task: probes}``
    from the result files."""
    runs, probes = {}, {}
    for path in sorted(glob.glob(osp.join(runs_dir, '*', '*.json'))):
        with open(path) as f:
            rec = json.load(f)
        task = osp.basename(osp.dirname(path))
        if osp.basename(path) == 'probes.json':
            probes[task] = rec
            continue
        if osp.basename(path) == 'carry.json':  # load_carry's
            continue
        runs.setdefault(task, {}).setdefault(rec['variant'], []).append(rec)
    for task in runs.values():
        for recs in task.values():
            recs.sort(key=lambda r: r['seed'])
    return runs, probes


def load_carry(runs_dir):
    """``{task: {'<variant>-seed<k>': carry probes}}`` (``--carry``)."""
    out = {}
    for path in sorted(glob.glob(osp.join(runs_dir, '*', 'carry.json'))):
        with open(path) as f:
            out[osp.basename(osp.dirname(path))] = json.load(f)
    return out


def compare(by_variant, variant, base):
    """Paired statistics of ``variant`` against ``base`` over the seeds
    both have, or None."""
    from mmsb.analysis import paired_stats
    ref = {r['seed']: r for r in by_variant.get(base, [])}
    pairs = [(ref[r['seed']], r) for r in by_variant.get(variant, [])
             if r['seed'] in ref]
    if not pairs:
        return None
    stats = paired_stats([b['metric'] for b, _ in pairs],
                         [v['metric'] for _, v in pairs])
    seeds = [b['seed'] for b, _ in pairs]
    tb = statistics.median(b['s_per_iter'] for b, _ in pairs)
    tv = statistics.median(v['s_per_iter'] for _, v in pairs)
    return dict(
        variant=variant, base=base, title=VARIANTS[variant]['title'],
        stats=stats, pairs=pairs, time_ratio=tv / tb, s_plain=tb,
        s_variant=tv,
        outlier_seeds=[f'{name} seed {seeds[i]}' for name, key in
                       ((base, 'base'), (variant, 'method'))
                       for i in stats[key]['outliers']],
        options=[o for o in pairs[0][1]['options']
                 if not o.startswith(('randomness.seed=',
                                      'default_hooks.logger.'))
                 and '.dataset.' not in o and 'evaluator.' not in o],
        data=pairs[0][1]['data'],
        commits=sorted({r['commit'] for pr in pairs for r in pr}))


def reading(effect, vs_plain, vs_sb, n):
    """Whether an ablation keeps SB's effect on a task, in words, from the
    verdicts of SB - plain (``effect``), variant - plain and variant - SB,
    all on the ``n`` seeds the variant ran."""
    if n < MIN_SEEDS:
        return (f'{n} of the {MIN_SEEDS} seeds a verdict needs: too few '
                f'to say')
    if effect == 'not established':
        return 'SB\'s own effect is not established here: nothing to keep'
    lost = 'worse' if effect == 'better' else 'better'
    if vs_sb == 'not established':
        if vs_plain == effect:
            return 'keeps it'
        if vs_plain == lost:
            return 'reverses it against plain; not told apart from SB'
        return 'not told apart from SB nor from plain'
    if vs_sb == lost:
        if vs_plain == 'not established':
            return 'loses it'
        return 'reverses it' if vs_plain == lost else 'keeps part of it'
    return 'more than SB'


def schedule_pair(by_variant, model, base='plain'):
    """``model`` against ``base`` at 1x and at 4x the schedule (the
    variants ``<model>-4x`` and ``<base>-4x``), both on the seeds all four
    ran, so the two rows pair the same seeds; None without such a seed."""
    names = (model, base, f'{model}-4x', f'{base}-4x')
    seeds = set.intersection(*({r['seed'] for r in by_variant.get(v, [])}
                               for v in names))
    if not seeds:
        return None
    on = {k: [r for r in recs if r['seed'] in seeds]
          for k, recs in by_variant.items()}
    return compare(on, model, base), compare(on, names[2], names[3])


def schedule_reading(one, four, who='SB'):
    """Whether ``who`` - plain is a difference of how fast the models learn
    or of where they end, in words, from its paired statistics at 1x
    (``one``) and 4x (``four``) the schedule on the same seeds."""
    n = four['n']
    if n >= MIN_SEEDS:
        a, b = one['verdict'], four['verdict']
        if a != 'not established' and b == a:
            return (f'{who} {a} at 1x and at 4x: the difference stays with '
                    f'four times the training')
        if a != 'not established' and b == 'not established':
            return (f'{who} {a} at 1x, not established at 4x: the difference '
                    f'fades with training, so at 1x it is at least partly '
                    f'one of how fast the models learn')
        if a == 'not established' and b != 'not established':
            return (f'not established at 1x, {who} {b} at 4x: the difference '
                    f'shows only with longer training')
        if a == 'not established':
            return 'not established at either length'
        return f'{who} {a} at 1x and {b} at 4x'

    if min(n, one['n']) < 2:
        return 'one seed: no interval to read yet'
    if any(math.isnan(d[k]) for d in (one, four) for k in ('lo', 'hi')):
        return 'no interval to read (a metric is missing)'

    def side(d):  # which side of 0 the t interval lies on, 0 if across
        return 1 if d['lo'] > 0 else -1 if d['hi'] < 0 else 0

    s1, s4 = side(one), side(four)
    words = (f'{n} seeds allow no rank-test verdict; by the 95% t intervals '
             f'alone, ')
    if s1 and s4 == s1:
        return words + ('the gap stays at 4x (both intervals exclude 0 on '
                        'the same side)')
    if s1 and s4 == -s1:
        return words + 'the gap reverses at 4x'
    if s1 and abs(four['mean']) < abs(one['mean']) / 2:
        return words + ('the gap shrinks to less than half at 4x and its '
                        'interval includes 0: at 1x it is at least partly '
                        'one of how fast the models learn')
    if not s1 and s4:
        return words + 'a gap shows only at 4x'
    if not s1:
        return words + ('neither interval excludes 0: no gap shown at '
                        'either length (gaps within the intervals are not '
                        'ruled out)')
    return words + 'too few seeds to tell'


def learnt(recs, chance, num_val):
    """Which runs of a balanced two-class task learnt it: scored more than 3
    binomial standard errors of a chance-level classifier on ``num_val``
    validation images above chance. ``others_within``: every other run lies
    within that band of chance (its score is sampling noise)."""
    se = 100 * (0.25 / num_val)**0.5
    line = chance + 3 * se
    return dict(se=se, line=line, n=len(recs),
                seeds=[(r['seed'], r['metric']) for r in recs
                       if r['metric'] > line],
                others_within=all(abs(r['metric'] - chance) <= 3 * se
                                  for r in recs if r['metric'] <= line))


def task_summary(task, by_variant, probes):
    """Everything the template shows of one task."""
    spec = TASKS[task]
    out = dict(spec, name=task, comparisons=[], ablations=[],
               schedule=[])
    for variant, v in VARIANTS.items():
        if v['base'] and variant in by_variant:
            comp = compare(by_variant, variant, v['base'])
            if comp:
                out['comparisons'].append(comp)
    by_name = {c['variant']: c for c in out['comparisons']}
    out['main'] = by_name.get('sb')
    if out['main']:
        for variant in ABLATIONS[1:]:
            if variant not in by_name:
                continue
            # SB's effect on the seeds this variant ran
            seeds = {r['seed'] for r in by_variant[variant]}
            on_seeds = {k: [r for r in recs if r['seed'] in seeds]
                        for k, recs in by_variant.items()}
            effect = compare(on_seeds, 'sb', 'plain')
            vs_sb = compare(by_variant, variant, 'sb')
            comp = by_name[variant]
            out['ablations'].append(dict(
                comp, vs_sb=vs_sb, sb_effect=effect, reading=reading(
                    effect['stats']['diff']['verdict'] if effect else
                    'not established', comp['stats']['diff']['verdict'],
                    vs_sb and vs_sb['stats']['diff']['verdict'],
                    comp['stats']['diff']['n'])))
        pair = schedule_pair(by_variant, 'sb')
        if pair:
            one, four = pair
            out['schedule'] = [one, four]
            out['schedule_reading'] = schedule_reading(
                one['stats']['diff'], four['stats']['diff'])
    if out['main'] and spec['chance'] == 50.0 and \
            out['main']['data'].get('num_val'):
        # a balanced two-class task: which seeds learnt it
        num_val = out['main']['data']['num_val']
        base, method = (learnt(recs, spec['chance'], num_val)
                        for recs in zip(*out['main']['pairs']))
        out['learnt'] = dict(
            se=base['se'], line=base['line'], base=base['seeds'],
            method=method['seeds'],
            others_within=base['others_within'] and method['others_within'])
        # and of every variant, on all the seeds it ran
        out['learnt']['by_variant'] = [
            dict(variant=v, title=VARIANTS[v]['title'],
                 **learnt(by_variant[v], spec['chance'], num_val))
            for v in VARIANTS if v in by_variant]
    out['probes'] = probes.get(task)
    if out['probes']:
        out['probe_max_gap'] = max(
            abs(out['probes'][k] - spec['chance'])
            for k in ('markers', 'pooled', 'ink'))
    return out


def plot_task(summary, path, comparisons=None):
    """Training loss and validation metric of every run of the comparisons
    (default: SB against plain), one line per seed."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
    colours = {'plain': 'tab:blue', 'sb': 'tab:red', 'plain-4x': 'tab:cyan',
               'sb-4x': 'tab:orange'}
    labelled = set()
    for comp in comparisons or [summary['main']]:
        for pair in comp['pairs']:
            for rec in pair:
                v = rec['variant']
                label = None if v in labelled else v
                labelled.add(v)
                c = colours.get(v, 'tab:green')
                if rec['loss_curve']:
                    ax1.plot(*zip(*rec['loss_curve']), color=c, alpha=0.5,
                             lw=1, label=label)
                ax2.plot(*zip(*rec['val_curve']), color=c, alpha=0.6, lw=1,
                         marker='o', ms=3, label=label)
    ax1.set(xlabel='iteration', ylabel='training loss', yscale='log')
    ax2.set(xlabel='iteration', ylabel=summary['label'])
    ax2.axhline(summary['chance'], color='grey', ls=':', lw=1,
                label=f'chance ({summary["chance_note"]})')
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f'{summary["title"]}: one line per seed')
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(args, argv):
    import jinja2
    from evidence_context import (carry_rows, cost_rows, load_costs,
                                  nl_share, plot_curves)
    from evidence_context import task_summary as context_summary
    runs, probes = load_runs(args.runs_dir)
    family = {t: TASKS[t].get('family') for t in runs if t in TASKS}
    tasks = [task_summary(t, runs[t], probes) for t in TASKS
             if t in runs and not family[t]]
    tasks = [t for t in tasks if t['main']]
    titles = {v: spec['title'] for v, spec in VARIANTS.items()}
    context = [context_summary(t, TASKS[t], runs[t], probes, compare,
                               titles, (schedule_pair, schedule_reading))
               for t in TASKS if t in runs and family[t] == 'context']
    if not tasks and not context:
        return False
    os.makedirs(args.fig_dir, exist_ok=True)
    for t in context:
        t['figure'] = f'{osp.basename(args.fig_dir)}/{t["name"]}.png'
        plot_curves(t, osp.join(args.fig_dir, f'{t["name"]}.png'))
    carried = load_carry(args.runs_dir)
    for t in context:
        t['carry'] = carry_rows(carried.get(t['name'], {}), titles)
    costs = load_costs(args.runs_dir)
    crows = cost_rows(costs, context)
    context = dict(
        tasks={t['rule']: t for t in context}, task_list=context,
        costs=costs, cost_rows=crows,
        shares={(who, t['rule']): nl_share(crows, t['rule'], who)
                for who in ('sb', 'gc') for t in context}) \
        if context else None
    for t in tasks:
        t['figure'] = f'{osp.basename(args.fig_dir)}/{t["name"]}.png'
        plot_task(t, osp.join(args.fig_dir, f'{t["name"]}.png'))
        if t['schedule']:
            t['schedule_figure'] = (f'{osp.basename(args.fig_dir)}/'
                                    f'{t["name"]}-schedule.png')
            plot_task(t, osp.join(args.fig_dir,
                                  f'{t["name"]}-schedule.png'),
                      t['schedule'])
    pilots = []
    for path in sorted(glob.glob(osp.join(osp.dirname(args.runs_dir),
                                          'pilots', '*', '*', '*.json'))):
        with open(path) as f:
            rec = json.load(f)
        pilots.append(dict(name=path.split(os.sep)[-3],
                           pilot_task=path.split(os.sep)[-2], **rec))
    # pilots of other tasks: recipe checks of the plain model, listed as
    # they are under the task's recipe
    recipe_pilots = {}
    for rec in pilots:
        if rec['pilot_task'] != 'pathfinder' and 'variant' in rec:
            recipe_pilots.setdefault(rec['pilot_task'], []).append(rec)
    pilots = [rec for rec in pilots if rec['pilot_task'] == 'pathfinder']
    by_name = {}
    for rec in pilots:
        entry = by_name.setdefault(rec['name'], dict(name=rec['name']))
        if 'variant' in rec:
            entry.update(plain=rec['metric'], iters=rec['val_curve'][-1][0],
                         note=rec.get('stopped', ''),
                         data_text=', '.join(
                             f'{k}={v}' for k, v in sorted(rec['data'].items())
                             if k not in ('num_train', 'num_val',
                                          'img_size')))
        else:
            entry.setdefault('note', rec.get('note', ''))
            entry.update(probes=rec, data_text=', '.join(
                f'{k}={v}' for k, v in sorted(rec['data'].items())
                if k not in ('num_train', 'num_val', 'img_size')),
                probe_gap=max(abs(rec[k] - 50) for k in
                              ('markers', 'pooled', 'ink')))
    pilots = sorted(by_name.values(), key=lambda e: e['name'])
    if 'pathfinder' in runs and pilots:
        used = ', '.join(
            f'{k}={v}' for k, v in sorted(
                runs['pathfinder']['plain'][0]['data'].items())
            if k not in ('num_train', 'num_val', 'img_size'))
        for pl in pilots:
            pl['used'] = pl.get('data_text') == used
    cam = osp.join(args.fig_dir, 'cam_pathfinder.png')
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(
        osp.dirname(TEMPLATE)), undefined=jinja2.StrictUndefined,
        trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    text = env.get_template(osp.basename(TEMPLATE)).render(
        tasks={t['name']: t for t in tasks}, task_list=tasks,
        context=context,
        pilots=pilots, recipe_pilots=recipe_pilots,
        quick=args.quick, command=shlex.join(
            ['tools/analysis/evidence.py'] + argv),
        runs_dir=osp.relpath(args.runs_dir, osp.dirname(args.out)),
        fig_dir=osp.basename(args.fig_dir),
        cam=(osp.basename(args.fig_dir) + '/cam_pathfinder.png')
        if osp.isfile(cam) else None, cam_seed=_cam_seed(cam),
        now=datetime.datetime.now(datetime.timezone.utc).strftime(
            '%Y-%m-%d %H:%M UTC'))
    with open(args.out, 'w') as f:
        f.write(text)
    readme = args.readme or (osp.join(REPO, 'README.md') if args.out ==
                             osp.join(DOCS, 'evidence.md') else None)
    if readme:
        update_readme(env.get_template(README_TEMPLATE).render(
            task_list=tasks, context=context), readme)


README_TEMPLATE = 'readme.md.j2'
README_MARKS = ('<!-- evidence-summary: rendered by tools/analysis/evidence.py '
                'from docs/evidence/runs -->', '<!-- evidence-summary: end -->')


def readme_block(path=osp.join(REPO, 'README.md')):
    """The README's rendered evidence table (between its marks), and the
    text around it."""
    with open(path, encoding='utf-8') as f:
        text = f.read()
    start, end = (text.find(m) for m in README_MARKS)
    if start < 0 or end < start:
        raise ValueError(f'{path}: the marks {README_MARKS} of the evidence '
                         f'table are missing')
    start += len(README_MARKS[0]) + 1
    return text[:start], text[start:end], text[end:]


def update_readme(table, path=osp.join(REPO, 'README.md')):
    head, _, tail = readme_block(path)
    with open(path, 'w', encoding='utf-8') as f:
        f.write(head + table + tail)


def _cam_seed(path):
    """The seed whose model :func:`cam_pictures` drew into ``path`` (kept
    beside it), or None."""
    try:
        with open(path + '.json') as f:
            return json.load(f)['seed']
    except (OSError, ValueError, KeyError):
        return None


def cam_pictures(args, path):
    """Grad-CAM of the conv and SB branch of the trained Pathfinder SB
    model of seed ``--first-seed``, last block of stages 1 and 2, on
    validation images
    (two per class)."""
    import mmcv

    from visualize_cam import draw_gradcam_grid, sb_gradcam

    from mmsb.apis import load_model
    run = Run(args, 'pathfinder', 'sb', args.first_seed)
    ckpts = sorted(glob.glob(osp.join(run.work_dir, 'iter_*.pth')),
                   key=lambda p: int(p.rsplit('_', 1)[1].split('.')[0]))
    if not ckpts:
        raise SystemExit(f'error: --cam needs a checkpoint in {run.work_dir}')
    cfg = task_config(args, 'pathfinder', 'sb')
    root = cfg.val_dataloader.dataset.data_root
    model = load_model(cfg, ckpts[-1])
    blocks = ['backbone.layer1.1', 'backbone.layer2.1']
    rows = []
    for cls in ('connected', 'disconnected'):
        for f in sorted(glob.glob(osp.join(root, 'val', cls, '*.png')))[:2]:
            img = mmcv.imread(f)
            rows.append((f'{cls} {osp.basename(f)}', mmcv.bgr2rgb(img),
                         sb_gradcam(model, img, blocks)))
    classes = (getattr(model, 'dataset_meta', None) or {}).get('classes')
    os.makedirs(osp.dirname(path), exist_ok=True)
    mmcv.imwrite(mmcv.rgb2bgr(draw_gradcam_grid(rows, blocks, classes)),
                 path)
    with open(path + '.json', 'w') as f:
        json.dump(dict(seed=args.first_seed, checkpoint=osp.relpath(
            ckpts[-1], REPO)), f)


def hold_work_dir(work_dir):
    """Lock ``work_dir`` until the returned file is closed (``main`` closes
    it when it ends), or stop with the pid of the process that holds it: two
    copies of this tool in one work folder would train the same runs twice,
    side by side, and each would slow the other's recorded time per
    iteration."""
    os.makedirs(work_dir, exist_ok=True)
    f = open(osp.join(work_dir, '.evidence.lock'), 'a+')
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.seek(0)
        holder = f.read().strip() or 'unknown'
        f.close()
        raise SystemExit(
            f'error: {work_dir} is in use by another evidence.py (pid '
            f'{holder}); wait for it to end, or pass another --work-dir')
    except OSError as e:  # a file system without flock
        f.close()
        print(f'warning: cannot lock {work_dir} ({e}); nothing stops a '
              f'second copy from working in it', file=sys.stderr)
        return None
    f.seek(0)
    f.truncate()
    f.write(f'{os.getpid()}\n')
    f.flush()
    return f


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    # only the report may be written beside a running copy
    works = not args.report_only or args.carry or args.costs
    lock = hold_work_dir(args.work_dir) if works else None
    try:
        started = time.time()

        def log(msg):
            print(f'[evidence {time.time() - started:6.0f}s] {msg}',
                  flush=True)

        if args.costs:
            measure_context_costs(args, log)
        if args.carry:
            for task in args.tasks:
                if TASKS[task].get('family') == 'context':
                    run_carry(args, task, log)
        if not args.report_only and not args.carry:
            for task in args.tasks:
                runs = [r for r in plan(args) if r.task == task]
                todo = [r for r in runs
                        if not (args.resume and osp.isfile(r.result))]
                log(f'{task}: {len(runs)} runs, {len(runs) - len(todo)} done '
                    f'before (--resume)')
                prepare_data(args, task)
                if TASKS[task]['probes']:
                    run_probes(args, task, log)
                for seed in sorted({r.seed for r in todo}):
                    make_init_weights(args, task, seed, args.variants)
                run_all(args, todo, log)
        if args.cam:
            log('Grad-CAM pictures')
            cam_pictures(args, osp.join(args.fig_dir, 'cam_pathfinder.png'))
        if write_report(args, argv) is False:
            log(f'no paired runs in {args.runs_dir}: no report')
        else:
            log(f'wrote {args.out}')
    finally:
        if lock is not None:
            lock.close()


if __name__ == '__main__':
    main()
