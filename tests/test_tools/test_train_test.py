"""The demo configs through the real tools, as a user runs them: train a few
iterations, resume, evaluate with the real evaluator; survive a SIGKILL;
``mim train``; two gloo processes with tools/dist_train.sh.

Each test generates its own tiny data in a pytest tmp dir (on first use, as
a fresh machine would) and shortens the schedule with ``--cfg-options``.
"""
import glob
import json
import os.path as osp
import shutil
import sys

import pytest
import torch
from utils import (CONFIGS, HERE, METRIC_KEYS, REPO, TINY, explain,
                   free_port, load_ckpt, overrides, run, tool)

pytestmark = pytest.mark.slow


def train(task, tmp, work_dir, *extra, config=None, **kw):
    return run(tool('train.py') + [
        config or CONFIGS[task], '--work-dir', str(work_dir), *extra,
        '--cfg-options', *overrides(task, tmp, **kw)
    ], cwd=tmp)


def logged_iters(work_dir):
    """Training iterations the LoggerHook wrote, one list per run (the
    Runner's timestamped log folders, oldest first)."""
    runs = []
    for path in sorted(glob.glob(osp.join(str(work_dir), '*', 'vis_data',
                                          'scalars.json'))):
        with open(path) as f:
            records = [json.loads(line) for line in f]
        runs.append([r['iter'] for r in records if 'loss' in r])
    return runs


@pytest.mark.parametrize('task', ['det', 'seg', 'cls'])
def test_train_resume_test(tmp_path, demo_run, task):
    # 1. train from scratch, data generated on first use: the session's
    # run (conftest.demo_run), copied here with its data to go on from it
    shared, shared_work, first = demo_run(task)
    assert 'mmsb: generating the demo' in first.stdout + first.stderr
    shutil.copytree(shared / 'data', tmp_path / 'data')
    shutil.copytree(shared_work, tmp_path / 'work')
    work = tmp_path / 'work'
    # mmengine's last_checkpoint holds an absolute path: point it here
    (work / 'last_checkpoint').write_text(str(work / 'iter_2.pth'))
    assert (work / 'iter_2.pth').is_file()
    assert load_ckpt(str(work / 'iter_2.pth'))['meta']['iter'] == 2

    # 2. resume from the latest checkpoint and train further
    resumed = train(task, tmp_path, work, '--resume', max_iters=3,
                    ckpt_interval=3)
    assert resumed.returncode == 0, explain(resumed)
    out = resumed.stdout + resumed.stderr
    assert 'resumed epoch: 0, iter: 2' in out
    assert 'mmsb: generating' not in out  # the data is reused
    ckpt = load_ckpt(str(work / 'iter_3.pth'))
    assert ckpt['meta']['iter'] == 3
    assert logged_iters(work) == [[1, 2], [3]]

    # 3. evaluate the checkpoint with the config's real evaluator
    test_dir = tmp_path / 'test'
    show = ['--show-dir', 'pictures'] if task == 'det' else []
    tested = run(tool('test.py') + [
        CONFIGS[task], str(work / 'iter_3.pth'), '--work-dir', str(test_dir),
        *show, '--cfg-options', *overrides(task, tmp_path)
    ], cwd=tmp_path)
    assert tested.returncode == 0, explain(tested)
    [metrics_file] = glob.glob(str(test_dir / '*' / '*.json'))
    if show:  # what make demo tiles into its picture
        drawn = glob.glob(str(test_dir / '*' / 'pictures' / '*.jpg'))
        assert len(drawn) == TINY[task]['num_val']
    with open(metrics_file) as f:
        metrics = json.load(f)
    key = METRIC_KEYS[task]
    assert key in metrics and metrics[key] >= 0, metrics
    assert key in tested.stdout + tested.stderr


# A demo config plus a hook of demo_hooks.py (importable via PYTHONPATH).
HOOK_CONFIG = """\
_base_ = {base!r}
custom_imports = dict(imports=['mmsb', 'mmsb.data', 'demo_hooks'],
                      allow_failed_imports=False)
custom_hooks = [{hook}]
"""


