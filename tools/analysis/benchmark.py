# Copyright (c) mmsb contributors. All rights reserved.
"""Params, GFLOPs and throughput of SB-ResNet-50 and its peers (the paper's
Tables 8 and 9), measured side by side, the paper's figures beside ours::

    # CPU; the defaults (batch 1, 224x224, all models, a few minutes on 2
    # cores) are what `make bench` runs
    python tools/analysis/benchmark.py --md work_dirs/benchmark/cpu.md
    python tools/analysis/benchmark.py --mode infer --batch-sizes 16 --amp bf16
    # where SB-ResNet-50's extra time goes: one bottleneck per stage
    python tools/analysis/benchmark.py --threads 2 --mode blocks \\
        --batch-sizes 8 16
    # GPU, one run per precision (--profile 3: where the time goes)
    python tools/analysis/benchmark.py --device cuda --mode both \\
        --batch-sizes 1 32 64 128 --channels-last --md gpu-fp32.md
    python tools/analysis/benchmark.py --device cuda --mode both \\
        --batch-sizes 1 32 64 128 --channels-last --amp fp16 --md gpu-amp.md

Models are ImageNet classifiers (mmpretrain ``ImageClassifier``) built
through the registries, timed *interleaved*: each round runs every model
once, in an order shuffled per round; ``--warmup`` rounds untimed, then the
median of ``--repeats``; one run per batch size. On CUDA each step is timed
between ``torch.cuda.synchronize()`` calls, with ``cudnn.benchmark`` on.

Columns: ``params (M)`` with the 1000-class head; ``GFLOPs`` at 224x224
(mmengine's complexity analysis, multiply-accumulates, as the paper);
``infer img/s`` in eval mode under ``no_grad``; ``train img/s``: forward,
cross-entropy, backward, SGD step; ``x R50``: throughput ratio to ResNet-50
from the same run (of medians; the JSON adds ``paired_ratio_*``, the median
of per-round ratios, and on CPU both from process CPU time, steadier on
shared cores); ``train MB``: peak memory of a training step above what was
allocated before it (CUDA: ``max_memory_allocated``; CPU: peak running sum
of each op's net tensor allocations from ``torch.profiler``'s
``profile_memory``, blind to what one op frees before it ends); ``paper``:
Tables 8 and 9 (hardware and batch size not stated). ``--mode det``: Faster
R-CNN R50-FPN vs SB-R50-FPN training steps (mmdet's config, 2 synthetic
images); SB-R50 starts from the random R50 function-preservingly and lr=0,
so both sample the same RoIs. ``--threads`` is 1 on CPU: with two threads
and a core taken by another process, each OpenMP barrier waits for the
descheduled thread.
"""
import argparse
import contextlib
import datetime
import functools
import glob
import itertools
import json
import os
import os.path as osp
import platform
import random
import statistics
import subprocess
import sys
import time

import torch

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))  # _machine

# Name; the paper's params (M), GFLOPs, throughput (img/s): Tables 8, 9.
ZOO = {'r50': ('ResNet-50', 25.56, 4.11, 2042),
       'sb-r50': ('SB-ResNet-50', 25.99, 4.13, 1836),
       'se50': ('SE-ResNet-50', 28.09, 4.14, 1787),
       'sb-se50': ('SB-SE-ResNet-50', 28.52, 4.16, 1626),
       'nl50': ('NLNet-50', 32.92, 7.66, 1353),
       'sb-nl50': ('SB-NLNet-50', 33.35, 7.68, 1276),
       'gc50': ('GCNet-50 (all)', 28.08, 4.12, 1719),
       'sb-gc50': ('SB-GCNet-50 (all)', 28.51, 4.14, 1613)}
PAPER = tuple(ZOO)                  # the paper's models: the default set
# Attribution (not in the paper): SB-ResNet-50 with spatial bias in one
# stage only; where SB-ResNet-50's extra time goes, beside its FLOPs.
STAGES = ('res2', 'res3', 'res4')   # SB's stages (mmdet indices 0, 1, 2)
ZOO.update({f'sb-r50-{s}': (f'SB in {s} only', None, None, None)
            for s in STAGES})
PEERS = ('r50', 'nl50', 'gc50')    # summary ratios: SB-ResNet-50 / peer
# NLNet (Wang et al.): 5 non-local blocks (embedded Gaussian), after conv3
# of every other block of res3 (2 of 4) and res4 (3 of 6).
NL_PLUGIN = dict(
    cfg=dict(type='NonLocal2d', reduction=2, norm_cfg=dict(type='BN')),
    stages=(False, True, True, False), position='after_conv3')
# GCNet (Cao et al.) "all": context blocks (1/16) after conv3 in res3-res5
GC_PLUGIN = dict(cfg=dict(type='ContextBlock', ratio=1. / 16),
                 stages=(False, True, True, True), position='after_conv3')
AMP = {'none': None, 'fp16': torch.float16, 'bf16': torch.bfloat16}
MODES = dict(both=['infer', 'train'], all=['infer', 'train', 'det'])
# (warm-up, repeats) by device and mode, when not given
DEFAULTS = dict(cpu=dict(infer=(2, 15), train=(1, 3), det=(1, 5),
                         blocks=(3, 30)),
                cuda=dict(infer=(10, 30), train=(10, 20), det=(10, 10),
                          blocks=(10, 50)))
