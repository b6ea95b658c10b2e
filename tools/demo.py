#!/usr/bin/env python
# Copyright (c) mmsb contributors. All rights reserved.
"""End-to-end demo on the embedded shapes data, what ``make demo`` runs.

On the CPU, from scratch, with the same tools a user runs:

1. generate the demo datasets (``data/demo``, reused when present);
2. ``tools/train.py configs/demo/<detector>``: Faster R-CNN + FPN with a thin
   SB-ResNet, checkpoints saved by the CheckpointHook;
3. ``tools/test.py <detector> <checkpoint> --show-dir``: COCO bbox mAP of
   the saved checkpoint, and a picture of its predictions;
4. the same for a semantic FPN segmentor (mIoU), unless ``--skip-seg``;
5. a summary table that puts every metric next to its chance level.

Everything goes to a new ``work_dirs/demo/<timestamp>/``; earlier runs are
never touched. The console shows stage headers, the Runner's training and
evaluation lines and the summary; the full logs are in the work dirs.

    python tools/demo.py [--skip-seg] [--threads N] [--work-dir DIR]
"""
import argparse
import glob
import json
import os
import os.path as osp
import re
import subprocess
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
DET_CONFIG = 'configs/demo/faster-rcnn_sb-r26_fpn_1xb8-300it_demo-coco-128.py'
SEG_CONFIG = 'configs/demo/fpn_sb-r26_1xb8-500it_demo-ade-96x96.py'
DATA_ROOT = 'data/demo'  # the data_root of the demo configs, below ROOT

BOLD, DIM, RESET = '\033[1m', '\033[2m', '\033[0m'


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        '--work-dir', default='work_dirs/demo',
        help='parent of the timestamped folder of this run')
    parser.add_argument(
        '--skip-seg', action='store_true', help='detection only')
    parser.add_argument(
        '--threads', type=int, default=0,
        help='CPU threads per training process (default: the idle cores '
        'of this machine, at least 1)')
    return parser.parse_args(argv)


# ------------------------------------------------------------ console
class Console:
    """Stage headers and a filtered view of the tools' output."""

    # A log record of mmengine's logger starts with its date.
    RECORD = re.compile(r'^\d\d/\d\d \d\d:\d\d:\d\d - \S+ - (\w+) - (.*)$')
    SHOWN = ('Iter(', 'Saving checkpoint', 'mmsb:', 'per class results',
             'Load checkpoint', 'bbox_mAP_copypaste')

    def __init__(self, total_stages):
        self.total = total_stages
        self.stage = 0
        self.start = time.time()
        self.color = sys.stdout.isatty()

    def style(self, text, style):
        return f'{style}{text}{RESET}' if self.color else text

    def header(self, text):
        self.stage += 1
        elapsed = time.time() - self.start
        print('\n' + self.style(
            f'[demo {self.stage}/{self.total}] {text}', BOLD) +
            self.style(f'   (at {elapsed:.0f}s)', DIM), flush=True)

    def note(self, text):
        print(f'  {text}', flush=True)

    def run(self, cmd, log_path, env):
        """Run ``cmd``; show the useful lines, keep all of them in a file."""
        print(self.style('  $ ' + ' '.join(cmd), DIM), flush=True)
        showing = pending = False
        with open(log_path, 'w') as log, subprocess.Popen(
                cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT, text=True, bufsize=1) as proc:
            for line in proc.stdout:
                log.write(line)
                record = self.RECORD.match(line)
                if record:
                    level, message = record.groups()
                    showing = level == 'ERROR' or \
                        message.startswith(self.SHOWN)
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
                tail = f.readlines()[-40:]
            print(''.join('  | ' + t for t in tail), end='')
            raise SystemExit(
                f'demo: `{" ".join(cmd)}` failed with exit code {rc}; full '
                f'output in {log_path}')


# ---------------------------------------------------------- the steps
def unique_run_dir(parent):
    stamp = time.strftime('%Y%m%d_%H%M%S')
    path, n = osp.join(parent, stamp), 1
    while osp.exists(path):  # two runs in one second: never share a folder
        n += 1
        path = osp.join(parent, f'{stamp}_{n}')
    os.makedirs(path)
    return path


