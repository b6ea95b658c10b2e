# Copyright (c) mmsb contributors. All rights reserved.
"""Efficiency of SB-ResNet-50 next to its peers, measured side by side.

Reproduces the columns of the paper's Tables 8 and 9 (parameters, GFLOPs,
throughput) on the machine at hand, and prints them next to the paper's:

    python tools/analysis/benchmark.py                       # defaults, CPU
    python tools/analysis/benchmark.py --batch-size 16 --mode infer
    python tools/analysis/benchmark.py --resolution 800 1216 --mode infer \\
        --models r50 sb-r50 sb-r50-ref
    python tools/analysis/benchmark.py --device cuda --dtype bf16 \\
        --channels-last --batch-size 64

Every model is a full ImageNet classifier (mmpretrain ``ImageClassifier``:
backbone, global average pooling, fc 1000) built through the registries, so
parameter counts compare with the tables. All models of a run are timed
*interleaved* (every round runs each model once, in a per-round shuffled
order: A C B, B A C, ...) after warm-up rounds, and each figure is the
median of ``--repeats`` steps; the headline is the ratio of throughputs to
ResNet-50 from the same run, which is what transfers between machines.

Measured per model:

* params (M) and GFLOPs at 224x224 (mmengine ``get_model_complexity_info``;
  like the paper, multiply-accumulates of conv/linear/matmul),
* inference: eval mode, ``torch.no_grad``, img/s,
* training step: forward, cross-entropy on the logits, backward, SGD step,
  img/s,
* peak memory of a training step: on CUDA ``torch.cuda.max_memory_allocated``
  above what was allocated before the step; on CPU the peak of the running
  sum of the allocations and frees that ``torch.profiler`` records with
  ``profile_memory=True`` during the step (tensors only, no allocator slack),
* ``--mode det``: Faster R-CNN R50-FPN vs SB-R50-FPN (mmdet's model config:
  ``frozen_stages=1``, ``norm_eval``), training iterations on a synthetic
  batch of two images with boxes; ratio of the median step times. R50 is
  randomly initialised and SB-R50 starts from it function-preservingly, so
  both sample the same proposals and RoIs.

On a CPU, times are wall clock and also process CPU time; the CPU-time ratio
is the steadier one on a host whose cores are shared (time spent waiting for
a core is not counted). ``--threads`` defaults to 1 there: with two threads
and one core taken by another process, every OpenMP barrier waits for the
descheduled thread and a ResNet-50 forward varied from 0.7 s to 2.5 s.
By default glibc maps every large block afresh and returns it on free, so
each step page-faults its activations in again (at batch 16, ~340k faults
and 0.7-0.9 s of system time per ResNet-50 forward on the 2-core host): a
real cost that grows with the bytes a model allocates. ``--malloc retain``
sets glibc's ``M_MMAP_MAX=0`` and a maximal ``M_TRIM_THRESHOLD`` so freed
memory is reused, as tcmalloc/jemalloc would, leaving compute alone.

``sb-r50-ref`` is SB-ResNet-50 running the straightforward formulation
(``set_fast_path(model, False)``), so the gain of the fast path is measured
in the same run. ``sb-r50-nomaps`` (only on request) is SB-ResNet-50 whose
bias maps are zeros instead of computed: the gap to ``sb-r50`` is the cost
of computing the maps, the gap to ``r50`` that of joining them.
"""
import argparse
import datetime
import json
import os
import os.path as osp
import platform
import random
import statistics
import sys
import time
from collections import OrderedDict

# Paper, Tables 8 and 9: params (M), GFLOPs, throughput (samples/s). The
# paper does not say on which hardware or batch size throughput was taken
# (the only GPU it names is the A5000, for detection training).
PAPER = {
    'r50': (25.56, 4.11, 2042),
    'se50': (28.09, 4.14, 1787),
    'sb-r50': (25.99, 4.13, 1836),
    'sb-se50': (28.52, 4.16, 1626),
    'nl50': (32.92, 7.66, 1353),
    'gc50': (28.08, 4.12, 1719),
    'sb-nl50': (33.35, 7.68, 1276),
    'sb-gc50': (28.51, 4.14, 1613),
}

NAMES = OrderedDict([
    ('r50', 'ResNet-50'),
    ('sb-r50', 'SB-ResNet-50'),
    ('sb-r50-ref', 'SB-ResNet-50 (straightforward)'),
    ('sb-r50-nomaps', 'SB-R50, zero maps (diagnostic)'),
    ('se50', 'SE-ResNet-50'),
    ('sb-se50', 'SB-SE-ResNet-50'),
    ('nl50', 'NLNet-50'),
    ('sb-nl50', 'SB-NLNet-50'),
    ('gc50', 'GCNet-50 (all)'),
    ('sb-gc50', 'SB-GCNet-50 (all)'),
])