BLOCKS = (3, 4, 6)   # bottlenecks of res2-res4 in ResNet-50


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=(
        argparse.RawDescriptionHelpFormatter))
    p.add_argument('--models', nargs='+', default=list(PAPER),
                   choices=list(ZOO), metavar='MODEL', help=f'from '
                   f'{", ".join(ZOO)} (default: the paper\'s, '
                   f'{", ".join(PAPER)}); r50 always runs')
    p.add_argument('--mode', default='all', choices=[
        'infer', 'train', 'det', 'blocks', *MODES], help='both: infer + '
        'train; all: both + det; blocks: one bottleneck per SB stage, R-50 '
        'and SB and SB\'s parts (where its extra time goes)')
    p.add_argument('--batch-sizes', type=int, nargs='+', default=[1],
                   metavar='N', help='one interleaved run each (default: 1)')
    p.add_argument('--resolution', type=int, nargs=2, default=[224, 224],
                   metavar=('H', 'W'), help='GFLOPs are always at 224x224')
    p.add_argument('--det-resolution', type=int, nargs=2, default=[160, 224],
                   metavar=('H', 'W'))
    p.add_argument('--device', default='cpu', help='cpu or cuda[:N]')
    p.add_argument('--amp', default='none', choices=list(AMP),
                   help='torch.autocast dtype (fp16 trains with GradScaler)')
    for flag in ('--channels-last', '--compile', '--no-memory', '--no-flops'):
        p.add_argument(flag, action='store_true')
    p.add_argument('--threads', type=int, help='default: 1 on CPU')
    p.add_argument('--repeats', type=int, help='timed rounds (default: CPU '
                   '15 infer, 3 train, 5 det, 30 blocks; CUDA 30, 20, 10, '
                   '50)')
    p.add_argument('--warmup', type=int, help='untimed rounds first '
                   '(default: CPU 2 infer, 1 train, det, 3 blocks; CUDA 10)')
    p.add_argument('--profile', type=int, default=0, metavar='N',
                   help='profile N steps per model, print its top ops')
    p.add_argument('--json', default='work_dirs/benchmark/benchmark.json')
    p.add_argument('--render', metavar='JSON', help='print the tables of a '
                   'stored result and stop')
    p.add_argument('--update-docs', action='store_true', help='render the '
                   'results in docs/benchmark/*.json into docs/benchmark.md '
                   'and stop')
    p.add_argument('--md', metavar='PATH', help='tables as markdown too')
    p.add_argument('--seed', type=int, default=0)
    a = p.parse_args(argv)
    for flag, values, low in (
            ('--batch-sizes', a.batch_sizes, 1),
            ('--resolution/--det-resolution', a.resolution + a.det_resolution,
             32),
            ('--repeats', [1 if a.repeats is None else a.repeats], 1),
            ('--warmup', [a.warmup or 0], 0), ('--profile', [a.profile], 0)):
        if min(values) < low:
            p.error(f'{flag} must be >= {low}, got {min(values)}')
    if a.compile and a.warmup == 0:
        p.error('--compile needs --warmup >= 1 (the first call compiles)')
    if a.device.split(':')[0] not in ('cpu', 'cuda'):
        p.error(f'--device {a.device}: expected cpu, cuda or cuda:N')
    if a.device != 'cpu' and not torch.cuda.is_available():
        p.error(f'--device {a.device}: CUDA is not available '
                '(torch.cuda.is_available() is False); use --device cpu')
    a.models = [m for m in ZOO if m in {'r50', *a.models}]
    return a


# ------------------------------------------------------------------ models
def backbone_cfg(key):
    """Backbone config of a model key (out_indices=(3,): classifier)."""
    from mmdet.models.backbones import ResNet
    from mmpretrain.models.utils import SELayer

    from mmsb.models import SBResNet
    sb = key.startswith('sb-')
    stage = key[len('sb-r50-'):] if key.startswith('sb-r50-') else None

    class EveryOtherBlock(SBResNet if sb else ResNet):  # NLNet's placement
        def make_res_layer(self, **kwargs):
            layer = super().make_res_layer(**kwargs)   # plugins: odd blocks
            plain = super().make_res_layer(**dict(kwargs, plugins=None))
            return torch.nn.Sequential(*(layer[i] if i % 2 else plain[i]
                                         for i in range(len(layer))))

    class SEPlugin(SELayer):   # mmpretrain's SELayer as an mmcv plugin
        _abbr_ = 'se_layer'

        def __init__(self, in_channels, ratio=16):
            super().__init__(channels=in_channels, ratio=ratio)

    # norm_eval=False: mmdet's ResNet freezes BN statistics by default (a
    # detection habit); an ImageNet training step updates them.
    base = dict(type='mmsb.SBResNet' if sb else 'mmdet.ResNet', depth=50,
                out_indices=(3, ), norm_eval=False)
    if key == 'se50':
        return dict(type='mmpretrain.SEResNet', depth=50)
    if key == 'sb-se50':   # SE after conv3 (as mmpretrain) in every SB block
        return dict(base, plugins=[dict(
            cfg=dict(type=SEPlugin, ratio=16),
            stages=(True, True, True, True), position='after_conv3')])
    if stage:
        return dict(base, sb_stages=tuple(s == stage for s in STAGES) +
                    (False, ))
    if 'nl50' in key:
        return dict(base, type=EveryOtherBlock, plugins=[NL_PLUGIN])
    return dict(base, plugins=[GC_PLUGIN]) if 'gc50' in key else base


