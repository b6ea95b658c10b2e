#!/usr/bin/env python
# Copyright (c) mmsb contributors. All rights reserved.
"""End-to-end demo on the embedded shapes data, what ``make demo`` runs.

On the CPU, from scratch, with the tools a user runs (docs/demo.md): the
demo data generated (``data/demo``, reused when present), the demo detector
and segmentor trained by tools/train.py, their checkpoints scored by
tools/test.py, each metric next to its chance level. Each run writes to a new
``work_dirs/demo/<timestamp>/``; the console shows stage headers, the
Runner's training and evaluation lines and the summary, the work dirs keep
the full logs; ``work_dirs/demo/latest`` links to the newest run
(docs/inference.md names its checkpoints through it).

    python tools/run_demo.py [--skip-seg] [--threads N] [--work-dir DIR]
"""
import argparse
import contextlib
import glob
import io
import itertools
import os
import os.path as osp
import re
import subprocess
import sys
import time

import cv2
import mmengine
import numpy as np

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
DET_CONFIG = 'configs/demo/faster-rcnn_sb-r26_fpn_1xb8-300it_demo-coco-128.py'
SEG_CONFIG = 'configs/demo/fpn_sb-r26_1xb8-500it_demo-ade-96x96.py'
DATA_ROOT = 'data/demo'  # the data_root of the demo configs, below ROOT
BOLD, DIM, RESET = '\033[1m', '\033[2m', '\033[0m'
# A record of mmengine's logger starts with its date; these are shown.
RECORD = re.compile(r'^\d\d/\d\d \d\d:\d\d:\d\d - \S+ - (\w+) - (.*)$')
SHOWN = ('Iter(', 'Saving checkpoint', 'mmsb:', 'per class results',
         'Load checkpoint', 'bbox_mAP_copypaste')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--work-dir', default='work_dirs/demo',
                        help='parent of the timestamped folder of this run')
    parser.add_argument('--skip-seg', action='store_true',
                        help='detection only')
    parser.add_argument('--threads', type=int, default=0,
                        help='CPU threads per training process (default: '
                        'the idle cores of this machine, at least 1)')
    return parser.parse_args(argv)


def style(text, code):
    return f'{code}{text}{RESET}' if sys.stdout.isatty() else text


def stage_headers(total):
    """A function that prints the header of the next of ``total`` stages,
    with the seconds since this call."""
    start, stage = time.time(), itertools.count(1)

    def header(text):
        print('\n' + style(f'[demo {next(stage)}/{total}] {text}', BOLD) +
              style(f'   (at {time.time() - start:.0f}s)', DIM), flush=True)
    return header


def run_tool(cmd, log_path, env):
    """Run ``cmd``: the whole output goes to ``log_path``, the progress lines
    to the console. A failure shows the end of the log and ends the demo."""
    print(style('  $ ' + ' '.join(cmd), DIM), flush=True)
    showing = pending = False
    with open(log_path, 'w') as log, subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, bufsize=1) as proc:
        for line in proc.stdout:
            log.write(line)
            record = RECORD.match(line)
            if record:
                level, message = record.groups()
                showing = level == 'ERROR' or message.startswith(SHOWN)
                # a record that starts on the next line: the per-class
                # table of mmseg is shown, the environment dump is not
                pending = not showing and message == ''
                if pending:
                    continue
            elif pending:
                showing, pending = line.startswith('+'), False
            elif line.startswith(('error:', 'Traceback')):
                showing = True
            elif 'Warning' in line or 'warnings.warn' in line:
                continue
            if showing:
                print('  ' + line, end='', flush=True)
        rc = proc.wait()
    if rc != 0:
        with open(log_path) as f:
            print(''.join('  | ' + t for t in f.readlines()[-40:]), end='')
        raise SystemExit(f'demo: `{" ".join(cmd)}` failed with exit code '
                         f'{rc}; full output in {log_path}')


def unique_run_dir(parent):
    stamp = time.strftime('%Y%m%d_%H%M%S')
    path, n = osp.join(parent, stamp), 1
    while osp.exists(path):  # two runs in one second: never share a folder
        n += 1
        path = osp.join(parent, f'{stamp}_{n}')
    os.makedirs(path)
    return path


def link_latest(parent, run_dir):
    """Point ``parent/latest`` at ``run_dir`` (a relative symlink), so that
    docs and scripts can name the newest run's files. An existing symlink
    is replaced; anything else named ``latest`` is left alone (None)."""
    link = osp.join(parent, 'latest')
    if osp.lexists(link) and not osp.islink(link):
        return None
    tmp = f'{link}.{os.getpid()}'
    os.symlink(osp.relpath(run_dir, parent), tmp)
    os.replace(tmp, link)  # atomic: never a moment without a link
    return link