# Wang et al. (NLNet): 5 non-local blocks in ResNet-50, on every other
# block of res3 (2 of 4) and res4 (3 of 6), here after conv3 (mmcv
# NonLocal2d, embedded Gaussian, reduction 2).
NL_PLUGIN = dict(cfg=dict(type='NonLocal2d', reduction=2,
                             norm_cfg=dict(type='BN')),
                 stages=(False, True, True, False), position='after_conv3')
# Cao et al. (GCNet) "all": a context block (ratio 1/16) after conv3 of
# every block of res3-res5.
GC_PLUGIN = dict(cfg=dict(type='ContextBlock', ratio=1. / 16),
                 stages=(False, True, True, True), position='after_conv3')


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description='Params, GFLOPs, throughput and training memory of '
        'SB-ResNet-50 and its peers, measured side by side (Tables 8, 9)')
    p.add_argument('--models', nargs='+',
                   default=[k for k in NAMES if k != 'sb-r50-nomaps'],
                   choices=list(NAMES), metavar='MODEL',
                   help=f'subset, from {", ".join(NAMES)} (default: all '
                   f'but the sb-r50-nomaps diagnostic); ratios are to r50, '
                   f'which is always added')
    p.add_argument('--mode', default='all',
                   choices=['infer', 'train', 'both', 'det', 'all'],
                   help='infer, train (and memory), both, det (Faster '
                   'R-CNN), or all (default)')
    p.add_argument('--batch-size', type=int, default=1,
                   help='inference batch size (default: 1)')
    p.add_argument('--train-batch-size', type=int, default=4,
                   help='training-step batch size (default: 4, small so '
                   'that the default run takes a few minutes on 2 cores)')
    p.add_argument('--resolution', type=int, nargs=2, default=(224, 224),
                   metavar=('H', 'W'),
                   help='input size for throughput (default: 224 224); '
                   'GFLOPs are always at 224x224 as in the paper')
    p.add_argument('--det-resolution', type=int, nargs=2, default=(160, 224),
                   metavar=('H', 'W'),
                   help='image size of the detection batch (default: 160 '
                   '224)')
    p.add_argument('--device', default='cpu', help='cpu or cuda[:N]')
    p.add_argument('--dtype', default='fp32', choices=['fp32', 'bf16'],
                   help='bf16 runs under torch.autocast (default: fp32)')
    p.add_argument('--channels-last', action='store_true',
                   help='models and inputs in channels_last')
    p.add_argument('--compile', action='store_true',
                   help='torch.compile each model (slow to start)')
    p.add_argument('--malloc', default='system', choices=['system', 'retain'],
                   help='system (default): the C allocator as configured; '
                   'retain: glibc keeps freed memory in the process, as '
                   'tcmalloc/jemalloc do (see above)')
    p.add_argument('--threads', type=int, default=None,
                   help='torch threads (default: 1 on CPU, see above)')
    p.add_argument('--repeats', type=int, default=None,
                   help='timed rounds per model (default: 15 infer, 3 '
                   'train, 5 det)')
    p.add_argument('--warmup', type=int, default=None,
                   help='untimed rounds first (default: 2 infer, 1 train '
                   'and det)')
    p.add_argument('--profile', type=int, default=0, metavar='N',
                   help='also run N steps per model (interleaved) under '
                   'torch.profiler and print self CPU time by op, largest '
                   'differences to R50 first (default: 0, off)')
    p.add_argument('--no-memory', action='store_true',
                   help='skip the training-memory measurement')
    p.add_argument('--no-flops', action='store_true',
                   help='skip the GFLOPs analysis')
    p.add_argument('--work-dir', default='work_dirs/benchmark',
                   help='where --json/--png go by default')
    p.add_argument('--json', help='output JSON (default: WORK_DIR/'
                   'benchmark.json)')
    p.add_argument('--png', help='output bar chart (default: WORK_DIR/'
                   'benchmark.png)')
    p.add_argument('--seed', type=int, default=0)
    args = p.parse_args(argv)
    for name in ('batch_size', 'train_batch_size'):
        if getattr(args, name) < 1:
            p.error(f'--{name.replace("_", "-")} must be >= 1, got '
                    f'{getattr(args, name)}')
    if min(args.resolution) < 32 or min(args.det_resolution) < 32:
        p.error(f'--resolution/--det-resolution must be >= 32 pixels, got '
                f'{args.resolution} / {args.det_resolution}')
    if args.repeats is not None and args.repeats < 1:
        p.error(f'--repeats must be >= 1, got {args.repeats}')
    if args.warmup is not None and args.warmup < 0:
        p.error(f'--warmup must be >= 0, got {args.warmup}')
    models = list(dict.fromkeys(['r50'] + args.models))
    args.models = [m for m in NAMES if m in models]
    return args


