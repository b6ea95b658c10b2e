"""tools/analysis/evidence.py: --quick runs every task through the real
tools, stores each run and renders the report from the stored runs; an
ablation's verdicts against SB and plain, in words; which runs of a
two-class task learnt it. (The Pathfinder data:
tests/test_data/test_pathfinder.py.)"""
import json
import os
import os.path as osp
import re
import subprocess
import sys

import pytest
from utils import REPO, load_tool

TASKS = ('pathfinder', 'control', 'fashion', 'ctx-local', 'ctx-global',
         'ctx-spatial', 'det', 'seg')


@pytest.mark.slow
def test_quick_mode_stores_runs_and_renders_from_them(tmp_path):
    """--quick: every task, one seed, both models, the Pathfinder probes;
    each run leaves its JSON, the report is rendered from those alone
    (--report-only), and nothing is overwritten without --force."""
    work = tmp_path / 'work'
    tool = osp.join(REPO, 'tools', 'analysis', 'evidence.py')
    env = dict(os.environ, PYTHONPATH=REPO, OMP_NUM_THREADS='1')

    def call(*args, timeout=900):
        return subprocess.run([sys.executable, tool, '--quick',
                               '--work-dir', str(work), *args],
                              cwd=str(tmp_path), env=env, capture_output=True,
                              text=True, timeout=timeout)

    res = call()
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    runs = work / 'runs'
    for task in TASKS:
        for variant in ('plain', 'sb'):
            rec = json.loads((runs / task / f'{variant}-seed0.json')
                             .read_text())
            assert rec['task'] == task and rec['variant'] == variant
            assert rec['seed'] == 0 and rec['s_per_iter'] > 0
            assert rec['commit'] and 'randomness.seed=0' in rec['options']
    probes = json.loads((runs / 'pathfinder' / 'probes.json').read_text())
    assert probes['pooled_size'] == 6
    assert all(0 <= probes[k] <= 100 for k in ('markers', 'pooled', 'ink'))
    for rule in ('local', 'global', 'spatial'):
        ctx = json.loads((runs / f'ctx-{rule}' / 'probes.json').read_text())
        assert ctx['field'] == ctx['field_measured'] == 35
        assert ctx['data']['rule'] == rule
        assert ctx['n_within'] + ctx['n_beyond'] > 0
        for probe in ('object', 'window', 'coords'):
            assert 0 <= ctx[probe]['all'] <= 100
        rec = json.loads((runs / f'ctx-{rule}' / 'sb-seed0.json').read_text())
        assert rec['metric_key'] == 'obj/acc_beyond'
        assert {'obj/acc', 'obj/acc_within', 'mIoU', 'obj/n_beyond'} <= \
            set(rec['metrics'])
    report = work / 'evidence.md'
    text = report.read_text()
    assert 'Quick mode' in text
    for title in ('Pathfinder', 'Shapes (control', 'Fashion-MNIST',
                  'Demo detection', 'Demo segmentation'):
        assert re.search(rf'^\| {re.escape(title)}', text, re.M), title
    # one seed: no interval, no verdict
    assert text.count('not established') >= 5
    assert 'shortcut probes' in text
    # the context section: the field, the probes, a table per rule
    section = text[text.index('## Context at a distance'):]
    assert '**35 px**' in section
    for rule in ('local', 'global', 'spatial'):
        assert re.search(rf'^\| {rule} \| [\d.n]+ \(', section, re.M), rule
        assert f'**Context: {rule} rule' in section
    for name in TASKS:
        assert (work / 'evidence' / f'{name}.png').stat().st_size > 5000
    # Fashion-MNIST ran on a tiny IDX stand-in in the work dir
    assert (work / 'data' / 'fashion-mnist' / 'train-images-idx3-ubyte'
            ).stat().st_size == 16 + 16 * 28 * 28

    # the report again from the stored runs alone: the same tables
    again = call('--report-only', '--force', '--out',
                 str(tmp_path / 'again.md'), timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    def tables(t):
        return [ln for ln in t.splitlines() if ln.startswith('|')]
    assert tables((tmp_path / 'again.md').read_text()) == tables(text)

    # nothing overwritten without --force; --resume reuses every run
    refused = call(timeout=300)
    assert refused.returncode == 2 and 'exists; pass --force' in \
        refused.stderr
    refused = call('--out', str(tmp_path / 'third.md'), timeout=300)
    assert refused.returncode == 2 and 'holds results' in refused.stderr
    resumed = call('--resume', '--out', str(tmp_path / 'third.md'))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert 'started' not in resumed.stdout
    assert resumed.stdout.count('2 runs, 2 done before') == len(TASKS)

    # the blocks SB is compared with, and their cost, on a context task
    blocks = call('--resume', '--force', '--costs', '--tasks', 'ctx-spatial',
                  '--variants', 'plain', 'sb', 'nl', 'gc')
    assert blocks.returncode == 0, blocks.stdout[-3000:] + \
        blocks.stderr[-3000:]
    assert blocks.stdout.count('started') == 2
    for variant, plugin in (('nl', 'NonLocal2d'), ('gc', 'ContextBlock')):
        rec = json.loads((runs / 'ctx-spatial' / f'{variant}-seed0.json')
                         .read_text())
        assert rec['config'].endswith(
            f'fcn_{variant}-r20-cifar_1xb8-600it_context-spatial-112.py')
    costs = json.loads((runs / 'context-costs.json').read_text())
    assert list(costs['models']) == ['plain', 'sb', 'nl', 'gc']
    assert costs['models']['sb']['params'] > costs['models']['plain'][
        'params']
    text = report.read_text()
    assert re.search(r'^\| non-local \(NonLocal2d\) \| 1 \|', text, re.M)
    assert '### Cost beside effect' in text and '| nl |' in text

    # what the trained models' features hold (--carry): no training, the
    # checkpoints of the runs above, stored by variant and seed
    probed = call('--resume', '--force', '--carry', '--tasks', 'ctx-spatial',
                  '--variants', 'plain', 'sb', 'gc')
    assert probed.returncode == 0, probed.stdout[-3000:] + \
        probed.stderr[-3000:]
    assert 'started' not in probed.stdout
    carried = json.loads((runs / 'ctx-spatial' / 'carry.json').read_text())
    assert set(carried) == {'plain-seed0', 'sb-seed0', 'gc-seed0'}
    assert set(carried['sb-seed0']['probes']) == {
        'features', 'sb', 'sb.layer1.0', 'sb.layer1.1', 'sb.layer2.0',
        'sb.layer2.1'}
    assert set(carried['gc-seed0']['probes']) == {'features'}
    assert carried['sb-seed0']['checkpoint'].endswith('.pth')
    assert carried['sb-seed0']['model']['obj/acc_beyond'] == json.loads(
        (runs / 'ctx-spatial' / 'sb-seed0.json').read_text())['metric']
    text = report.read_text()
    section = text[text.index('### What the features hold'):]
    assert re.search(r'^\| spatial \| SB \(paper defaults\) \| 0 \| [\d.]+ '
                     r'\| [\d.]+ \([\d.]+\) \| [\d.]+ \([\d.]+\) \|$',
                     section, re.M), section[:1500]
    assert re.search(r'^\| spatial \| GCNet \(ContextBlock\) \| 0 \| .* '
                     r'\| – \|$', section, re.M)

    # an ablation and the 4x schedule, added to the stored runs: their
    # sections appear, the 4x runs train 4x the iterations
    more = call('--resume', '--force', '--tasks', 'control', '--variants',
                'plain', 'sb', 'sb-global', 'plain-4x', 'sb-4x')
    assert more.returncode == 0, more.stdout[-3000:] + more.stderr[-3000:]
    assert more.stdout.count('started') == 3
    rec = json.loads((runs / 'control' / 'sb-4x-seed0.json').read_text())
    assert rec['val_curve'][-1][0] == 16
    assert 'train_cfg.max_iters=16' in rec['options']
    rec = json.loads((runs / 'control' / 'sb-global-seed0.json')
                     .read_text())
    assert 'model.backbone.sb_cfg.pooled_size=1' in rec['options']
    text = report.read_text()
    assert 'What in spatial bias does it' in text
    assert re.search(r'^\| \| P = 1: a global summary.*\(`sb-global`\)',
                     text, re.M)
    assert '1 of the 6 seeds a verdict needs: too few to say' in text
    assert re.search(r'^\|\s+\| 4x \(16 it\) \| 1 \|', text, re.M)
    assert (work / 'evidence' / 'control-schedule.png').stat().st_size > 5000


@pytest.mark.parametrize('effect,vs_plain,vs_sb,n,words', [
    ('better', 'better', 'not established', 6, 'keeps it'),
    ('better', 'not established', 'worse', 8, 'loses it'),
    ('better', 'worse', 'worse', 8, 'reverses it'),
    ('better', 'better', 'worse', 8, 'keeps part of it'),
    ('better', 'better', 'better', 8, 'more than SB'),
    ('better', 'worse', 'not established', 8,
     'reverses it against plain; not told apart from SB'),
    ('better', 'not established', 'not established', 8,
     'not told apart from SB nor from plain'),
    # on the control SB is worse: losing that effect is being better
    ('worse', 'not established', 'better', 8, 'loses it'),
    ('worse', 'worse', 'not established', 8, 'keeps it'),
    ('not established', 'better', 'better', 8, 'nothing to keep'),
    ('better', 'better', 'not established', 5, 'too few to say'),
])
def test_ablation_reading(effect, vs_plain, vs_sb, n, words):
    out = load_tool('analysis/evidence').reading(effect, vs_plain, vs_sb, n)
    assert out == words or out.endswith(': ' + words)


def diff(mean, lo, hi, n, verdict='not established'):
    return dict(mean=mean, lo=lo, hi=hi, n=n, verdict=verdict)


@pytest.mark.parametrize('one,four,words', [
    # enough seeds for verdicts: the verdicts decide
    (diff(-12, -17, -8, 8, 'worse'), diff(-10, -14, -6, 8, 'worse'),
     'SB worse at 1x and at 4x: the difference stays'),
    (diff(-12, -17, -8, 8, 'worse'), diff(-1, -3, 2, 8),
     'SB worse at 1x, not established at 4x: the difference fades'),
    (diff(0, -1, 1, 6), diff(3, 1, 5, 6, 'better'),
     'not established at 1x, SB better at 4x'),
    (diff(0, -1, 1, 6), diff(0, -1, 1, 6), 'not established at either'),
    # 3 seeds: no verdict is possible, the t intervals are read instead,
    # and a 1x verdict of more seeds must not count
    (diff(-12, -20, -4, 3), diff(-11, -18, -4, 3),
     '3 seeds allow no rank-test verdict; by the 95% t intervals alone, the '
     'gap stays at 4x'),
    (diff(-12, -20, -4, 3), diff(-2, -9, 5, 3), 'shrinks to less than half'),
    (diff(-12, -20, -4, 3), diff(-8, -15, 1, 3), 'too few seeds to tell'),
    (diff(-12, -20, -4, 3), diff(6, 2, 10, 3), 'reverses at 4x'),
    (diff(1, -5, 7, 3), diff(5, 1, 9, 3), 'a gap shows only at 4x'),
    (diff(0, -1, 1, 3), diff(0.2, -0.5, 0.9, 3),
     'neither interval excludes 0: no gap shown at either length (gaps '
     'within the intervals are not ruled out)'),
    (diff(0, 0, 0, 3), diff(0, -0.4, 0.4, 3), 'no gap shown at either'),
    # one seed has no interval: nothing to read, whatever the means
    (diff(50, float('nan'), float('nan'), 1),
     diff(49, float('nan'), float('nan'), 1), 'one seed: no interval'),
    (diff(50, float('nan'), float('nan'), 1), diff(49, 47, 51, 3),
     'one seed: no interval'),
    # an interval that could not be computed is not one that includes 0
    (diff(5, float('nan'), float('nan'), 3), diff(6, 1, 11, 3),
     'no interval to read'),
])
def test_schedule_reading(one, four, words):
    out = load_tool('analysis/evidence').schedule_reading(one, four)
    assert out.startswith(words) or words in out


def test_schedule_reading_names_the_model_compared():
    out = load_tool('analysis/evidence').schedule_reading(
        diff(49, 48, 50, 8, 'better'), diff(49, 48, 50, 8, 'better'), 'GC')
    assert out.startswith('GC better at 1x and at 4x')


def test_context_4x_rows_pair_the_same_seeds_at_1x_and_4x():
    """A context model's 4x reading compares it with plain-4x, and the 1x
    difference beside it with plain, both on exactly the seeds all four
    ran: here the 1x gap over all six seeds (+10) differs from the one on
    the seeds that ran 4x (+40), and the report must show +40; a seed only
    one side ran is left out of both."""
    ev = load_tool('analysis/evidence')
    sys.path.insert(0, osp.join(REPO, 'tools', 'analysis'))
    from evidence_context import schedule_rows

    def rec(variant, seed, metric):
        return dict(variant=variant, seed=seed, metric=metric, s_per_iter=1.0,
                    options=[], data={}, commit='x')

    gap = {0: 40, 1: 40, 2: 0, 3: 0, 4: -20, 5: 0}
    runs = {'plain': [rec('plain', s, 50) for s in range(6)],
            'gc': [rec('gc', s, 50 + gap[s] + s / 10) for s in range(6)],
            'plain-4x': [rec('plain-4x', s, 50) for s in (0, 1, 2, 8)],
            # seed 7: no plain-4x twin; seed 8: no 1x run
            'gc-4x': [rec('gc-4x', s, 95 + s) for s in (0, 1, 7, 8)]}
    titles = {'gc': 'GCNet'}
    rows = schedule_rows(runs, ev.schedule_pair, ev.schedule_reading, titles)
    assert len(rows) == 1
    r = rows[0]
    assert r['variant'] == 'gc-4x' and r['seeds'] == [0, 1]
    assert r['one']['n'] == r['four']['n'] == 2
    assert r['one']['mean'] == pytest.approx(40.05)
    assert r['four']['mean'] == pytest.approx(45.5)
    assert r['per_seed'] == [(0, 90.0, 95), (1, pytest.approx(90.1), 96)]
    assert r['reading'] == ('2 seeds allow no rank-test verdict; by the 95% '
                            't intervals alone, the gap stays at 4x (both '
                            'intervals exclude 0 on the same side)')
    # the model is named in a verdict (6 seeds or more)
    seeds = range(6)
    runs['plain-4x'] = [rec('plain-4x', s, 50 + s / 10) for s in seeds]
    runs['gc-4x'] = [rec('gc-4x', s, 95 + s / 5) for s in seeds]
    runs['gc'] = [rec('gc', s, 90 + s / 7) for s in seeds]
    rows = schedule_rows(runs, ev.schedule_pair, ev.schedule_reading, titles)
    assert rows[0]['reading'].startswith('GC better at 1x and at 4x')
    # no plain-4x: no 4x reading at all
    del runs['plain-4x']
    assert schedule_rows(runs, ev.schedule_pair, ev.schedule_reading,
                         titles) == []


def test_each_task_names_its_data_set():
    """A task's demo_data is a data set mmsb.data.demo generates, or
    Fashion-MNIST's files; its configs exist."""
    from mmsb.data.demo import TASKS as GENERATED
    evidence = load_tool('analysis/evidence')
    for name, task in evidence.TASKS.items():
        assert task['demo_data'] in GENERATED + ('fashion', ), name
        for model in ('plain', 'sb'):
            assert osp.isfile(evidence.config_path(name, model)), (name, model)


def test_learnt_counts_runs_above_three_standard_errors():
    """On 2000 validation images a chance-level classifier scores 50 ± 1.118
    (one binomial standard error): a run learnt the task above 53.354."""
    learnt = load_tool('analysis/evidence').learnt
    recs = [dict(seed=s, metric=m) for s, m in
            enumerate((50.9, 53.3, 53.4, 64.15, 47.0))]
    out = learnt(recs, 50.0, 2000)
    assert out['se'] == pytest.approx(1.1180, abs=1e-4)
    assert out['line'] == pytest.approx(53.354, abs=1e-3)
    assert out['n'] == 5 and out['seeds'] == [(2, 53.4), (3, 64.15)]
    assert out['others_within']
    out = learnt(recs + [dict(seed=5, metric=46.6)], 50.0, 2000)
    assert not out['others_within']


def test_report_counts_learnt_runs_of_each_pathfinder_variant(tmp_path):
    """The stored Pathfinder runs of plain and SB, and two made-up ablation
    variants beside them: the report lists, per variant, how many of its
    runs learnt the task and which."""
    src = osp.join(REPO, 'docs', 'evidence', 'runs', 'pathfinder')
    runs = tmp_path / 'runs' / 'pathfinder'
    runs.mkdir(parents=True)
    for name in os.listdir(src):
        if name.startswith(('plain-seed', 'sb-seed')):
            (runs / name).write_text(open(osp.join(src, name)).read())
    for variant, metrics in (('sb-global', (58.0, 50.1)),
                             ('sb-add', (50.2, 49.0))):
        for seed, metric in enumerate(metrics):
            rec = json.loads((runs / f'sb-seed{seed}.json').read_text())
            rec.update(variant=variant, metric=metric)
            (runs / f'{variant}-seed{seed}.json').write_text(json.dumps(rec))
    out = tmp_path / 'report.md'
    res = subprocess.run(
        [sys.executable, osp.join(REPO, 'tools', 'analysis', 'evidence.py'),
         '--report-only', '--runs-dir', str(tmp_path / 'runs'), '--out',
         str(out)], env=dict(os.environ, PYTHONPATH=REPO),
        capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    text = out.read_text()
    section = text[text.index('which runs learnt the task'):]
    assert '\n- P = 1: a global summary, no layout: 1 of 2 (seed 0: 58.00)\n' \
        in section
    assert '\n- add instead of concat: 0 of 2\n' in section
    assert re.search(r'^- plain: \d of 8$', section, re.M)


def test_readme_table_is_rendered_from_the_stored_runs(tmp_path):
    """README.md's "Does it help?" table is what the evidence tool renders
    from docs/evidence/runs today: rendering it again into a copy of the
    README changes nothing."""
    import shutil
    readme = tmp_path / 'README.md'
    shutil.copy(osp.join(REPO, 'README.md'), readme)
    res = subprocess.run(
        [sys.executable, osp.join(REPO, 'tools', 'analysis', 'evidence.py'),
         '--report-only', '--out', str(tmp_path / 'evidence.md'),
         '--readme', str(readme)], env=dict(os.environ, PYTHONPATH=REPO),
        capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    evidence = load_tool('analysis/evidence')
    _, ours, _ = evidence.readme_block(osp.join(REPO, 'README.md'))
    _, again, _ = evidence.readme_block(str(readme))
    assert ours == again
    assert ours.count('\n|') >= 6  # the header and a row per task
    # the context tasks' 4x rows are read against 1x in the report
    text = (tmp_path / 'evidence.md').read_text()
    assert 'At 4x the schedule, each model against plain at 4x' in text
    assert re.search(r'^- \*\*GCNet \(ContextBlock\)\*\* \(seeds 0, 1', text,
                     re.M)
    # a run's own note (ctx-spatial gc-4x seed 0: its first 1300 iterations
    # ran beside a second copy) marks its row's time and is shown below
    assert re.search(r'^\| GCNet, 4x schedule \|.* ‡ \|$', text, re.M)
    assert re.search(r'^‡ GCNet, 4x schedule, seed 0: about the first 1300 '
                     r'of its 2400 iterations ran beside a second copy', text,
                     re.M)


def test_demo_doc_range_is_the_stored_runs():
    """docs/demo.md's range of the demo detector's and segmentor's results
    is the range of the stored evidence runs of those SB configs."""
    evidence = load_tool('analysis/evidence')
    runs, _ = evidence.load_runs(osp.join(REPO, 'docs', 'evidence', 'runs'))
    with open(osp.join(REPO, 'docs', 'demo.md'), encoding='utf-8') as f:
        text = ' '.join(f.read().split())
    det = [r['metric'] for r in runs['det']['sb']]
    seg = [r['metric'] for r in runs['seg']['sb']]
    assert f'bbox mAP {min(det):.3f}-{max(det):.3f}' in text
    assert f'mIoU {min(seg):.2f}-{max(seg):.2f}%' in text


@pytest.mark.timeout(120)
def test_a_second_copy_in_the_same_work_dir_stops_before_work(
        tmp_path, monkeypatch):
    """While one evidence.py holds a work folder, a second one started on it
    stops at once and names the holder, with --carry too; --report-only
    alone still runs."""
    import fcntl
    evidence = load_tool('analysis/evidence')

    def no_work(*args, **kwargs):
        raise AssertionError('work started despite the lock')

    monkeypatch.setattr(evidence, 'prepare_data', no_work)
    monkeypatch.setattr(evidence, 'run_carry', no_work)
    work = tmp_path / 'work'
    held = evidence.hold_work_dir(str(work))
    # flock is per open file: a second open in this process conflicts too
    argv = ['--tasks', 'ctx-global', '--variants', 'plain', '--seeds', '1',
            '--work-dir', str(work), '--out', str(tmp_path / 'e.md'),
            '--runs-dir', str(tmp_path / 'runs')]
    with pytest.raises(SystemExit, match=rf'in use by another evidence.py '
                       rf'\(pid {os.getpid()}\)'):
        evidence.main(argv)
    with pytest.raises(SystemExit, match='in use by another evidence.py'):
        evidence.main(argv + ['--report-only', '--carry'])
    evidence.main(argv + ['--report-only'])  # no runs: no report, no error
    held.close()
    again = evidence.hold_work_dir(str(work))
    fcntl.flock(again, fcntl.LOCK_UN)
    again.close()


@pytest.mark.timeout(120)
def test_no_training_outlives_a_failing_run_all(tmp_path):
    """When run_all stops on an error of its own (here the log raises once
    the runs are under way), the training processes it started are killed,
    not left running in the work folder after its lock is gone."""
    evidence = load_tool('analysis/evidence')

    class Run:
        task, variant = 'ctx-global', 'plain'

        def __init__(self, seed):
            self.seed = seed
            self.work_dir = str(tmp_path / f'seed{seed}')

        def command(self):
            return [sys.executable, '-c', 'import time; time.sleep(100)']

    runs = [Run(0), Run(1)]

    def log(msg):
        if msg.endswith('seed 1: started'):
            raise RuntimeError('stop here')

    args = type('Args', (), dict(threads=1, device='cpu', jobs=2))()
    with pytest.raises(RuntimeError, match='stop here'):
        evidence.run_all(args, runs, log)
    assert [r.proc.poll() for r in runs] == [-9, -9]