def child_env(requested):
    """The tools' environment and its threads per process: ``requested``,
    else one per idle core (oversubscribed OpenMP threads spin against the
    other processes and can make a step many times slower)."""
    threads, cpus = requested, os.cpu_count() or 1
    if threads <= 0:
        try:
            busy = os.getloadavg()[0]
        except OSError:
            busy = 0.0
        threads = max(1, min(cpus, int(cpus - busy + 0.5)))
    path = [ROOT] + os.environ.get('PYTHONPATH', '').split(os.pathsep)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads),
               MKL_NUM_THREADS=str(threads),
               PYTHONPATH=os.pathsep.join(filter(None, path)))
    env.setdefault('OMP_WAIT_POLICY', 'PASSIVE')
    return env, threads


def det_chance_map(ann_file, seed=0, boxes_per_image=20):
    """COCO mAP and mAP@50 of random guesses: boxes of plausible sizes at
    random places, random classes and scores (what a model that learnt
    nothing scores)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(ann_file)
    rng = np.random.default_rng(seed)
    sides = np.array([a['bbox'][2:] for a in gt.dataset['annotations']])
    cat_ids, guesses = gt.getCatIds(), []
    for img in gt.dataset['images']:
        for _ in range(boxes_per_image):
            w, h = sides[rng.integers(len(sides))]
            x = rng.uniform(0, img['width'] - w)
            y = rng.uniform(0, img['height'] - h)
            guesses.append(dict(
                image_id=img['id'], category_id=int(rng.choice(cat_ids)),
                bbox=[float(x), float(y), float(w), float(h)],
                score=float(rng.uniform())))
    with contextlib.redirect_stdout(io.StringIO()):
        ev = COCOeval(gt, gt.loadRes(guesses), 'bbox')
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return float(ev.stats[0]), float(ev.stats[1])


def seg_chance_miou(ann_dir, num_classes):
    """mIoU and pixel accuracy of predicting the majority class (background)
    everywhere: IoU_bg = share of background pixels, every other IoU = 0."""
    counts = np.zeros(256, np.int64)
    for path in glob.glob(osp.join(ann_dir, '*.png')):
        counts += np.bincount(cv2.imread(path, 0).ravel(), minlength=256)
    share = counts[:num_classes].max() / counts[:num_classes].sum()
    return share / num_classes, share


def tile_pictures(folder, out_file, count=6, cols=2, scale=2):
    """One PNG of the first ``count`` pictures tools/test.py drew (each
    ground truth | prediction), enlarged ``scale`` times."""
    paths = sorted(glob.glob(osp.join(folder, '*.jpg')) +
                   glob.glob(osp.join(folder, '*.png')))[:count]
    if not paths:
        return None
    pics = [cv2.resize(cv2.imread(p), None, fx=scale, fy=scale,
                       interpolation=cv2.INTER_CUBIC) for p in paths]
    h, w = (max(p.shape[i] for p in pics) for i in (0, 1))
    rows = (len(pics) + cols - 1) // cols
    canvas = np.full((h * rows, w * cols, 3), 255, np.uint8)
    for i, pic in enumerate(pics):
        r, c = divmod(i, cols)
        canvas[r * h:r * h + pic.shape[0], c * w:c * w + pic.shape[1]] = pic
    cv2.imwrite(out_file, canvas)
    return out_file


def train_and_test(header, name, config, run_dir, env, show_dir=None):
    """tools/train.py, then tools/test.py on the checkpoint it saved; the
    metrics test.py logged into its new timestamped folder."""
    from mmengine.runner import find_latest_checkpoint  # imports torch
    work_dir, t0 = osp.join(run_dir, name), time.time()
    header(f'train {name}: {config}')
    run_tool([sys.executable, 'tools/train.py', config, '--work-dir',
              work_dir], osp.join(run_dir, f'{name}_train.out'), env)
    ckpt = find_latest_checkpoint(work_dir)
    print(f'  checkpoint: {osp.relpath(ckpt, ROOT)}', flush=True)

    header(f'test {name} from its checkpoint')
    before = set(glob.glob(osp.join(work_dir, '*', '*.json')))
    cmd = [sys.executable, 'tools/test.py', config, ckpt, '--work-dir',
           work_dir]
    if show_dir:
        # draw only confident boxes, so that the small pictures stay legible
        cmd += ['--show-dir', show_dir, '--cfg-options',
                'default_hooks.visualization.score_thr=0.4']
    run_tool(cmd, osp.join(run_dir, f'{name}_test.out'), env)
    new = sorted(set(glob.glob(osp.join(work_dir, '*', '*.json'))) - before)
    if not new:
        raise SystemExit(f'demo: no test metrics found under {work_dir}')
    return dict(metrics=mmengine.load(new[-1]), log_dir=osp.dirname(new[-1]),
                ckpt=ckpt, total_s=time.time() - t0)


def summary_table(rows, total):
    head = ('task', 'metric', 'result', 'chance', 'chance is', 'time')
    body = [(t, m, f'{r:.3f}', f'{c:.3f}', what,
             '' if s is None else f'{s:.0f}s')
            for t, m, r, c, what, s in rows]
    widths = [max(len(x) for x in col) for col in zip(head, *body)]

    def fmt(cells):
        return '  '.join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()

    return '\n'.join(
        ['summary (metrics of the saved checkpoints on the val split)',
         fmt(head), fmt(['-' * w for w in widths])] +
        [fmt(r) for r in body] +
        [f'total wall time: {total:.0f}s ({total / 60:.1f} min)'])


def main(argv=None):
    args = parse_args(argv)
    os.chdir(ROOT)  # the demo configs name data/demo relative to the repo
    start = time.time()
    header = stage_headers(3 if args.skip_seg else 5)
    run_dir = unique_run_dir(args.work_dir)
    env, threads = child_env(args.threads)
    print(style('mmsb demo', BOLD) + ': SB-ResNet models trained from '
          'scratch on generated shapes, on the CPU (5-6 min on 2 cores)')
    print(f'  outputs: {run_dir}/   threads per process: {threads}')

    header(f'demo data in {DATA_ROOT}/ (generated on first use)')
    sys.path.insert(0, ROOT)
    from mmsb.data.demo import ensure_demo_data
    tasks = ('det', ) if args.skip_seg else ('det', 'seg')
    roots = {t: ensure_demo_data(t, DATA_ROOT) for t in tasks}
    for root in roots.values():
        meta = mmengine.load(osp.join(root, 'demo_meta.json'))
        print(f'  {root}: {meta["num_train"]} train / {meta["num_val"]} val '
              f'images of {meta["img_size"]}x{meta["img_size"]}', flush=True)

    det = train_and_test(header, 'det', DET_CONFIG, run_dir, env,
                         show_dir='predictions')
    picture = tile_pictures(osp.join(det['log_dir'], 'predictions'),
                            osp.join(run_dir, 'det_predictions.png'))
    chance = det_chance_map(osp.join(roots['det'], 'annotations',
                                     'instances_val2017.json'))
    m, runs = det['metrics'], [det]
    rows = [('detection', 'bbox mAP', m['coco/bbox_mAP'], chance[0],
             'random boxes', det['total_s']),
            ('detection', 'bbox mAP@50', m['coco/bbox_mAP_50'], chance[1],
             'random boxes', None)]
    if not args.skip_seg:
        seg = train_and_test(header, 'seg', SEG_CONFIG, run_dir, env)
        miou, bg_share = seg_chance_miou(
            osp.join(roots['seg'], 'annotations', 'validation'), 4)
        m = seg['metrics']
        runs.append(seg)
        rows += [('segmentation', 'mIoU', m['mIoU'] / 100, miou,
                  f'all background ({bg_share:.0%} of pixels)',
                  seg['total_s']),
                 ('segmentation', 'aAcc', m['aAcc'] / 100, bg_share,
                  'all background', None)]

    total = time.time() - start
    table = summary_table(rows, total)
    print('\n' + table)
    if picture:
        print(f'\npredictions (left ground truth, right prediction): '
              f'{picture}')
    latest = link_latest(args.work_dir, run_dir)
    if latest:
        ckpts = [osp.join(latest, osp.relpath(r['ckpt'], run_dir))
                 for r in runs]
    else:
        print(f'note: {osp.join(args.work_dir, "latest")} exists and is not '
              f'a link; left as it is')
        ckpts = [osp.relpath(r['ckpt'], ROOT) for r in runs]
    print(f'checkpoints: {", ".join(ckpts)}')
    print(f'evaluate again: python tools/test.py {DET_CONFIG} {ckpts[0]}')
    with open(osp.join(run_dir, 'summary.txt'), 'w') as f:
        f.write(table + '\n')
    mmengine.dump(dict(total_s=round(total, 1), threads=threads, rows=[
        dict(task=r[0], metric=r[1], result=r[2], chance=r[3],
             chance_is=r[4]) for r in rows]),
        osp.join(run_dir, 'summary.json'), indent=1)


if __name__ == '__main__':
    main()