# ------------------------------------------------------------------ models
def _every_other_block(base):
    """``base`` (a ResNet class) with stage plugins on odd blocks only.

    mmdet's ResNet gives a stage's plugins to all its blocks. NLNet puts a
    non-local block on every other one, so each stage is built twice, with
    and without plugins, and the blocks are taken alternately (1, 3, ... with
    the plugin) from two identical layouts.
    """
    import torch.nn as nn

    class EveryOtherBlock(base):

        def make_res_layer(self, **kwargs):
            layer = super().make_res_layer(**kwargs)
            if not kwargs.get('plugins'):
                return layer
            plain = super().make_res_layer(**dict(kwargs, plugins=None))
            return nn.Sequential(*(layer[i] if i % 2 else plain[i]
                                   for i in range(len(layer))))

    EveryOtherBlock.__name__ = f'EveryOther{base.__name__}'
    return EveryOtherBlock


def _se_plugin():
    """mmpretrain's SELayer as an mmcv plugin (plugins get in_channels)."""
    from mmpretrain.models.utils import SELayer

    class SEPlugin(SELayer):
        _abbr_ = 'se_layer'

        def __init__(self, in_channels, ratio=16, **kwargs):
            super().__init__(channels=in_channels, ratio=ratio, **kwargs)

    return SEPlugin


def backbone_cfg(key):
    """Backbone config of a model key (out_indices=(3,): classifier)."""
    from mmdet.models.backbones import ResNet

    from mmsb.models import SBResNet
    sb = key.startswith('sb-')
    # norm_eval=False: mmdet's ResNet freezes BN statistics by default (a
    # detection habit); an ImageNet training step updates them.
    base = dict(depth=50, out_indices=(3, ), norm_eval=False)
    if key in ('r50', 'sb-r50', 'sb-r50-ref', 'sb-r50-nomaps'):
        return dict(base, type='mmsb.SBResNet' if sb else 'mmdet.ResNet')
    if key == 'se50':
        return dict(type='mmpretrain.SEResNet', depth=50)
    if key == 'sb-se50':
        # SE after conv3 (its place in mmpretrain's SEBottleneck) in every
        # SB block: SE-ResNet-50 with spatial bias.
        return dict(base, type='mmsb.SBResNet', plugins=[
            dict(cfg=dict(type=_se_plugin(), ratio=16),
                 stages=(True, True, True, True), position='after_conv3')
        ])
    if key in ('nl50', 'sb-nl50'):
        return dict(base, type=_every_other_block(SBResNet if sb else ResNet),
                    plugins=[NL_PLUGIN])
    if key in ('gc50', 'sb-gc50'):
        return dict(base, type='mmsb.SBResNet' if sb else 'mmdet.ResNet',
                    plugins=[GC_PLUGIN])
    raise KeyError(f'unknown model {key!r}; allowed: {list(NAMES)}')


def build_classifier(key):
    """ImageNet classifier (GAP + fc 1000) through mmpretrain's registry."""
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS

    from mmsb.models.layers.spatial_bias import set_fast_path
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(
            dict(
                type='ImageClassifier',
                backbone=backbone_cfg(key),
                neck=dict(type='GlobalAveragePooling'),
                head=dict(
                    type='LinearClsHead',
                    num_classes=1000,
                    in_channels=2048,
                    loss=dict(type='CrossEntropyLoss'))))
    if key == 'sb-r50-ref':
        set_fast_path(model, False)
    if key == 'sb-r50-nomaps':
        # Diagnostic: SB blocks with their bias maps replaced by zeros, so
        # only the join (resize, concat, widened norm and conv) is paid.
        from mmsb.models import SpatialBias
        for m in model.modules():
            if isinstance(m, SpatialBias):
                m.forward = _zero_maps(m)
    return model


def _zero_maps(sb):
    p = sb.pooled_size

    def forward(x):
        return x.new_zeros(x.shape[0], sb.num_bias, p, p)

    return forward