def test_sigkill_mid_epoch_then_resume(tmp_path):
    """A run killed after the checkpoint of iteration 3 resumes from it and
    ends exactly as an uninterrupted run: 6 iterations, same weights."""
    # 24 images, batch 2: an epoch is 12 iterations, the kill is mid-epoch.
    kw = dict(max_iters=6, ckpt_interval=3)
    killed_cfg = tmp_path / 'killed.py'
    killed_cfg.write_text(HOOK_CONFIG.format(
        base=CONFIGS['cls'], hook="dict(type='SIGKILLAfterIter', at=4)"))
    work = tmp_path / 'work'
    killed = run(tool('train.py') + [
        str(killed_cfg), '--work-dir', str(work), '--cfg-options',
        *overrides('cls', tmp_path, **kw)
    ], cwd=tmp_path, extra_paths=[HERE])
    assert killed.returncode == -9, explain(killed)
    assert (work / 'iter_3.pth').is_file()
    assert not (work / 'iter_6.pth').exists()
    assert logged_iters(work) == [[1, 2, 3, 4]]  # 4 ran, was never saved

    resumed = train('cls', tmp_path, work, '--resume', **kw)
    assert resumed.returncode == 0, explain(resumed)
    assert 'resumed epoch: 0, iter: 3' in resumed.stdout + resumed.stderr

    whole_dir = tmp_path / 'whole'
    whole = train('cls', tmp_path, whole_dir, **kw)
    assert whole.returncode == 0, explain(whole)

    a = load_ckpt(str(work / 'iter_6.pth'))
    b = load_ckpt(str(whole_dir / 'iter_6.pth'))
    assert a['meta']['iter'] == b['meta']['iter'] == 6
    # 1-3 saved before the kill, 4-6 after the resume: as the whole run
    before_kill, after_resume = logged_iters(work)
    [uninterrupted] = logged_iters(whole_dir)
    assert before_kill[:3] + after_resume == uninterrupted == [1, 2, 3, 4, 5,
                                                               6]
    # same data order and optimizer state: the resumed model is the same
    for name, value in b['state_dict'].items():
        torch.testing.assert_close(a['state_dict'][name], value,
                                   rtol=1e-4, atol=1e-5, msg=name)


def test_mim_train(tmp_path):
    """`mim train mmpretrain <demo config>` on a fresh machine: mmpretrain's
    own tools/train.py, mmsb through custom_imports, data made on first
    use."""
    mim = osp.join(osp.dirname(sys.executable), 'mim')
    work = tmp_path / 'work'
    proc = run([mim, 'train', 'mmpretrain', CONFIGS['cls'], '--gpus', '0',
                '--work-dir', str(work), '--cfg-options',
                *overrides('cls', tmp_path)], cwd=tmp_path, timeout=400)
    assert proc.returncode == 0, explain(proc)
    assert (work / 'iter_2.pth').is_file()
    assert (tmp_path / 'data' / 'cls' / 'demo_meta.json').is_file()


def test_dist_train_two_gloo_ranks(tmp_path):
    """tools/dist_train.sh CONFIG 2 on a CPU host: torchrun starts two
    processes, mmsb initialises gloo in each, DDP trains them in step."""
    cfg = tmp_path / 'dist.py'
    cfg.write_text(HOOK_CONFIG.format(
        base=CONFIGS['cls'], hook="dict(type='RecordRankHook')"))
    work = tmp_path / 'work'
    proc = run(['bash', osp.join(REPO, 'tools', 'dist_train.sh'), str(cfg),
                '2', '--work-dir', str(work), '--cfg-options',
                *overrides('cls', tmp_path)],
               cwd=tmp_path, timeout=400, extra_paths=[HERE],
               extra_env=dict(PYTHON=sys.executable, PORT=str(free_port())))
    assert proc.returncode == 0, explain(proc)
    ranks = []
    for rank in (0, 1):
        with open(work / f'rank{rank}.json') as f:
            ranks.append(json.load(f))
    for rank, record in enumerate(ranks):
        assert record == dict(rank=rank, world_size=2, backend='gloo',
                              wrapper='MMSBDistributedDataParallel',
                              iters=2)
    [log] = glob.glob(str(work / '*' / '*.log'))  # rank 0 writes the log
    with open(log) as f:
        text = f.read()
    assert 'Distributed training: True' in text
    assert 'GPU number: 2' in text  # mmengine's name for the world size
    assert (work / 'iter_2.pth').is_file()