def build_classifier(key):
    """ImageNet classifier (GAP + fc 1000) through mmpretrain's registry."""
    from mmpretrain.registry import MODELS
    return MODELS.build(dict(
        _scope_='mmpretrain', type='ImageClassifier',
        backbone=backbone_cfg(key), neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=1000, in_channels=2048,
                  loss=dict(type='CrossEntropyLoss'))))


def build_blocks(stage, resolution):
    """A bottleneck of ``stage`` (not its first: no downsampling) at its
    shape for a ``resolution`` input, as R-50 and SB-ResNet-50 have it, and
    SB's parts apart: {key: (module, input shape)}. ``sb-r50-widened``: the
    SB block with its branch replaced by zeros (the widened norm2 and conv3,
    the upsampling and the concatenation; no branch); ``sb-branch``: the
    branch and its concatenation alone, on conv2's input and output."""
    from mmdet.models.backbones.resnet import Bottleneck

    from mmsb.models import SBResNet
    from mmsb.models.backbones.sb_resnet import SBBottleneck
    i = STAGES.index(stage)
    planes, stride = 64 * 2**i, 4 * 2**i
    # each stride-2 layer of ResNet rounds up
    shape = (planes * 4, *(-(-r // stride) for r in resolution))
    plain = Bottleneck(planes * 4, planes)
    sb, widened = (SBBottleneck(planes * 4, planes,
                                sb_cfg=SBResNet.default_sb_cfg)
                   for _ in range(2))
    k, p = widened.sb_channels, widened.spatial_bias.pooled_size
    widened.spatial_bias.forward = lambda t: t.new_zeros(len(t), k, p, p)

    class Branch(torch.nn.Module):
        def __init__(self, sb):
            super().__init__()
            self.sb = sb

        def forward(self, x, conv_out):
            return self.sb.fuse(conv_out, self.sb(x))
    return {'r50': (plain, [shape]), 'sb-r50': (sb, [shape]),
            'sb-r50-widened': (widened, [shape]),
            'sb-branch': (Branch(sb.spatial_bias), [(planes, *shape[1:])] * 2)}


def build_detectors():
    """mmdet's Faster R-CNN R50-FPN and its SB-R50 twin, same function: the
    twin loads R50's weights through SBResNet's function-preserving loader
    (bias channels enter conv3 with zero weight)."""
    import mmdet
    from mmdet.registry import MODELS
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(osp.dirname(mmdet.__file__), '.mim',
                                   'configs/_base_/models/'
                                   'faster-rcnn_r50_fpn.py'))
    backbone = dict(cfg.model.backbone)
    backbone.pop('init_cfg', None)       # random init: nothing to download
    dets = [MODELS.build(dict(cfg.model, _scope_='mmdet', backbone=dict(
        backbone, type=typ))) for typ in ('mmdet.ResNet', 'mmsb.SBResNet')]
    dets[1].load_state_dict(dets[0].state_dict(), strict=False)
    return dets


# ----------------------------------------------------------------- timing
class Timer:
    """Device, precision, memory format and timing of every measurement."""

    def __init__(self, args):
        self.args, self.device, self.amp = args, args.device, args.amp
        self.cuda = args.device != 'cpu'
        self.fmt = (torch.channels_last if args.channels_last else
                    torch.preserve_format)

    def autocast(self):
        return torch.autocast(self.device.split(':')[0], AMP[self.amp],
                              enabled=self.amp != 'none')

    def sync(self):
        if self.cuda:
            torch.cuda.synchronize(self.device)

    def prepare(self, model, train):
        model = model.to(self.device, memory_format=self.fmt).train(train)
        return torch.compile(model) if self.args.compile else model

    def infer_step(self, model, x):
        return self.autocast()(torch.no_grad()(lambda: model(x)))

    def train_step(self, model, loss_fn, lr=1e-4):
        """SGD (fp16: with a GradScaler); grads freed after, as mmengine."""
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
        enabled = self.amp == 'fp16'
        if hasattr(torch.amp, 'GradScaler'):
            scaler = torch.amp.GradScaler(self.device.split(':')[0],
                                          enabled=enabled)
        else:  # torch < 2.3: CUDA's only (without CUDA: warns, disabled)
            scaler = torch.cuda.amp.GradScaler(enabled=enabled)

        def step():
            with self.autocast():
                loss = loss_fn(model)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            opt.zero_grad(set_to_none=True)
        return step

    def block_step(self, module, shapes, train):
        """A module's forward on fixed random inputs of ``shapes`` (train:
        in train mode, inputs that require grad, then backward with a fixed
        gradient of the output; the gradients freed after, as a training
        step frees them; eval: in eval mode, under no_grad)."""
        module = self.prepare(module, train)
        xs = [torch.randn(*s, device=self.device).to(memory_format=self.fmt)
              .requires_grad_(train) for s in shapes]
        with torch.no_grad(), self.autocast():
            grad = torch.randn_like(module(*xs))
        leaves = xs + list(module.parameters())

        def step():
            if not train:
                with torch.no_grad(), self.autocast():
                    return module(*xs)
            with self.autocast():
                y = module(*xs)
            y.backward(grad)
            for t in leaves:
                t.grad = None
        return step

    def run(self, steps, images, warmup, repeats, log):
        """Times {key: step} interleaved, shuffled per round (no model always
        follows the same one); medians, img/s, ratios of throughput to r50:
        of medians and median of per-round ones (cancels slow load drift)."""
        rng, order = random.Random(self.args.seed), list(steps)
        times = {k: dict(wall=[], cpu=[]) for k in steps}
        for r in range(warmup + repeats):
            rng.shuffle(order)
            for key in order:
                self.sync()
                w0, c0 = time.perf_counter(), time.process_time()
                steps[key]()
                self.sync()
                if r >= warmup:
                    times[key]['wall'].append(time.perf_counter() - w0)
                    times[key]['cpu'].append(time.process_time() - c0)
            log(f'  round {r + 1}/{warmup + repeats}'
                f'{" (warm-up)" if r < warmup else ""}')
        out = {k: {} for k in times}
        for key, r in out.items():
            for kind in ('wall', ) if self.cuda else ('wall', 'cpu'):
                ref, own = times['r50'][kind], times[key][kind]
                r[f'median_{kind}_s'] = statistics.median(own)
                r[f'ratio_{kind}'] = (statistics.median(ref) /
                                      statistics.median(own))
                r[f'paired_ratio_{kind}'] = statistics.median(
                    a / b for a, b in zip(ref, own))
                r[f'{kind}_s'] = own
            r['img_per_s'] = images / r['median_wall_s']
        return out

    def peak_memory(self, step):
        """Peak bytes allocated during ``step`` above what was live before."""
        step()     # optimizer state and lazy buffers exist before we look
        if self.cuda:
            self.sync()
            torch.cuda.reset_peak_memory_stats(self.device)
            base = torch.cuda.memory_allocated(self.device)
            step()
            self.sync()
            return torch.cuda.max_memory_allocated(self.device) - base
        from torch.profiler import ProfilerActivity, profile
        with profile(activities=[ProfilerActivity.CPU],
                     profile_memory=True) as prof:
            step()
        # each op's net allocation, at its start if > 0, else at its end
        return max(0, *itertools.accumulate(n for _, n in sorted(
            (e.time_range.start if e.self_cpu_memory_usage > 0 else
             e.time_range.end, e.self_cpu_memory_usage)
            for e in prof.events())))

    def profile(self, steps, rounds, top=12):
        """Top ops by self device (CPU: CPU) time, from key_averages()."""
        from torch.profiler import ProfilerActivity, profile
        acts = [ProfilerActivity.CPU] + [ProfilerActivity.CUDA] * self.cuda
        out = {}
        for key, step in steps.items():
            with profile(activities=acts) as prof:
                for _ in range(rounds):
                    step()
                self.sync()
            rows = sorted(((e.key, (e.self_device_time_total if self.cuda
                                    else e.self_cpu_time_total) / 1e3 / rounds,
                            e.count / rounds) for e in prof.key_averages()),
                          key=lambda r: -r[1])
            out[key] = dict(total_ms=sum(r[1] for r in rows), top=rows[:top])
        return out


# ----------------------------------------------------------------- report
def _commit():
    """The checkout's commit, ``+changes`` with edits under mmsb/ or tools/
    (what the timed code is), or None outside a git checkout."""
    root = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    try:
        head = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'],
                              cwd=root, capture_output=True, text=True,
                              timeout=30).stdout.strip()
        dirty = subprocess.run(['git', 'status', '--porcelain', '--', 'mmsb',
                                'tools'], cwd=root, capture_output=True,
                               text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return head + '+changes' * bool(dirty) if head else None


def machine_info(args):
    info = dict(date=datetime.datetime.now().isoformat(timespec='seconds'),
                commit=_commit(),
                command=' '.join([osp.relpath(sys.argv[0])] + sys.argv[1:]),
                torch=torch.__version__, python=platform.python_version(),
                threads=torch.get_num_threads(), **{
                    k: getattr(args, k) for k in ('device', 'amp', 'compile',
                                                  'channels_last')})
    if args.device == 'cpu':
        from _machine import cpu_name
        name = cpu_name(default=platform.processor() or 'cpu')
        return dict(info, device_name=name, cpu_cores=os.cpu_count())
    driver = None
    with contextlib.suppress(subprocess.SubprocessError, OSError):
        driver = subprocess.run(
            ['nvidia-smi', '--query-gpu=driver_version',
             '--format=csv,noheader'], capture_output=True, text=True,
            timeout=30).stdout.strip().split('\n')[0] or None
    return dict(info, device_name=torch.cuda.get_device_name(args.device),
                cuda=torch.version.cuda, driver=driver,
                cudnn=torch.backends.cudnn.version(), cudnn_benchmark=True,
                tf32_conv=torch.backends.cudnn.allow_tf32,
                tf32_matmul=torch.backends.cuda.matmul.allow_tf32)


def header(i):
    commit = f', commit {i["commit"]}' if i.get('commit') else ''
    return [f'{i["device_name"]}, ' + (
        f'{i["cpu_cores"]} cores, {i["threads"]} threads' if 'cpu_cores' in i
        else f'driver {i["driver"]}, CUDA {i["cuda"]}, cuDNN {i["cudnn"]}, '
        f'cudnn.benchmark, TF32 conv {i["tf32_conv"]} matmul '
        f'{i["tf32_matmul"]}') + f'; torch {i["torch"]}, amp {i["amp"]}' +
        ', channels_last' * i['channels_last'] + ', torch.compile' *
        i['compile'] + f'; {i["date"]}{commit}', f'`{i["command"]}`']


def table(head, rows):
    """A markdown table, padded so that it also reads in a terminal."""
    width = [max(3, *map(len, col)) for col in zip(head, *rows)]
    return ['| ' + ' | '.join(c.rjust(w) if j else c.ljust(w)
                              for j, (c, w) in enumerate(zip(r, width))) + ' |'
            for r in [head, ['-' * w for w in width]] + rows]


def report(res):
    """The tables of a result, in markdown (stdout and ``--md``)."""
    sets, runs = res['settings'], res['runs']
    out = header(res['machine'])

    def title(what, modes):
        return ['', f'### {what}; ' + '; '.join(
            f'{m}: median of {sets[m]["repeats"]} after {sets[m]["warmup"]} '
            'warm-up' for m in modes), '']
    for bs in map(str, res['batch_sizes'] if res['models'] else []):
        # (a result saved part way holds some batch sizes of some modes)
        modes = [m for m in ('infer', 'train') if bs in runs.get(m, {})]
        if not modes:
            continue
        head = ['model', 'params (M)', 'paper', 'GFLOPs', 'paper']
        for mode in modes:
            head += [f'{mode} img/s', 'x R50'] + ['train MB', 'x R50'] * (
                'peak_mem_MB' in runs[mode][bs]['r50'])
        rows = []
        for key, m in res['models'].items():
            name, *pp, g = ZOO[key] + (m.get('gflops'), )
            row = [name, f'{m["params_M"]:.2f}', _num(pp[0], '.2f'),
                   _num(g, '.2f'), _num(pp[1], '.2f')]
            for mode in modes:
                r, ref = runs[mode][bs][key], runs[mode][bs]['r50']
                row += [f'{r["img_per_s"]:.1f}', f'{r["ratio_wall"]:.3f}']
                if 'peak_mem_MB' in r:
                    row += [f'{r["peak_mem_MB"]:.0f}',
                            f'{r["peak_mem_MB"] / ref["peak_mem_MB"]:.3f}']
            rows.append(row + [_num(pp[2], ''), _num(
                pp[2] and pp[2] / ZOO['r50'][3], '.3f')])
        out += title(f'batch {bs}, {"x".join(map(str, sets["resolution"]))}',
                     modes)
        out += table(head + ['paper img/s', 'x R50'], rows)
    if '2' in runs.get('det', {}):
        out += title('Faster R-CNN FPN training step, 2 images '
                     f'{"x".join(map(str, sets["det_resolution"]))}, amp '
                     f'{sets["det"]["amp"]}', ['det'])
        out += table(['backbone', 's/iter', 'x R50', 'paired x R50'], [
            [ZOO[k][0], f'{d["median_wall_s"]:.3f}', f'{d["ratio_wall"]:.3f}',
             f'{d["paired_ratio_wall"]:.3f}']
            for k, d in runs['det']['2'].items()])
    peers = [p for p in PEERS if p in res['models'] or p == 'r50']
    rows = [[bs, mode] + [f'{r[f"sb-r50/{p}"]:.3f}' if f'sb-r50/{p}' in r
                          else '-' for p in peers]
            for mode, per in res['ratios'].items() for bs, r in per.items()]
    if rows:
        out += ['', '### SB-ResNet-50 throughput ratios (same run)', '']
        out += table(['batch', 'mode'] + [f'SB / {ZOO[p][0]}' for p in peers],
                     rows + [['paper', 'Tables 8, 9'] + [
                         f'{ZOO["sb-r50"][3] / ZOO[p][3]:.3f}'
                         for p in peers]])
    out += stage_table(res) + blocks_table(res)
    unit = 'self CPU' if 'cpu_cores' in res['machine'] else 'self device'
    for p in res['profile']:
        for key, m in p['models'].items():
            out += ['', f'### profile: {p["mode"]}, batch {p["batch_size"]}, '
                    f'{ZOO[key][0]}: {m["total_ms"]:.2f} ms {unit} time per '
                    'step, top ops', '']
            out += table(['op', 'ms/step', 'calls', 'share'], [
                [op[:60], f'{ms:.3f}', f'{n:.0f}',
                 f'{ms / max(m["total_ms"], 1e-9):.1%}']
                for op, ms, n in m['top']])
    return out


BLOCK_HEAD = ['R-50 ms', 'SB ms', 'extra ms', 'extra',
              'widened, no branch: extra ms', 'branch + concat alone ms']
STAGE_HEAD = ['stage', 'blocks', 'R-50 block ms', 'SB block ms'] + \
    BLOCK_HEAD[2:]
PHASES = {'train': 'forward + backward',
          'infer': 'forward, no_grad, eval mode'}


def block_cells(per):
    """{phase: rows} of one batch size's ``--mode blocks`` run, in ms: per
    stage, (stage, blocks, R-50, SB, SB - R-50, (SB - R-50) / R-50,
    widened - R-50, branch alone), each difference and share within the
    run; the last row per network: each stage's figures times its blocks,
    summed (a stage's first block counted as the others)."""
    out = {}
    for phase in PHASES:
        rows = []
        for stage, n in zip(STAGES, BLOCKS):
            run = per.get(f'{stage}/{phase}')
            if run is not None:
                ms = {k: v['median_wall_s'] * 1e3 for k, v in run.items()}
                extra = ms['sb-r50'] - ms['r50']
                rows.append((stage, n, ms['r50'], ms['sb-r50'], extra,
                             extra / ms['r50'],
                             ms['sb-r50-widened'] - ms['r50'],
                             ms['sb-branch']))
        if rows:
            r50, sb, extra, widened, branch = (
                sum(r[1] * r[c] for r in rows) for c in (2, 3, 4, 6, 7))
            name = rows[0][0] + (f'-{rows[-1][0]}' if len(rows) > 1 else '')
            out[phase] = rows + [(f'{name}, x blocks', sum(
                r[1] for r in rows), r50, sb, extra, extra / r50, widened,
                branch)]
    return out


def _block_row(cells, digits):
    name, n, r50, sb, extra, share, widened, branch = cells
    return [name, str(n)] + [f'{v:.{digits}f}' for v in (r50, sb)] + [
        f'{extra:+.{digits}f}', f'{share:+.1%}', f'{widened:+.{digits}f}',
        f'{branch:.{digits}f}']


def blocks_table(res):
    """``--mode blocks``: :func:`block_cells` per batch size and phase."""
    out = []
    for bs, per in res['runs'].get('blocks', {}).items():
        for phase, rows in block_cells(per).items():
            out += ['', f'### One bottleneck per stage, batch {bs}, '
                    f'{PHASES[phase]}: where SB\'s extra time goes', '']
            out += table(STAGE_HEAD, [_block_row(r, 1 if r is rows[-1] else 2)
                                      for r in rows])
    return out


def _num(v, spec):
    return '-' if v is None else format(v, spec)


def stage_table(res):
    """Where SB-ResNet-50's extra time goes (runs with the one-stage
    models): per stage, the extra time per step over R-50 of SB in that
    stage alone, its share of the sum, and the extra GFLOPs' share."""
    keys = [f'sb-r50-{s}' for s in STAGES]
    out = []
    for mode, per in res['runs'].items():
        for bs, run in per.items():
            if not all(k in run for k in keys + ['r50', 'sb-r50']):
                continue
            ref = run['r50']['median_wall_s']
            extra = {k: (run[k]['median_wall_s'] - ref) * 1e3
                     for k in keys + ['sb-r50']}
            flops = {k: res['models'][k].get('gflops') for k in
                     keys + ['sb-r50', 'r50']}
            total = sum(extra[k] for k in keys)
            fl_total = None if None in flops.values() else sum(
                flops[k] - flops['r50'] for k in keys)

            def row(name, ms, fl, part):
                return [name, f'{ms:+.1f}', f'{ms / ref / 1e3:+.1%}',
                        f'{ms / total:.0%}' if part and total > 0 else '-',
                        _num(fl and fl * 1e3, '+.1f'),
                        _num(fl and fl / flops['r50'], '+.2%'),
                        f'{fl / fl_total:.0%}' if part and fl_total else '-']
            out += ['', f'### Where SB-ResNet-50\'s extra time goes: {mode}, '
                    f'batch {bs} (SB in one stage at a time, same run)', '']
            out += table(['SB in', 'ms/step over R50', 'x R50 time', 'share',
                          'MFLOPs over R50', 'x R50 FLOPs', 'share'], [
                row(s, extra[f'sb-r50-{s}'], fl_total and (
                    flops[f'sb-r50-{s}'] - flops['r50']), True)
                for s in STAGES] + [
                row('sum of the three', total, fl_total, False),
                row('res2-res4 (SB-ResNet-50)', extra['sb-r50'], fl_total and (
                    flops['sb-r50'] - flops['r50']), False)])
    return out


# ------------------------------------------------------------------ docs
DOCS = osp.join(osp.dirname(osp.dirname(osp.dirname(osp.abspath(
    __file__)))), 'docs')
DOC_MARKS = ('<!-- bench: results -->', '<!-- bench: end -->')


def docs_results(folder=osp.join(DOCS, 'benchmark')):
    """docs/benchmark.md's results: the tables of every committed result
    in ``folder`` (``*.json``), in name order, each under its file name;
    then, per sub-folder (a series of repeated runs), one row per run with
    its SB-ResNet-50 ratios (:func:`series`)."""
    out = []
    for path in sorted(glob.glob(osp.join(folder, '*.json'))):
        with open(path) as f:
            res = json.load(f)
        # one heading level below the file's
        out += ['', f'### `{osp.relpath(path, DOCS)}`', ''] + [
            '#' + line if line.startswith('### ') else line
            for line in report(res)]
    for sub in sorted(glob.glob(osp.join(folder, '*', ''))):
        out += ['', f'### `{osp.relpath(sub, DOCS)}/`: repeated runs', '']
        paths = sorted(glob.glob(osp.join(sub, '*.json')))
        out += series(paths)
        out += stage_series(paths)
        out += blocks_series(paths)
    return '\n'.join(out + [''])


def _settings(m):
    """(commit, threads and options) of a result's machine: what a series
    of repeated runs is grouped by, beside mode and batch size."""
    return m.get('commit') or '-', str(m['threads']) + (
        ', channels_last' * m['channels_last'] +
        ', torch.compile' * bool(m.get('compile')))


def series(paths):
    """One row per run (file): commit, mode, batch, threads and its
    throughput ratios SB-ResNet-50 / peer (the peers some run has); then
    the median of the runs per commit, mode, batch and threads."""
    rows, groups, results = [], {}, []
    for path in paths:
        with open(path) as f:
            results.append((path, json.load(f)))
    cols = [p for p in PEERS if any(
        f'sb-r50/{p}' in r for _, res in results
        for per in res['ratios'].values() for r in per.values())]
    for path, res in results:
        commit, threads = _settings(res['machine'])
        for mode, per in res['ratios'].items():
            for bs, r in per.items():
                key = (commit, mode, bs, threads)
                vals = [r.get(f'sb-r50/{p}') for p in cols]
                rows.append([osp.basename(path), *key] + [
                    '-' if v is None else f'{v:.3f}' for v in vals])
                groups.setdefault(key, []).append(vals)
    for key, runs in groups.items():
        rows.append([f'median of {len(runs)}', *key] + [
            '-' if any(v is None for v in col) else
            f'{statistics.median(col):.3f}' for col in zip(*runs)])
    return table(['run', 'commit', 'mode', 'batch', 'threads'] + [
        f'SB / {ZOO[p][0]}' for p in cols], rows)


def stage_series(paths):
    """The runs with the one-stage models (:func:`stage_table`): one row
    per run, SB's extra ms per step over R-50 by stage, and the median."""
    keys = [f'sb-r50-{s}' for s in STAGES] + ['sb-r50']
    rows, groups = [], {}
    for path in paths:
        with open(path) as f:
            res = json.load(f)
        commit, threads = _settings(res['machine'])
        for mode, per in res['runs'].items():
            for bs, run in per.items():
                if not all(k in run for k in keys + ['r50']):
                    continue
                ref = run['r50']['median_wall_s']
                ms = [(run[k]['median_wall_s'] - ref) * 1e3 for k in keys]
                vals = ms[:3] + [sum(ms[:3]), ms[3], ref * 1e3]
                key = (commit, mode, bs, threads)
                rows.append([osp.basename(path), *key] +
                            [f'{v:+.1f}' for v in vals[:-1]] +
                            [f'{vals[-1]:.0f}'])
                groups.setdefault(key, []).append(vals)
    if not rows:
        return []
    for key, runs in groups.items():
        med = [statistics.median(c) for c in zip(*runs)]
        rows.append([f'median of {len(runs)}', *key] +
                    [f'{v:+.1f}' for v in med[:-1]] + [f'{med[-1]:.0f}'])
    return ['', 'SB in one stage at a time: extra wall time per step over '
            'R-50 (ms), same run', ''] + table(
        ['run', 'commit', 'mode', 'batch', 'threads'] + [
            f'SB in {s}' for s in STAGES] + [
            'sum', 'SB-ResNet-50', 'R-50 ms'], rows)


def blocks_series(paths):
    """The ``--mode blocks`` runs among ``paths``, grouped as
    :func:`series` groups: each cell the median over the runs of that
    cell (differences taken within each run, so SB and R-50 stay paired;
    the per-network row the median of the runs' sums); then one row per
    run with its per-network sums."""
    groups, rows = {}, []
    for path in paths:
        with open(path) as f:
            res = json.load(f)
        commit, threads = _settings(res['machine'])
        for bs, per in res['runs'].get('blocks', {}).items():
            key = (commit, bs, threads)
            for phase, cells in block_cells(per).items():
                groups.setdefault(key, {}).setdefault(phase, []).append(cells)
                rows.append([osp.basename(path), key[0], bs, key[2], phase] +
                            _block_row(cells[-1], 1)[2:])
    out = []
    for (commit, bs, threads), phases in groups.items():
        n = len(next(iter(phases.values())))
        out += ['', f'#### `--mode blocks`, commit {commit}, batch {bs}, '
                f'{threads} threads: each cell the median of {n} runs']
        for phase, runs in phases.items():
            med = [(row[0][0], row[0][1], *(statistics.median(c) for c in
                                            list(zip(*row))[2:]))
                   for row in zip(*runs)]
            out += ['', f'{PHASES[phase]}:', ''] + table(
                STAGE_HEAD, [_block_row(r, 1 if r is med[-1] else 2)
                             for r in med])
    if rows:
        out += ['', 'Per run, the per-network sums:', ''] + table(
            ['run', 'commit', 'batch', 'threads', 'phase'] + BLOCK_HEAD,
            rows)
    return out


def update_docs(page=osp.join(DOCS, 'benchmark.md')):
    with open(page, encoding='utf-8') as f:
        text = f.read()
    start, end = (text.find(m) for m in DOC_MARKS)
    if start < 0 or end < start:
        raise SystemExit(f'error: {page} lacks the marks {DOC_MARKS}')
    start += len(DOC_MARKS[0])
    with open(page, 'w', encoding='utf-8') as f:
        f.write(text[:start] + docs_results() + text[end:])


# ------------------------------------------------------------------- main
def main(argv=None):
    args = parse_args(argv)
    if args.render:
        with open(args.render) as f:
            print('\n'.join(report(json.load(f))))
        return
    if args.update_docs:
        update_docs()
        return
    cuda = args.device != 'cpu'
    if args.threads or not cuda:
        torch.set_num_threads(args.threads or 1)
    torch.backends.cudnn.benchmark = cuda
    if args.compile:   # every model and mode compiles one forward code object
        dyn = torch._dynamo.config   # named cache_size_limit before torch 2.6
        name = ('recompile_limit'
                if hasattr(dyn, 'recompile_limit') else 'cache_size_limit')
        setattr(dyn, name, 64)
    torch.manual_seed(args.seed)
    import mmsb  # noqa: F401  registers SBResNet, activates compat
    from mmdet.testing import demo_mm_inputs
    from mmengine.analysis import get_model_complexity_info
    from mmengine.logging import MMLogger
    # complexity analysis notes each op it skips; the loader, each tensor
    MMLogger.get_current_instance().setLevel('ERROR')

    log = functools.partial(print, file=sys.stderr, flush=True)
    timer, modes = Timer(args), MODES.get(args.mode, [args.mode])
    sets = dict(resolution=args.resolution, seed=args.seed,
                det_resolution=args.det_resolution)
    for m in modes:
        w, r = DEFAULTS['cuda' if cuda else 'cpu'][m]
        sets[m] = dict(warmup=w if args.warmup is None else args.warmup,
                       repeats=args.repeats or r)
    res = dict(machine=machine_info(args), settings=sets, models={}, runs={},
               ratios={}, profile=[], batch_sizes=args.batch_sizes)
    log('\n'.join(header(res['machine'])))

    def save(final=False):
        """JSON (and --md) of everything measured so far: a run cut at its
        time limit keeps each batch size it finished."""
        res['complete'] = final
        for path, text in ((args.json, lambda: json.dumps(res, indent=1)),
                           (args.md, lambda: '\n'.join(report(res)) + '\n')):
            if path:
                os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
                with open(path + '.tmp', 'w') as f:
                    f.write(text())
                os.replace(path + '.tmp', path)  # never half a file

    def measure(mode, bs, steps):
        log(f'{mode}, batch {bs}, {len(steps)} models interleaved')
        run = timer.run(steps, bs, sets[mode]['warmup'],
                        sets[mode]['repeats'], log)
        for key, step in steps.items():
            if mode == 'train' and not args.no_memory:
                run[key]['peak_mem_MB'] = timer.peak_memory(step) / 2**20
        res['runs'].setdefault(mode, {})[str(bs)] = run
        res['ratios'].setdefault(mode, {})[str(bs)] = {
            f'sb-r50/{p}': run['sb-r50']['img_per_s'] / run[p]['img_per_s']
            for p in PEERS if 'sb-r50' in run and p in run}
        if args.profile:
                res['profile'].append(dict(mode=mode, batch_size=bs, models=(
                timer.profile(steps, args.profile))))
        save()
    models = {k: build_classifier(k) for k in args.models
              if {'infer', 'train'} & set(modes)}
    for key, model in models.items():
        res['models'][key] = dict(name=ZOO[key][0], paper=dict(zip(
            ('params_M', 'gflops', 'img_per_s'), ZOO[key][1:])), params_M=sum(
                p.numel() for p in model.parameters()) / 1e6)
        if not args.no_flops:
            res['models'][key]['gflops'] = get_model_complexity_info(
                model.eval(), input_shape=(3, 224, 224), show_table=False,
                show_arch=False)['flops'] / 1e9
    for mode in [m for m in ('infer', 'train') if m in modes]:
        nets = {k: timer.prepare(m, mode == 'train')
                for k, m in models.items()}
        for bs in args.batch_sizes:
            x = torch.randn(bs, 3, *args.resolution).to(
                args.device, memory_format=timer.fmt)
            y = torch.randint(1000, (bs, ), device=args.device)
            measure(mode, bs, {
                k: timer.infer_step(m, x) if mode == 'infer' else
                timer.train_step(m, lambda m: torch.nn.functional
                                 .cross_entropy(m(x).float(), y))
                for k, m in nets.items()})
    if 'blocks' in modes:
        for bs in args.batch_sizes:
            per = res['runs'].setdefault('blocks', {}).setdefault(str(bs), {})
            for stage in STAGES:
                blocks = build_blocks(stage, args.resolution)
                for phase in PHASES:
                    log(f'blocks, {stage}, {phase}, batch {bs}')
                    per[f'{stage}/{phase}'] = timer.run(
                        {k: timer.block_step(m, [(bs, *s) for s in shapes],
                                             phase == 'train')
                         for k, (m, shapes) in blocks.items()}, bs,
                        sets['blocks']['warmup'], sets['blocks']['repeats'],
                        log)
                save()
    if 'det' in modes:
        data, steps = demo_mm_inputs(2, [(3, *args.det_resolution)] * 2,
                                     num_items=[3, 4], num_classes=80), {}
        # mmcv's NMS has no bf16 kernel, and no fp16 one on CPU
        timer.amp = sets['det']['amp'] = \
            'fp16' if cuda and args.amp == 'fp16' else 'none'

        def det_loss(det, batch):
            torch.manual_seed(args.seed)      # same proposal/RoI sampling
            return det.parse_losses(det(**batch, mode='loss'))[0]
        for key, det in zip(('r50', 'sb-r50'), build_detectors()):
            batch = det.to(args.device).data_preprocessor(data, True)
            batch['inputs'] = batch['inputs'].to(memory_format=timer.fmt)
            # lr=0: the update is computed and applied but leaves both
            # detectors equal, so every step samples the same RoIs in both.
            steps[key] = timer.train_step(timer.prepare(det, True), lambda d,
                                          b=batch: det_loss(d, b), lr=0.)
        measure('det', 2, steps)
    print('\n'.join(report(res)))
    save(final=True)
    for path in (args.json, args.md):
        if path:
            print(f'# wrote {path}')


if __name__ == '__main__':
    main()