def build_detectors():
    """mmdet's Faster R-CNN R50-FPN and its SB-R50 twin, same function.

    The SB twin loads the R50 detector's weights through SBResNet's
    function-preserving loader (bias channels enter conv3 with zero weight),
    so both produce the same proposals and sample the same RoIs: the step
    times differ only by what spatial bias costs.
    """
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from mmdet.registry import MODELS
    import mmdet
    cfg = Config.fromfile(
        osp.join(osp.dirname(mmdet.__file__), '.mim', 'configs', '_base_',
                 'models', 'faster-rcnn_r50_fpn.py'))
    backbone = dict(cfg.model.backbone)
    backbone.pop('init_cfg', None)       # random init: nothing to download
    dets = []
    for typ in ('mmdet.ResNet', 'mmsb.SBResNet'):
        cfg.model.backbone = dict(backbone, type=typ)
        with DefaultScope.overwrite_default_scope('mmdet'):
            dets.append(MODELS.build(cfg.model))
    from mmengine.logging import MMLogger
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel('WARNING')            # the loader's "widened ..." note
    try:
        dets[1].load_state_dict(dets[0].state_dict(), strict=False)
    finally:
        logger.setLevel(level)
    return dets


# ----------------------------------------------------------------- timing
class Runner:
    """Device, dtype and timing conventions shared by every measurement."""

    def __init__(self, args):
        import torch
        self.torch = torch
        self.device = torch.device(args.device)
        self.cuda = self.device.type == 'cuda'
        self.dtype = args.dtype
        self.channels_last = args.channels_last

    def autocast(self):
        import contextlib
        if self.dtype == 'fp32':
            return contextlib.nullcontext()
        return self.torch.autocast(self.device.type,
                                   dtype=self.torch.bfloat16)

    def sync(self):
        if self.cuda:
            self.torch.cuda.synchronize(self.device)

    def prepare(self, model):
        model = model.to(self.device)
        if self.channels_last:
            model = model.to(memory_format=self.torch.channels_last)
        return model

    def image(self, n, hw):
        x = self.torch.randn(n, 3, *hw, device=self.device)
        if self.channels_last:
            x = x.contiguous(memory_format=self.torch.channels_last)
        return x

    def timed(self, fn):
        """(wall seconds, process CPU seconds) of one call."""
        self.sync()
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        self.sync()
        return time.perf_counter() - w0, time.process_time() - c0


def interleaved(runner, steps, warmup, repeats, seed, log=None):
    """Time ``steps`` {key: fn} round-robin; {key: {'wall': [...], 'cpu'}}.

    Every round runs each step once, in an order shuffled per round (seeded):
    a step pays for what the one before it left behind (evicted caches,
    memory just returned to the OS by a large model), so no model may always
    follow the same one.
    """
    rng = random.Random(seed)
    order = list(steps)
    times = {k: {'wall': [], 'cpu': []} for k in steps}
    for r in range(warmup + repeats):
        rng.shuffle(order)
        for key in order:
            wall, cpu = runner.timed(steps[key])
            if r >= warmup:
                times[key]['wall'].append(wall)
                times[key]['cpu'].append(cpu)
        if log:
            log(f'  round {r + 1}/{warmup + repeats}'
                f'{" (warm-up)" if r < warmup else ""}')
    return times


def summarise(times, images, ref_key, cuda):
    """Medians, img/s and ratios to ``ref_key`` (throughput, higher=faster).

    ``ratio_*``: ratio of the medians (the headline). ``paired_ratio_*``:
    median over rounds of the per-round ratio, which cancels load that
    drifts slower than a round; kept in the JSON as a cross-check.
    """
    out = {}
    for key, t in times.items():
        wall = statistics.median(t['wall'])
        cpu = statistics.median(t['cpu'])
        out[key] = dict(
            median_wall_s=wall,
            median_cpu_s=None if cuda else cpu,
            img_per_s=images / wall,
            wall_s=t['wall'],
            cpu_s=None if cuda else t['cpu'])
    ref = out[ref_key]
    for key, r in out.items():
        r['ratio_wall'] = ref['median_wall_s'] / r['median_wall_s']
        r['ratio_cpu'] = (None if cuda else
                          ref['median_cpu_s'] / r['median_cpu_s'])
        for kind in ('wall', 'cpu'):
            if cuda and kind == 'cpu':
                r['paired_ratio_cpu'] = None
                continue
            r[f'paired_ratio_{kind}'] = statistics.median(
                a / b for a, b in zip(times[ref_key][kind], times[key][kind]))
    return out


# ------------------------------------------------------------ measurements
def make_infer_step(runner, model, x):
    torch = runner.torch

    def step():
        with torch.no_grad(), runner.autocast():
            model(x)

    return step