def pick_threads(requested):
    if requested > 0:
        return requested
    cpus = os.cpu_count() or 1
    try:
        busy = os.getloadavg()[0]
    except OSError:
        busy = 0.0
    # Oversubscribed OpenMP threads spin against the other processes and can
    # make a step many times slower; one thread per idle core is safe.
    return max(1, min(cpus, int(cpus - busy + 0.5)))


def child_env(threads):
    env = dict(os.environ)
    env['OMP_NUM_THREADS'] = str(threads)
    env['MKL_NUM_THREADS'] = str(threads)
    env.setdefault('OMP_WAIT_POLICY', 'PASSIVE')
    env['PYTHONPATH'] = os.pathsep.join(
        [ROOT] + [p for p in env.get('PYTHONPATH', '').split(os.pathsep)
                  if p])
    return env


def latest_checkpoint(work_dir):
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        return f.read().strip()


def test_metrics(work_dir, before):
    """Metrics that tools/test.py logged into its new timestamped folder."""
    new = sorted(set(glob.glob(osp.join(work_dir, '*', '*.json'))) - before)
    for path in reversed(new):
        with open(path) as f:
            return json.load(f), osp.dirname(path)
    raise SystemExit(f'demo: no test metrics found under {work_dir}')


def det_chance_map(ann_file, seed=0, boxes_per_image=20):
    """COCO mAP of random guesses: boxes of plausible sizes at random
    places, random classes and scores (what a model that learnt nothing
    scores)."""
    import contextlib
    import io

    import numpy as np
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(ann_file)
    rng = np.random.default_rng(seed)
    sides = np.array([a['bbox'][2:] for a in gt.dataset['annotations']])
    cat_ids = gt.getCatIds()
    guesses = []
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
    """mIoU of predicting the majority class (background) everywhere:
    IoU_bg = share of background pixels, every other IoU = 0."""
    import cv2
    import numpy as np
    counts = np.zeros(256, np.int64)
    for path in glob.glob(osp.join(ann_dir, '*.png')):
        counts += np.bincount(cv2.imread(path, 0).ravel(), minlength=256)
    majority = int(counts[:num_classes].argmax())
    share = counts[majority] / counts[:num_classes].sum()
    return share / num_classes, share


