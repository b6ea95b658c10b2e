"""tools/analysis/benchmark.py (``make bench``, docs/benchmark.md) at a tiny
size on CPU: the JSON and markdown it writes, and the errors for bad input.
It checks the tool, not speed: no timing is asserted."""
import glob
import json
import math
import os.path as osp
import subprocess
import sys

import pytest
import torch
from utils import REPO, env, load_tool

TOOL = osp.join(REPO, 'tools', 'analysis', 'benchmark.py')
ENV = env()


@pytest.fixture(scope='module')
def bench():
    return load_tool('analysis/benchmark')


@pytest.mark.slow
def test_tiny_run_writes_json_and_markdown(tmp_path):
    out, md = tmp_path / 'b.json', tmp_path / 'b.md'
    res = subprocess.run(
        [sys.executable, TOOL, '--models', 'sb-r50', 'nl50', '--mode', 'all',
         '--batch-sizes', '1', '2', '--resolution', '64', '64',
         '--det-resolution', '64', '64', '--repeats', '1', '--warmup', '0',
         '--profile', '1', '--json', out, '--md', md],
        cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    r = json.loads(out.read_text())
    assert set(r) == {'machine', 'settings', 'models', 'runs', 'ratios',
                      'profile', 'batch_sizes', 'complete'}
    assert r['complete'] is True
    assert r['machine']['device'] == 'cpu' and r['machine']['threads'] == 1
    assert list(r['models']) == ['r50', 'sb-r50', 'nl50']   # r50 added
    sb = r['models']['sb-r50']
    assert sb['params_M'] == pytest.approx(25.99, abs=0.01)
    assert sb['gflops'] == pytest.approx(4.14, abs=0.01)
    assert sb['paper'] == dict(params_M=25.99, gflops=4.13, img_per_s=1836)
    assert set(r['runs']) == {'infer', 'train', 'det'}
    for mode in ('infer', 'train'):
        assert set(r['runs'][mode]) == {'1', '2'}
        for bs, run in r['runs'][mode].items():
            assert set(run) == {'r50', 'sb-r50', 'nl50'}
            assert run['r50']['ratio_wall'] == 1.0
            assert run['r50']['paired_ratio_wall'] == 1.0
            for m in run.values():
                assert len(m['wall_s']) == 1 and m['img_per_s'] > 0
                assert m['img_per_s'] == pytest.approx(
                    int(bs) / m['median_wall_s'])
                assert m['ratio_cpu'] > 0       # CPU: process-time ratios
            ratios = r['ratios'][mode][bs]
            assert set(ratios) == {'sb-r50/r50', 'sb-r50/nl50'}
            assert ratios['sb-r50/nl50'] == pytest.approx(
                run['sb-r50']['img_per_s'] / run['nl50']['img_per_s'])
    assert all(m['peak_mem_MB'] > 0 for m in r['runs']['train']['1'].values())
    assert 'peak_mem_MB' not in r['runs']['infer']['1']['r50']
    det = r['runs']['det']['2']
    assert set(det) == {'r50', 'sb-r50'} and det['r50']['ratio_wall'] == 1
    assert math.isfinite(r['ratios']['det']['2']['sb-r50/r50'])
    assert r['settings']['det']['amp'] == 'none'
    assert [(p['mode'], p['batch_size']) for p in r['profile']] == [
        ('infer', 1), ('infer', 2), ('train', 1), ('train', 2), ('det', 2)]
    top = r['profile'][0]['models']['sb-r50']['top']
    assert top and all(len(row) == 3 for row in top)
    text = md.read_text()
    assert '| SB-ResNet-50 ' in text and '| paper img/s |' in text
    assert '| paper | Tables 8, 9 |' in text and 'Faster R-CNN' in text
    assert text.splitlines()[0] in res.stdout     # stdout: the same tables


@pytest.mark.slow
def test_a_run_stopped_part_way_keeps_what_it_measured(tmp_path):
    """The JSON and markdown are written after every measured batch size:
    a run stopped at its time limit (here: killed once the first is in)
    leaves that one, marked incomplete, and never half a file."""
    import signal
    import time
    out, md = tmp_path / 'b.json', tmp_path / 'b.md'
    proc = subprocess.Popen(
        [sys.executable, TOOL, '--models', 'sb-r50', '--mode', 'infer',
         '--batch-sizes', '1', '32', '--resolution', '64', '64',
         '--repeats', '3', '--warmup', '1', '--no-flops', '--json', out,
         '--md', md], cwd=REPO, env=ENV, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 240
        while not out.exists() and proc.poll() is None and \
                time.time() < deadline:
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    r = json.loads(out.read_text())
    assert r['complete'] is False
    assert list(r['runs']['infer']) == ['1']
    assert '| SB-ResNet-50 ' in md.read_text()
    assert not list(tmp_path.glob('*.tmp'))


@pytest.mark.parametrize('argv, message', [
    (['--batch-sizes', '0'], '--batch-sizes must be >= 1, got 0'),
    (['--models', 'r101'], "invalid choice: 'r101'"),
    (['--resolution', '16', '16'], 'must be >= 32, got 16'),
    (['--repeats', '0'], '--repeats must be >= 1, got 0'),
    (['--device', 'tpu'], '--device tpu: expected cpu, cuda or cuda:N'),
    (['--compile', '--warmup', '0'], '--compile needs --warmup >= 1'),
])
def test_bad_input_is_refused_before_work(bench, capsys, argv, message):
    with pytest.raises(SystemExit) as e:
        bench.parse_args(argv)
    assert e.value.code != 0 and message in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason='CUDA is available')
def test_cuda_without_cuda_names_the_flag(bench, capsys):
    with pytest.raises(SystemExit) as e:
        bench.parse_args(['--device', 'cuda'])
    assert e.value.code != 0
    assert '--device cuda: CUDA is not available' in capsys.readouterr().err


def test_timer_interleaves_steps_and_relates_them_to_r50(bench):
    """benchmark.Timer (not mmengine's Runner): every step once a round,
    warm-up rounds not timed, ratios of throughput to r50."""
    calls = []
    steps = {k: (lambda k=k: calls.append(k)) for k in ('r50', 'sb-r50')}
    out = bench.Timer(bench.parse_args([])).run(
        steps, images=4, warmup=1, repeats=2, log=lambda msg: None)
    assert sorted(calls) == ['r50'] * 3 + ['sb-r50'] * 3
    assert set(out) == {'r50', 'sb-r50'}
    assert out['r50']['ratio_wall'] == 1.0
    assert len(out['sb-r50']['wall_s']) == 2 and 'img_per_s' in out['sb-r50']


def test_docs_show_the_committed_results():
    """docs/benchmark.md's results are the tables of the results committed
    in docs/benchmark/ (benchmark.py --update-docs), each naming its
    machine, threads and commit; the README's parameter cost is theirs."""
    import re
    bench = load_tool('analysis/benchmark')
    with open(osp.join(REPO, 'docs', 'benchmark.md'), encoding='utf-8') as f:
        page = f.read()
    start, end = (page.index(m) for m in bench.DOC_MARKS)
    shown = page[start + len(bench.DOC_MARKS[0]):end]
    assert shown == bench.docs_results()
    assert shown.count('commit ') >= 2 and ' threads; torch ' in shown
    with open(osp.join(REPO, 'docs', 'benchmark', 'cpu-1thread-b1.json')) as f:
        models = json.load(f)['models']
    extra = models['sb-r50']['params_M'] - models['r50']['params_M']
    with open(osp.join(REPO, 'README.md'), encoding='utf-8') as f:
        readme = f.read()
    assert re.search(rf'\+{extra:.2f}M parameters on ResNet-50', readme)
    # its throughput range: SB / R50 of every committed inference and
    # training result
    ratios = []
    for path in glob.glob(osp.join(REPO, 'docs', 'benchmark', '*.json')):
        with open(path) as f:
            res = json.load(f)['ratios']
        ratios += [r['sb-r50/r50'] for mode in ('infer', 'train')
                   for r in res.get(mode, {}).values()]
    text = ' '.join(readme.split())
    assert f"{min(ratios):.2f}-{max(ratios):.2f}× ResNet-50's throughput" \
        in text


def test_one_stage_models_put_sb_in_that_stage_only(bench):
    """sb-r50-res2/3/4 (the attribution of SB-ResNet-50's extra time): SB
    in the named stage's every block and nowhere else; not in the default
    (the paper's) model set."""
    assert bench.parse_args([]).models == list(bench.PAPER)
    assert not set(bench.PAPER) & {f'sb-r50-{s}' for s in bench.STAGES}
    for i, stage in enumerate(bench.STAGES):
        net = bench.build_classifier(f'sb-r50-{stage}').backbone
        assert [[b.sb_channels for b in layer]
                for layer in map(lambda n: getattr(net, n), net.res_layers)
                ] == [[3 * (j == i)] * n for j, n in enumerate((3, 4, 6, 3))]


def test_stage_tables_attribute_the_extra_time(bench, tmp_path):
    """The stage table and the repeated-runs table: extra ms per step over
    R-50 of each one-stage model and SB-ResNet-50, from the medians of one
    run, with the sum of the three; the median over runs."""
    def result(walls, gflops=None):
        return dict(runs=dict(train={'8': {
            k: dict(median_wall_s=w) for k, w in walls.items()}}),
            models={k: dict(gflops=g) for k, g in (gflops or {}).items()},
            machine=dict(commit='abc', threads=2, channels_last=False))
    keys = ['r50', 'sb-r50-res2', 'sb-r50-res3', 'sb-r50-res4', 'sb-r50']
    one = result(dict(zip(keys, (1.0, 1.01, 1.03, 1.05, 1.08))),
                 dict(zip(keys, (4.0, 4.01, 4.01, 4.02, 4.04))))
    text = '\n'.join(bench.stage_table(one))
    assert "extra time goes: train, batch 8" in text
    row = {r.split('|')[1].strip(): [c.strip() for c in r.split('|')[2:-1]]
           for r in text.splitlines() if r.startswith('| ')}
    assert row['res2'] == ['+10.0', '+1.0%', '11%', '+10.0', '+0.25%', '25%']
    assert row['res4'][:3] == ['+50.0', '+5.0%', '56%']
    assert row['sum of the three'][:2] == ['+90.0', '+9.0%']
    assert row['res2-res4 (SB-ResNet-50)'][:2] == ['+80.0', '+8.0%']
    assert bench.stage_table(result(dict(r50=1., **{'sb-r50': 1.1}))) == []
    paths = []
    for i, shift in enumerate((0.0, 0.002, 0.010)):
        walls = dict(zip(keys, (1.0, 1.01 + shift, 1.03, 1.05, 1.08)))
        paths.append(tmp_path / f'{i}.json')
        paths[-1].write_text(json.dumps(result(walls)))
    rows = [r for r in bench.stage_series(paths) if r.startswith('| ')]
    assert [c.strip() for c in rows[-1].split('|')[1:-1]] == [
        'median of 3', 'abc', 'train', '8', '2', '+12.0', '+30.0', '+50.0',
        '+92.0', '+80.0', '1000']
    assert bench.stage_series(paths[:0]) == []


def test_blocks_are_the_blocks_of_r50_and_sb_r50(bench):
    """--mode blocks times, per SB stage, R-50's bottleneck, SB-ResNet-50's
    (SBResNet's defaults), the SB block with zeros for its branch (the
    widening alone) and the branch with its concatenation alone, at the
    stage's shape."""
    for i, stage in enumerate(bench.STAGES):
        blocks = bench.build_blocks(stage, (224, 224))
        planes, hw = 64 * 2**i, 56 // 2**i
        assert list(blocks) == ['r50', 'sb-r50', 'sb-r50-widened',
                                'sb-branch']
        for key in ('r50', 'sb-r50', 'sb-r50-widened'):
            assert blocks[key][1] == [(planes * 4, hw, hw)]
        sb, wide = blocks['sb-r50'][0], blocks['sb-r50-widened'][0]
        assert sb.conv3.in_channels == wide.conv3.in_channels == planes + 3
        assert blocks['r50'][0].conv3.in_channels == planes
        assert sb.spatial_bias.pooled_size == 10
        branch, shapes = blocks['sb-branch']
        assert shapes == [(planes, hw, hw)] * 2
        x = torch.randn(2, planes, hw, hw)
        out = branch(x, x).detach()
        assert out.shape == (2, planes + 3, hw, hw)
        assert torch.equal(out[:, :planes], x) and out[:, planes:].std() > 0
    # the widened block: SB's block with zeros in place of the branch
    x = torch.randn(2, planes, hw, hw)
    assert torch.equal(wide.spatial_bias(x), torch.zeros(2, 3, 10, 10))
    assert wide(torch.randn(2, planes * 4, hw, hw)).shape == (
        2, planes * 4, hw, hw)


def _blocks_run(r50=100., sb=110.):
    return {f'{s}/{phase}': {
        k: dict(median_wall_s=ms / 1e3) for k, ms in zip(
            ('r50', 'sb-r50', 'sb-r50-widened', 'sb-branch'), vals)}
        for phase, s, vals in (
            ('train', 'res2', (r50, sb, 104, 8)),
            ('train', 'res3', (50, 54, 52, 3)),
            ('train', 'res4', (40, 41, 40.5, 1)),
            ('infer', 'res2', (30, 33, 31, 2)))}


def test_block_cells_sum_the_blocks_of_each_stage(bench):
    cells = bench.block_cells(_blocks_run())
    assert list(cells) == ['train', 'infer']
    assert cells['train'][0] == ('res2', 3, 100, 110, 10, 0.1, 4, 8)
    # 3 + 4 + 6 blocks: 3*100 + 4*50 + 6*40 = 740 ms of R-50 blocks
    assert [round(v, 6) if isinstance(v, float) else v
            for v in cells['train'][-1]] == [
        'res2-res4, x blocks', 13, 740, 792, 52, round(52 / 740, 6), 23, 42]
    # a run cut after res2: its sums count res2's 3 blocks only
    assert cells['infer'][-1][:5] == ('res2, x blocks', 3, 90, 99, 9)
    text = '\n'.join(bench.blocks_table(dict(runs=dict(blocks={
        '8': _blocks_run()}))))
    assert 'batch 8, forward + backward' in text
    assert 'batch 8, forward, no_grad, eval mode' in text
    assert '| res2-res4, x blocks |     13 |         740.0 |' in text


def test_blocks_series_keeps_each_run_paired(bench, tmp_path):
    """Each cell is the median of the runs' own cells: SB - R-50 within a
    run, never a median of SB against a median of R-50 of other runs."""
    paths = []
    for i, (r50, sb) in enumerate(((100, 110), (200, 205), (150, 180))):
        paths.append(tmp_path / f'{i}.json')
        paths[-1].write_text(json.dumps(dict(
            runs=dict(blocks={'8': _blocks_run(r50, sb)}),
            machine=dict(commit='abc', threads=2, channels_last=False))))
    text = '\n'.join(bench.blocks_series(paths))
    assert 'commit abc, batch 8, 2 threads: each cell the median of 3 runs' \
        in text
    row = next(r for r in text.splitlines() if r.startswith('| res2 '))
    # extras 10, 5, 30 within the runs: median 10 (the median of SB's
    # times against R-50's would say 180 - 150 = 30); shares 10%, 2.5%,
    # 20%: median 10% (not 10 / 150)
    assert [c.strip() for c in row.split('|')[1:-1]][:6] == [
        'res2', '3', '150.00', '180.00', '+10.00', '+10.0%']
    per_run = [r for r in text.splitlines() if r.startswith('| 0.json')]
    assert len(per_run) == 2 and '+52.0' in per_run[0]
    assert bench.blocks_series([]) == []


def test_block_step_trains_or_infers(bench):
    """train: train mode, gradients reach the parameters and the inputs and
    are freed after the step; infer: eval mode, no graph."""
    seen = []

    class Probe(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(4, 4)

        def forward(self, x):
            seen.append((self.training, torch.is_grad_enabled()))
            y = self.lin(x)
            if y.requires_grad:
                y.register_hook(lambda g: seen.append('backward'))
            return y
    timer = bench.Timer(bench.parse_args([]))
    probe = Probe()
    step = timer.block_step(probe, [(2, 4)], train=True)
    seen.clear()
    step()
    assert seen == [(True, True), 'backward']
    assert all(p.grad is None for p in probe.parameters())
    step = timer.block_step(probe, [(2, 4)], train=False)
    seen.clear()
    assert not step().requires_grad
    assert seen == [(False, False)]


@pytest.mark.slow
def test_blocks_mode_writes_its_tables(tmp_path):
    out = tmp_path / 'b.json'
    res = subprocess.run(
        [sys.executable, TOOL, '--mode', 'blocks', '--batch-sizes', '2',
         '--resolution', '64', '64', '--repeats', '1', '--warmup', '0',
         '--json', out], cwd=REPO, env=ENV, capture_output=True, text=True,
        timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    r = json.loads(out.read_text())
    assert r['complete'] is True and r['models'] == {}
    assert set(r['runs']) == {'blocks'}
    per = r['runs']['blocks']['2']
    assert sorted(per) == sorted(f'{s}/{p}' for s in bench_stages()
                                 for p in ('train', 'infer'))
    for run in per.values():
        assert set(run) == {'r50', 'sb-r50', 'sb-r50-widened', 'sb-branch'}
        assert all(len(m['wall_s']) == 1 for m in run.values())
    assert res.stdout.count('where SB\'s extra time goes') == 2
    assert 'res2-res4, x blocks' in res.stdout
    assert 'throughput ratios' not in res.stdout


def bench_stages():
    return load_tool('analysis/benchmark').STAGES