def make_train_step(runner, model, x, labels):
    torch = runner.torch
    opt = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)

    def step():
        with runner.autocast():
            logits = model(x)
            loss = torch.nn.functional.cross_entropy(logits.float(), labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def peak_step_memory(runner, step):
    """Peak bytes allocated during ``step`` above what was live before."""
    torch = runner.torch
    step()     # optimizer state and lazy buffers exist before we look
    if runner.cuda:
        runner.sync()
        torch.cuda.reset_peak_memory_stats(runner.device)
        base = torch.cuda.memory_allocated(runner.device)
        step()
        runner.sync()
        return torch.cuda.max_memory_allocated(runner.device) - base
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU],
                 profile_memory=True) as prof:
        step()
    events = [e for e in prof.profiler.kineto_results.events()
              if e.name() == '[memory]' and e.device_type() ==
              torch.autograd.DeviceType.CPU]
    live = peak = 0
    for e in sorted(events, key=lambda e: e.start_ns()):
        live += e.nbytes()
        peak = max(peak, live)
    return peak


def profile_ops(runner, steps, rounds, seed, top=18):
    """Self time (ms per step) and calls by op for each model, profiled
    interleaved; returns {key: {op: [ms, calls]}} and the printed lines."""
    from torch.profiler import ProfilerActivity, profile
    activities = [ProfilerActivity.CPU]
    if runner.cuda:
        activities.append(ProfilerActivity.CUDA)
    per = {k: {} for k in steps}
    order, rng = list(steps), random.Random(seed)
    for _ in range(rounds):
        rng.shuffle(order)
        for key in order:
            step = steps[key]
            with profile(activities=activities) as prof:
                step()
                runner.sync()
            for e in prof.key_averages():
                t = (e.self_device_time_total if runner.cuda else
                     e.self_cpu_time_total)
                a = per[key].setdefault(e.key, [0., 0.])
                a[0] += t / 1e3 / rounds
                a[1] += e.count / rounds
    ops = set().union(*per.values())
    ref = per.get('r50', {})

    def gap(op):
        return max(abs(v.get(op, (0, 0))[0] - ref.get(op, (0, 0))[0])
                   for v in per.values())

    keys = list(steps)
    unit = 'device' if runner.cuda else 'self CPU'
    lines = [f'{unit} ms / calls per step, by op (torch.profiler, '
             f'{rounds} rounds interleaved, shuffled)',
             f'{"op":<42}' + ''.join(f'{k:>18}' for k in keys)]
    for op in sorted(ops, key=gap, reverse=True)[:top]:
        lines.append(f'{op[:42]:<42}' + ''.join(
            '{:>11.2f} /{:>5.0f}'.format(*per[k].get(op, (0, 0)))
            for k in keys))
    lines.append(f'{"total":<42}' + ''.join(
        f'{sum(v[0] for v in per[k].values()):>18.1f}' for k in keys))
    return per, lines


def retain_freed_memory():
    """Make glibc keep freed memory for reuse (True if it took effect)."""
    import ctypes
    import ctypes.util
    try:
        libc = ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6')
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_max = -1, -4
    return bool(mallopt(m_mmap_max, 0)) and bool(
        mallopt(m_trim_threshold, 2**31 - 1))


def complexity(model, key):
    from mmengine.analysis import get_model_complexity_info
    from mmengine.logging import MMLogger
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel('ERROR')     # unsupported-op notes (BN, pooling)
    try:
        info = get_model_complexity_info(
            model, input_shape=(3, 224, 224), show_table=False,
            show_arch=False)
    finally:
        logger.setLevel(level)
    return info['flops'] / 1e9


def detection_data(runner, hw, seed):
    """Two synthetic images with boxes, as mmdet's pipeline would pack them."""
    import torch
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData
    g = torch.Generator().manual_seed(seed)
    h, w = hw
    inputs, samples = [], []
    for i in range(2):
        inputs.append(torch.randint(0, 256, (3, h, w), generator=g,
                                    dtype=torch.uint8))
        n = 3 + i
        xy = torch.rand(n, 2, generator=g) * torch.tensor([w * .6, h * .6])
        wh = (torch.rand(n, 2, generator=g) * .3 + .1) * torch.tensor([w, h])
        s = DetDataSample(metainfo=dict(
            img_shape=(h, w), ori_shape=(h, w), scale_factor=(1., 1.)))
        s.gt_instances = InstanceData(
            bboxes=torch.cat([xy, xy + wh], 1),
            labels=torch.randint(0, 80, (n, ), generator=g))
        samples.append(s)
    return dict(inputs=inputs, data_samples=samples)