def tile_pictures(folder, out_file, count=6, cols=2, scale=2):
    """One PNG of the first ``count`` pictures tools/test.py drew (each
    ground truth | prediction), enlarged ``scale`` times."""
    import cv2
    import numpy as np
    paths = sorted(glob.glob(osp.join(folder, '*.jpg')) +
                   glob.glob(osp.join(folder, '*.png')))[:count]
    if not paths:
        return None
    pics = [cv2.resize(cv2.imread(p), None, fx=scale, fy=scale,
                       interpolation=cv2.INTER_CUBIC) for p in paths]
    h = max(p.shape[0] for p in pics)
    w = max(p.shape[1] for p in pics)
    canvas = np.full((h * ((len(pics) + cols - 1) // cols), w * cols, 3),
                     255, np.uint8)
    for i, pic in enumerate(pics):
        r, c = divmod(i, cols)
        canvas[r * h:r * h + pic.shape[0], c * w:c * w + pic.shape[1]] = pic
    cv2.imwrite(out_file, canvas)
    return out_file


def train_and_test(console, name, config, run_dir, env, show_dir=None):
    """tools/train.py, then tools/test.py on the checkpoint it saved."""
    work_dir = osp.join(run_dir, name)
    py = sys.executable
    t0 = time.time()
    console.header(f'train {name}: {config}')
    console.run([py, 'tools/train.py', config, '--work-dir', work_dir],
                osp.join(run_dir, f'{name}_train.out'), env)
    train_s = time.time() - t0
    ckpt = latest_checkpoint(work_dir)
    console.note(f'checkpoint: {osp.relpath(ckpt, ROOT)}')

    console.header(f'test {name} from its checkpoint')
    before = set(glob.glob(osp.join(work_dir, '*', '*.json')))
    cmd = [py, 'tools/test.py', config, ckpt, '--work-dir', work_dir]
    if show_dir:
        # draw only confident boxes, so that the small pictures stay legible
        cmd += ['--show-dir', show_dir, '--cfg-options',
                'default_hooks.visualization.score_thr=0.4']
    console.run(cmd, osp.join(run_dir, f'{name}_test.out'), env)
    metrics, log_dir = test_metrics(work_dir, before)
    return dict(metrics=metrics, log_dir=log_dir, ckpt=ckpt,
                train_s=train_s, total_s=time.time() - t0)


def main(argv=None):
    args = parse_args(argv)
    os.chdir(ROOT)  # the demo configs name data/demo relative to the repo
    start = time.time()
    console = Console(total_stages=3 if args.skip_seg else 5)
    run_dir = unique_run_dir(args.work_dir)
    threads = pick_threads(args.threads)
    env = child_env(threads)
    print(console.style('mmsb demo', BOLD) + ': SB-ResNet models trained '
          'from scratch on generated shapes, on the CPU (5-6 min on 2 '
          'cores)')
    print(f'  outputs: {run_dir}/   threads per process: {threads}')

    console.header(f'demo data in {DATA_ROOT}/ (generated on first use)')
    sys.path.insert(0, ROOT)
    from mmsb.data.demo import ensure_demo_data
    det_root = ensure_demo_data('det', DATA_ROOT)
    seg_root = None if args.skip_seg else ensure_demo_data('seg', DATA_ROOT)
    for root in filter(None, (det_root, seg_root)):
        with open(osp.join(root, 'demo_meta.json')) as f:
            meta = json.load(f)
        console.note(f'{root}: {meta["num_train"]} train / {meta["num_val"]}'
                     f' val images of {meta["img_size"]}x{meta["img_size"]}')

    rows = []
    det = train_and_test(console, 'det', DET_CONFIG, run_dir, env,
                         show_dir='predictions')
    picture = tile_pictures(
        osp.join(det['log_dir'], 'predictions'),
        osp.join(run_dir, 'det_predictions.png'))
    map_chance, map50_chance = det_chance_map(
        osp.join(det_root, 'annotations', 'instances_val2017.json'))
    m = det['metrics']
    rows.append(('detection', 'bbox mAP', m['coco/bbox_mAP'], map_chance,
                 'random boxes', det['total_s']))
    rows.append(('detection', 'bbox mAP@50', m['coco/bbox_mAP_50'],
                 map50_chance, 'random boxes', None))

    if not args.skip_seg:
        seg = train_and_test(console, 'seg', SEG_CONFIG, run_dir, env)
        chance, bg_share = seg_chance_miou(
            osp.join(seg_root, 'annotations', 'validation'), num_classes=4)
        m = seg['metrics']
        rows.append(('segmentation', 'mIoU', m['mIoU'] / 100, chance,
                     f'all background ({bg_share:.0%} of pixels)',
                     seg['total_s']))
        rows.append(('segmentation', 'aAcc', m['aAcc'] / 100, bg_share,
                     'all background', None))

    total = time.time() - start
    table = summary_table(rows, total)
    print('\n' + table)
    if picture:
        print(f'\npredictions (left ground truth, right prediction): '
              f'{picture}')
    print(f'checkpoints: {osp.relpath(det["ckpt"], ROOT)}' +
          ('' if args.skip_seg else f', {osp.relpath(seg["ckpt"], ROOT)}'))
    print(f'evaluate again: python tools/test.py {DET_CONFIG} '
          f'{osp.relpath(det["ckpt"], ROOT)}')
    with open(osp.join(run_dir, 'summary.txt'), 'w') as f:
        f.write(table + '\n')
    with open(osp.join(run_dir, 'summary.json'), 'w') as f:
        json.dump(dict(total_s=round(total, 1), threads=threads, rows=[
            dict(task=r[0], metric=r[1], result=r[2], chance=r[3],
                 chance_is=r[4]) for r in rows]), f, indent=1)


def summary_table(rows, total):
    head = ('task', 'metric', 'result', 'chance', 'chance is', 'time')
    body = [(t, m, f'{r:.3f}', f'{c:.3f}', what,
             '' if s is None else f'{s:.0f}s')
            for t, m, r, c, what, s in rows]
    widths = [max(len(x) for x in col) for col in zip(head, *body)]

    def fmt(cells):
        return '  '.join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()

    lines = ['summary (metrics of the saved checkpoints on the val split)',
             fmt(head), fmt(['-' * w for w in widths])]
    lines += [fmt(r) for r in body]
    lines.append(f'total wall time: {total:.0f}s ({total / 60:.1f} min)')
    return '\n'.join(lines)


if __name__ == '__main__':
    main()