def test_dist_train_two_nodes_on_localhost(tmp_path):
    """Two "nodes" of one process each: tools/dist_train.sh twice, with
    NNODES=2, NODE_RANK 0 and 1, MASTER_ADDR and PORT as a user sets them
    on a cluster; they train as one gloo job of world size 2 and end with
    the same weights."""
    import subprocess
    cfg = tmp_path / 'dist.py'
    cfg.write_text(HOOK_CONFIG.format(
        base=CONFIGS['cls'], hook="dict(type='RecordRankHook', digest=True)"))
    work = tmp_path / 'work'
    port = str(free_port())
    from utils import env as tool_env
    procs = []
    for node in (0, 1):
        procs.append(subprocess.Popen(
            ['bash', osp.join(REPO, 'tools', 'dist_train.sh'), str(cfg), '1',
             '--work-dir', str(work), '--cfg-options',
             *overrides('cls', tmp_path, max_iters=3)],
            cwd=str(tmp_path), stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True,
            env=tool_env([HERE], dict(
                PYTHON=sys.executable, NNODES='2', NODE_RANK=str(node),
                MASTER_ADDR='127.0.0.1', PORT=port))))
    outs = [p.communicate(timeout=400)[0] for p in procs]
    for p, out in zip(procs, outs):
        assert p.returncode == 0, out[-3000:]
    ranks = [json.loads((work / f'rank{r}.json').read_text())
             for r in (0, 1)]
    for rank, record in enumerate(ranks):
        assert record['rank'] == rank and record['world_size'] == 2
        assert record['backend'] == 'gloo' and record['iters'] == 3
    assert ranks[0]['digest'] == ranks[1]['digest']


def _fake_srun(tmp_path):
    """An ``srun`` on the PATH that records its arguments instead of
    starting a job."""
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    srun = bin_dir / 'srun'
    srun.write_text('#!/usr/bin/env bash\n'
                    'printf "%s\\n" "$@" > "$SRUN_RECORD"\n'
                    'echo "PYTHONPATH=$PYTHONPATH" >> "$SRUN_RECORD"\n')
    srun.chmod(0o755)
    return bin_dir


@pytest.mark.parametrize('script,fourth,tool_name,extra', [
    ('slurm_train.sh', 'work_dirs/x', 'train.py', ['--work-dir=work_dirs/x']),
    ('slurm_test.sh', 'model.pth', 'test.py', ['model.pth']),
])
def test_slurm_scripts_run_the_documented_srun(tmp_path, script, fourth,
                                               tool_name, extra):
    import os
    import subprocess
    bin_dir = _fake_srun(tmp_path)
    record = tmp_path / 'srun.txt'
    env = dict(os.environ, PATH=f'{bin_dir}{os.pathsep}{os.environ["PATH"]}',
               SRUN_RECORD=str(record), GPUS='16', GPUS_PER_NODE='8',
               SRUN_ARGS='--time=1:00 --qos=high', PYTHON='/opt/py/python')
    proc = subprocess.run(
        ['bash', osp.join(REPO, 'tools', script), 'gpu', 'sb-r50',
         'configs/x.py', fourth, '--cfg-options', 'a=1 b'],
        env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    args = record.read_text().splitlines()
    assert args[:10] == [
        '-p', 'gpu', '--job-name=sb-r50', '--gres=gpu:8', '--ntasks=16',
        '--ntasks-per-node=8', '--cpus-per-task=5', '--kill-on-bad-exit=1',
        '--time=1:00', '--qos=high']
    assert args[10:13] == ['/opt/py/python', '-u',
                           osp.join(REPO, 'tools', tool_name)]
    assert args[13:-1] == ['configs/x.py', *extra, '--launcher=slurm',
                           '--cfg-options', 'a=1 b']
    assert args[-1].startswith(f'PYTHONPATH={REPO}/tools/..')


@pytest.mark.parametrize('script,usage', [
    ('dist_train.sh', 'CONFIG GPUS_PER_NODE'),
    ('dist_test.sh', 'CONFIG CHECKPOINT GPUS_PER_NODE'),
    ('slurm_train.sh', 'PARTITION JOB_NAME CONFIG WORK_DIR'),
    ('slurm_test.sh', 'PARTITION JOB_NAME CONFIG CHECKPOINT'),
])
def test_launchers_without_arguments_print_their_usage(script, usage):
    import subprocess
    proc = subprocess.run(['bash', osp.join(REPO, 'tools', script), 'a'],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert proc.stderr.startswith('usage: ') and usage in proc.stderr