def make_det_step(runner, model, data, seed):
    torch = runner.torch
    # lr=0: the update is computed and applied as usual but leaves both
    # detectors equal, so every step samples the same RoIs in both.
    opt = torch.optim.SGD(model.parameters(), lr=0., momentum=0.9)
    batch = model.data_preprocessor(data, training=True)

    def step():
        torch.manual_seed(seed)           # same proposal/RoI sampling
        with runner.autocast():
            losses = model(**batch, mode='loss')
            loss, _ = model.parse_losses(losses)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


# ----------------------------------------------------------------- report
def machine_info(runner, args):
    import torch
    info = dict(
        date=datetime.datetime.now().isoformat(timespec='seconds'),
        command=' '.join([osp.relpath(sys.argv[0])] + sys.argv[1:]),
        torch=torch.__version__,
        python=platform.python_version(),
        device=str(runner.device),
        threads=torch.get_num_threads(),
        dtype=args.dtype,
        channels_last=args.channels_last,
        compile=args.compile)
    if runner.cuda:
        info['device_name'] = torch.cuda.get_device_name(runner.device)
    else:
        info['device_name'] = _cpu_name()
        info['cpu_cores'] = os.cpu_count()
    return info


def _cpu_name():
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or 'cpu'


def fmt(v, spec):
    return '-' if v is None else format(v, spec)


def print_table(res, info, args):
    print()
    cores = '' if res['cuda'] else f'{info.get("cpu_cores")} cores, '
    extras = ''.join([', channels_last' if info['channels_last'] else '',
                      ', compiled' if info['compile'] else ''])
    print(f'# {info["device_name"]} ({cores}{info["threads"]} threads), '
          f'torch {info["torch"]}, {info["dtype"]}{extras}, malloc '
          f'{info["malloc"]}, {info["date"]}')
    print(f'# {info["command"]}')
    models = res['models']
    if models:
        print_model_table(res)
        for line in res.get('summary', []):
            print(f'# {line}')
    if res.get('settings'):
        print(f'# {res["settings"]}')
    det = res.get('detection')
    if det:
        print()
        print(f'# Faster R-CNN FPN training step, 2 images '
              f'{det["resolution"][0]}x{det["resolution"][1]} '
              f'({det["repeats"]} timed rounds)')
        print(f'{"backbone":<10}  {"ms/step":>8}  {"x R50":>6}' +
              ('' if res['cuda'] else f'  {"cpu ms":>8}  {"x R50 cpu":>9}'))
        for key in ('r50', 'sb-r50'):
            d = det[key]
            line = (f'{"R50" if key == "r50" else "SB-R50":<10}  '
                    f'{d["median_wall_s"] * 1e3:>8.1f}  '
                    f'{d["ratio_wall"]:>6.3f}')
            if not res['cuda']:
                line += (f'  {d["median_cpu_s"] * 1e3:>8.1f}  '
                         f'{d["ratio_cpu"]:>9.3f}')
            print(line)
    print('# x R50: throughput ratio to ResNet-50 in this run (median '
          'wall clock; "cpu": median process CPU time)')


def summary_lines(models):
    """SB against NLNet (paper: SB's overhead 1.6-3.3x smaller) and the fast
    path against the straightforward one, from the same run."""
    lines = []
    for mode in ('infer', 'train'):
        t = {k: m[mode] for k, m in models.items() if mode in m}
        word = 'inference' if mode == 'infer' else 'training'
        if 'sb-r50' in t and 'nl50' in t:
            sb, nl = t['sb-r50']['ratio_wall'], t['nl50']['ratio_wall']
            lines.append(
                f'{word}: SB-ResNet-50 / NLNet-50 throughput {sb / nl:.2f}x; '
                f'time overhead over R50: SB {1 / sb - 1:+.1%}, NL '
                f'{1 / nl - 1:+.1%}')
        if 'sb-r50' in t and 'sb-r50-ref' in t:
            fast, ref = t['sb-r50'], t['sb-r50-ref']
            line = (f'{word}: fast path / straightforward throughput '
                    f'{fast["ratio_wall"] / ref["ratio_wall"]:.3f}')
            if fast['ratio_cpu'] is not None:
                line += f' (cpu {fast["ratio_cpu"] / ref["ratio_cpu"]:.3f})'
            lines.append(line)
    return lines


def print_model_table(res):
    models = res['models']
    cols = [('model', 31), ('params M', 9), ('paper', 7), ('GFLOPs', 7),
            ('paper', 6)]
    has_inf = any('infer' in m for m in models.values())
    has_tr = any('train' in m for m in models.values())
    if has_inf:
        cols += [('inf img/s', 10), ('x R50', 6)]
        if not res['cuda']:
            cols += [('x R50 cpu', 9)]
    if has_tr:
        cols += [('train img/s', 11), ('x R50', 6)]
        if not res['cuda']:
            cols += [('x R50 cpu', 9)]
    if any('peak_train_mem_MB' in m for m in models.values()):
        cols += [('train MB', 9), ('x R50', 6)]
    cols += [('paper img/s', 11), ('x R50', 6)]
    print('  '.join(f'{c:>{w}}' if i else f'{c:<{w}}'
                    for i, (c, w) in enumerate(cols)))
    r50_mem = models.get('r50', {}).get('peak_train_mem_MB')
    for key, m in models.items():
        paper = PAPER.get(key)
        row = [NAMES[key], fmt(m.get('params_M'), '.2f'),
               fmt(paper and paper[0], '.2f'), fmt(m.get('gflops'), '.2f'),
               fmt(paper and paper[1], '.2f')]
        for mode, present in (('infer', has_inf), ('train', has_tr)):
            if not present:
                continue
            t = m.get(mode, {})
            row += [fmt(t.get('img_per_s'), '.1f'),
                    fmt(t.get('ratio_wall'), '.3f')]
            if not res['cuda']:
                row += [fmt(t.get('ratio_cpu'), '.3f')]
        if any('peak_train_mem_MB' in v for v in models.values()):
            mem = m.get('peak_train_mem_MB')
            row += [fmt(mem, '.0f'),
                    fmt(mem / r50_mem if mem and r50_mem else None, '.3f')]
        row += [fmt(paper and paper[2], 'd'),
                fmt(paper and paper[2] / PAPER['r50'][2], '.3f')]
        print('  '.join(f'{v:>{w}}' if i else f'{v:<{w}}'
                        for i, (v, (_, w)) in enumerate(zip(row, cols))))


def save_png(res, path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    models = res['models']
    keys = list(models)
    series = []
    for mode, label in (('infer', 'inference'), ('train', 'training step')):
        vals = [models[k].get(mode, {}).get('ratio_wall') for k in keys]
        if any(v is not None for v in vals):
            series.append((label, [v or 0 for v in vals]))
    paper = [PAPER[k][2] / PAPER['r50'][2] if k in PAPER else 0
             for k in keys]
    series.append(('paper (Tables 8, 9)', paper))
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(keys)), 4.2))
    width = 0.8 / len(series)
    for i, (label, vals) in enumerate(series):
        xs = [j + (i - (len(series) - 1) / 2) * width
              for j in range(len(keys))]
        ax.bar(xs, vals, width, label=label)
    ax.axhline(1.0, color='grey', lw=0.8)
    ax.set_xticks(range(len(keys)))
    ax.set_xticklabels([NAMES[k] for k in keys], rotation=30, ha='right',
                       fontsize=8)
    ax.set_ylabel('throughput / ResNet-50')
    info = res['machine']
    ax.set_title(f'{info["device_name"]}, {info["threads"]} thr, torch '
                 f'{info["torch"]}, {info["dtype"]}', fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ------------------------------------------------------------------- main
def main(argv=None):
    args = parse_args(argv)
    import torch
    if args.device.startswith('cuda') and not torch.cuda.is_available():
        sys.exit(f'error: --device {args.device} but CUDA is not available')
    malloc = 'system'
    if args.malloc == 'retain':
        malloc = 'retain' if retain_freed_memory() else 'system (no glibc)'
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    elif not args.device.startswith('cuda'):
        torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    import mmsb  # noqa: F401  registers SBResNet, activates compat

    runner = Runner(args)
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    info = machine_info(runner, args)
    info['malloc'] = malloc
    res = dict(machine=info, cuda=runner.cuda, models=OrderedDict(),
               paper={k: dict(params_M=v[0], gflops=v[1], img_per_s=v[2])
                      for k, v in PAPER.items()},
               paper_note='throughput hardware and batch size not stated '
               'in the paper')
    do_infer = args.mode in ('infer', 'both', 'all')
    do_train = args.mode in ('train', 'both', 'all')
    do_det = args.mode in ('det', 'all')
    settings = []
    profiles = []

    models = OrderedDict()
    if do_infer or do_train:
        log(f'building {len(args.models)} classifiers ...')
        for key in args.models:
            models[key] = build_classifier(key)
            res['models'][key] = dict(
                name=NAMES[key],
                params_M=sum(p.numel()
                             for p in models[key].parameters()) / 1e6)
        if not args.no_flops:
            for key, model in models.items():
                model.eval()
                res['models'][key]['gflops'] = complexity(model, key)
        for key, model in models.items():
            model = runner.prepare(model)
            models[key] = torch.compile(model) if args.compile else model

    if do_infer:
        repeats = args.repeats or 15
        warmup = 2 if args.warmup is None else args.warmup
        x = runner.image(args.batch_size, args.resolution)
        steps = OrderedDict()
        for key, model in models.items():
            model.eval()
            steps[key] = make_infer_step(runner, model, x)
        log(f'inference, batch {args.batch_size}, {args.resolution[0]}x'
            f'{args.resolution[1]}, {len(steps)} models interleaved ...')
        times = interleaved(runner, steps, warmup, repeats, args.seed, log)
        for key, r in summarise(times, args.batch_size, 'r50',
                                runner.cuda).items():
            res['models'][key]['infer'] = r
        if args.profile:
            log('profiling inference ...')
            res['profile_infer'], lines = profile_ops(
                runner, steps, args.profile, args.seed)
            profiles.append(('inference', lines))
        settings.append(f'inference: batch {args.batch_size}, '
                        f'{args.resolution[0]}x{args.resolution[1]}, '
                        f'median of {repeats} after {warmup} warm-up')

    if do_train:
        repeats = args.repeats or 3
        warmup = 1 if args.warmup is None else args.warmup
        n = args.train_batch_size
        x = runner.image(n, args.resolution)
        labels = torch.randint(0, 1000, (n, ), device=runner.device)
        steps = OrderedDict()
        for key, model in models.items():
            model.train()
            steps[key] = make_train_step(runner, model, x, labels)
        log(f'training step, batch {n}, {len(steps)} models interleaved ...')
        times = interleaved(runner, steps, warmup, repeats, args.seed, log)
        for key, r in summarise(times, n, 'r50', runner.cuda).items():
            res['models'][key]['train'] = r
        if args.profile:
            log('profiling training steps ...')
            res['profile_train'], lines = profile_ops(
                runner, steps, args.profile, args.seed)
            profiles.append(('training step', lines))
        settings.append(f'training: batch {n}, SGD, {args.resolution[0]}x'
                        f'{args.resolution[1]}, median of {repeats} after '
                        f'{warmup} warm-up')
        if not args.no_memory:
            log('peak training-step memory ...')
            for key, step in steps.items():
                res['models'][key]['peak_train_mem_MB'] = \
                    peak_step_memory(runner, step) / 2**20
            settings.append('memory: ' + (
                'torch.cuda.max_memory_allocated' if runner.cuda else
                'peak of the profiler\'s tensor allocations '
                '(profile_memory=True)') + ' during one training step')

    if do_det:
        repeats = args.repeats or 5
        warmup = 1 if args.warmup is None else args.warmup
        log('Faster R-CNN R50-FPN vs SB-R50-FPN training steps ...')
        data = detection_data(runner, args.det_resolution, args.seed)
        steps = OrderedDict()
        for key, det in zip(('r50', 'sb-r50'), build_detectors()):
            det = runner.prepare(det)
            det.train()
            if args.compile:
                det = torch.compile(det)
            steps[key] = make_det_step(runner, det, data, args.seed)
        times = interleaved(runner, steps, warmup, repeats, args.seed, log)
        det = summarise(times, 2, 'r50', runner.cuda)
        det['resolution'] = list(args.det_resolution)
        det['repeats'] = repeats
        res['detection'] = det
        if args.profile:
            log('profiling detector steps ...')
            res['profile_det'], lines = profile_ops(
                runner, steps, args.profile, args.seed)
            profiles.append(('Faster R-CNN step', lines))

    res['settings'] = '; '.join(settings)
    res['summary'] = summary_lines(res['models'])
    print_table(res, info, args)
    for what, lines in profiles:
        print(f'\n# {what}: ' + '\n'.join(lines))
    os.makedirs(args.work_dir, exist_ok=True)
    json_path = args.json or osp.join(args.work_dir, 'benchmark.json')
    png_path = args.png or osp.join(args.work_dir, 'benchmark.png')
    for path in (json_path, png_path):
        if osp.dirname(path):
            os.makedirs(osp.dirname(path), exist_ok=True)
    with open(json_path, 'w') as f:
        json.dump(res, f, indent=1)
    if res['models']:
        save_png(res, png_path)
        print(f'# wrote {json_path} and {png_path}')
    else:
        print(f'# wrote {json_path}')


if __name__ == '__main__':
    main()
