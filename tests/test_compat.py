"""mmsb.compat: Runner checkpoints under torch>=2.6 weights_only loading,
malicious checkpoints refused, gloo/DDP on a CPU-only host."""
import argparse
import io
import json
import os
import os.path as osp
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer
from PIL import Image
from utils import free_port

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
PY = sys.executable
ENV = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS='1')

CONFIG = """
custom_imports = dict(imports=['mmsb'], allow_failed_imports=False)
default_scope = 'mmpretrain'
model = dict(
    type='ImageClassifier',
    backbone=dict(type='SBResNetCIFAR', depth=11, base_channels=8,
                  sb_cfg=dict(pooled_size=4)),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(type='LinearClsHead', num_classes=2, in_channels=128,
              loss=dict(type='CrossEntropyLoss')))
data_preprocessor = dict(num_classes=2, mean=[127.5] * 3, std=[127.5] * 3)
pipeline = [dict(type='LoadImageFromFile'), dict(type='PackInputs')]
train_dataloader = dict(
    batch_size=2, num_workers=0,
    dataset=dict(type='CustomDataset', data_root='{root}', data_prefix='train',
                 pipeline=pipeline),
    sampler=dict(type='DefaultSampler', shuffle=True))
val_dataloader = dict(
    batch_size=2, num_workers=0,
    dataset=dict(type='CustomDataset', data_root='{root}', data_prefix='val',
                 pipeline=pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False))
test_dataloader = val_dataloader
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_evaluator = val_evaluator
optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.01, momentum=0.9))
train_cfg = dict(by_epoch=False, max_iters={iters}, val_interval=1000)
val_cfg = dict()
test_cfg = dict()
default_hooks = dict(
    checkpoint=dict(type='CheckpointHook', interval=2, by_epoch=False),
    logger=dict(type='LoggerHook', interval=1))
log_processor = dict(by_epoch=False)
env_cfg = dict(dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0)
"""


def _default_load_is_weights_only():
    """Whether a plain ``torch.load`` refuses a global nobody allowlisted
    (torch >= 2.6), or unpickles anything (older torch: no allowlist to
    enforce there)."""
    buf = io.BytesIO()
    torch.save({'args': argparse.Namespace(a=1)}, buf)
    buf.seek(0)
    try:
        torch.load(buf)
    except pickle.UnpicklingError:
        return True
    return False


WEIGHTS_ONLY_DEFAULT = _default_load_is_weights_only()
needs_weights_only_default = pytest.mark.skipif(
    not WEIGHTS_ONLY_DEFAULT,
    reason='torch.load is unrestricted by default on this torch: the '
    'allowlist has nothing to enforce (docs/install.md, "Compatibility")')


def make_cls_data(root):
    rng = np.random.default_rng(0)
    for split, n in (('train', 4), ('val', 4)):
        for label in ('dark', 'light'):
            d = osp.join(root, split, label)
            os.makedirs(d, exist_ok=True)
            for i in range(n):
                base = 40 if label == 'dark' else 210
                img = np.clip(base + rng.normal(0, 20, (32, 32, 3)), 0, 255)
                Image.fromarray(img.astype(np.uint8)).save(
                    osp.join(d, f'{i}.png'))


def write_config(tmp_path, iters):
    path = tmp_path / f'tiny_cls_{iters}.py'
    path.write_text(CONFIG.format(root=tmp_path / 'data', iters=iters))
    return str(path)


def run(args, cwd):
    res = subprocess.run(args, cwd=cwd, env=ENV, capture_output=True,
                         text=True, timeout=600)
    return res


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('compat')
    make_cls_data(str(tmp / 'data'))
    cfg2 = write_config(tmp, 2)
    work = str(tmp / 'work')
    res = run([PY, 'tools/train.py', cfg2, '--work-dir', work], ROOT)
    assert res.returncode == 0, res.stderr[-3000:]
    ckpt = osp.join(work, 'iter_2.pth')
    assert osp.isfile(ckpt)
    return tmp, work, ckpt


@pytest.mark.slow
def test_runner_checkpoint_needs_and_gets_the_allowlist(trained):
    _, _, ckpt = trained
    probe = textwrap.dedent(f"""
        import torch, sys
        if sys.argv[1] == 'mmsb':
            import mmsb
        ck = torch.load({ckpt!r}, map_location='cpu')
        print(type(ck['message_hub']['log_scalars']['train/loss']).__name__)
    """)
    bare = run([PY, '-c', probe, 'bare'], ROOT)
    if WEIGHTS_ONLY_DEFAULT:
        assert bare.returncode != 0
        assert 'Weights only load failed' in bare.stderr    # torch alone
    else:  # older torch loads anything by default: nothing to allow
        assert bare.returncode == 0, bare.stderr[-2000:]
    ok = run([PY, '-c', probe, 'mmsb'], ROOT)
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert ok.stdout.strip() == 'HistoryBuffer'


@pytest.mark.slow
def test_resume_continues_from_the_checkpoint(trained):
    tmp, work, ckpt = trained
    cfg4 = write_config(tmp, 4)
    res = run([PY, 'tools/train.py', cfg4, '--work-dir', work, '--resume',
               ckpt], ROOT)
    assert res.returncode == 0, res.stderr[-3000:]
    log = res.stdout + res.stderr
    assert 'resumed' in log.lower()
    assert 'Iter(train) [3/4]' in log and 'Iter(train) [1/4]' not in log
    assert osp.isfile(osp.join(work, 'iter_4.pth'))


@pytest.mark.slow
def test_mim_test_with_runner_checkpoint(trained):
    tmp, work, ckpt = trained
    cfg2 = write_config(tmp, 2)
    mim = osp.join(osp.dirname(PY), 'mim')
    res = run([mim, 'test', 'mmpretrain', cfg2, '--checkpoint', ckpt,
               '--work-dir', str(tmp / 'mimtest')], ROOT)
    assert res.returncode == 0, (res.stdout + res.stderr)[-3000:]
    assert 'accuracy/top1' in res.stdout + res.stderr


class _Evil:
    def __init__(self, fn, args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


def _save(obj, path):
    torch.save({'state_dict': {}, 'meta': obj}, path)


@needs_weights_only_default
@pytest.mark.parametrize('payload,words', [
    ((os.system, ('touch {marker}', )), 'blocked'),
    ((getattr, (HistoryBuffer, '__init__')), 'refusing builtins.getattr'),
    ((getattr, (np.ndarray, 'tofile')), 'refusing builtins.getattr'),
    ((eval, ('__import__("os")', )), 'Unsupported global'),
])
def test_malicious_checkpoints_are_refused(tmp_path, payload, words):
    import mmsb  # noqa: F401
    marker = tmp_path / 'pwned'
    fn, args = payload
    args = tuple(a.format(marker=marker) if isinstance(a, str) else a
                 for a in args)
    path = tmp_path / 'evil.pth'
    _save(_Evil(fn, args), path)
    with pytest.raises(pickle.UnpicklingError, match=words):
        torch.load(path, map_location='cpu')
    assert not marker.exists()
    # mmengine's loader (used by --resume, load_from, Pretrained) too
    from mmengine.runner import CheckpointLoader
    with pytest.raises(pickle.UnpicklingError):
        CheckpointLoader.load_checkpoint(str(path), map_location='cpu')
    assert not marker.exists()


def test_history_buffer_statistics_methods_round_trip(tmp_path):
    import mmsb  # noqa: F401
    buf = HistoryBuffer()
    buf.update(1.0)
    buf.update(3.0)
    torch.save({'b': buf, 'arr': np.arange(3), 'f': np.float64(2.5)},
               tmp_path / 'b.pth')
    loaded = torch.load(tmp_path / 'b.pth')
    assert loaded['b'].mean() == 2.0 and loaded['b'].max() == 3.0
    assert loaded['arr'].tolist() == [0, 1, 2] and loaded['f'] == 2.5


def test_allowlist_follows_what_torch_offers():
    """The probe leaves torch's list as it was; without (object, name)
    pairs only globals pickled under their own names are registered."""
    from mmsb.compat import (CHECKPOINT_SAFE_GLOBALS, allowlist_takes_names,
                             allowlisted_checkpoint_globals,
                             history_buffer_getattr)
    ser = torch.serialization
    if not hasattr(ser, 'add_safe_globals'):  # torch < 2.4: no allowlist
        assert allowlist_takes_names() is False
    else:
        before = set(ser.get_safe_globals())
        takes = allowlist_takes_names()
        assert set(ser.get_safe_globals()) == before
        # what `import mmsb` (conftest) registered
        assert set(allowlisted_checkpoint_globals(takes)) <= before
    assert allowlisted_checkpoint_globals(True) == CHECKPOINT_SAFE_GLOBALS
    plain = allowlisted_checkpoint_globals(False)
    assert HistoryBuffer in plain and np.ndarray in plain
    assert history_buffer_getattr not in plain
    assert not any(isinstance(g, tuple) for g in plain)


def test_allowlist_probe_agrees_with_a_weights_only_load():
    """The probe without I/O answers what a weights-only load of a pickled
    global does when that global is allowlisted as a pair."""
    from mmsb.compat import (_load_takes_names, _name_probe,
                             allowlist_takes_names)
    ser = torch.serialization
    before = set(ser.get_safe_globals()) \
        if hasattr(ser, 'get_safe_globals') else None
    by_load = _load_takes_names((_name_probe, 'mmsb.compat._name_probe'))
    assert allowlist_takes_names() is by_load
    if before is None:  # torch < 2.4: no allowlist, so no pairs
        assert by_load is False
    else:  # the probe leaves torch's list as it was
        assert set(ser.get_safe_globals()) == before


_DDP_WORKER = """
import json, os, sys, torch
import mmsb
import torch.distributed as dist
from mmsb.compat import MMSBDistributedDataParallel, init_cpu_distributed_from_env
assert not dist.is_initialized()   # importing mmsb starts nothing
assert init_cpu_distributed_from_env()
assert dist.is_initialized() and dist.get_backend() == 'gloo'
rank = dist.get_rank()
torch.manual_seed(rank)          # different data per rank
model = torch.nn.Linear(4, 1)
torch.nn.init.constant_(model.weight, 1.0)
# The Runner always passes device_ids=[LOCAL_RANK]; CPU modules must cope.
ddp = MMSBDistributedDataParallel(model, device_ids=[int(os.environ['LOCAL_RANK'])])
ddp(torch.randn(8, 4)).pow(2).mean().backward()
print(json.dumps(dict(rank=rank, world=dist.get_world_size(),
                      grad=model.weight.grad.tolist())))
dist.destroy_process_group()
"""


@pytest.mark.slow
def test_gloo_and_cpu_ddp_in_two_processes(tmp_path):
    script = tmp_path / 'worker.py'
    script.write_text(_DDP_WORKER)
    procs = []
    port = str(free_port())  # a fixed one may be taken (a parallel run)
    for rank in range(2):
        env = dict(ENV, RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE='2',
                   MASTER_ADDR='127.0.0.1', MASTER_PORT=port)
        procs.append(subprocess.Popen([PY, str(script)], env=env, cwd=ROOT,
                                      stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True))
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-2000:]
    results = [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]
    assert sorted(r['rank'] for r in results) == [0, 1]
    assert all(r['world'] == 2 for r in results)
    # DDP averaged the gradients: both ranks hold the same values
    assert results[0]['grad'] == results[1]['grad']


_USER_INIT = """
import os, torch.distributed as dist
import mmsb  # noqa: F401
assert not dist.is_initialized()
# the user's own process group, after importing mmsb, as in any script
dist.init_process_group('gloo', rank=int(os.environ['RANK']),
                        world_size=int(os.environ['WORLD_SIZE']))
print('ok', dist.get_world_size())
dist.destroy_process_group()
"""


@pytest.mark.slow
def test_import_starts_no_process_group(tmp_path):
    """With torchrun's variables set, ``import mmsb`` leaves the process
    group to the user (it used to start gloo itself, and a user's own
    init_process_group then failed)."""
    script = tmp_path / 'user.py'
    script.write_text(_USER_INIT)
    env = dict(ENV, RANK='0', LOCAL_RANK='0', WORLD_SIZE='1',
               MASTER_ADDR='127.0.0.1', MASTER_PORT=str(free_port()))
    res = subprocess.run([PY, str(script)], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.split() == ['ok', '1']


@pytest.mark.slow
def test_import_registers_no_demo_datasets():
    """The demo datasets come with ``import mmsb.data`` (the demo configs'
    custom_imports), not with ``import mmsb``."""
    code = ('import sys, mmsb; from mmdet.registry import DATASETS; '
            'print(DATASETS.get("DemoCocoDataset") is None, '
            '"mmsb.data" in sys.modules)')
    res = subprocess.run([PY, '-c', code], env=ENV, cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.split() == ['True', 'False']


def test_no_process_group_without_torchrun_env(monkeypatch):
    from mmsb.compat import init_cpu_distributed_from_env
    for var in ('RANK', 'LOCAL_RANK', 'WORLD_SIZE', 'MASTER_ADDR'):
        monkeypatch.delenv(var, raising=False)
    assert init_cpu_distributed_from_env() is False
    assert not torch.distributed.is_initialized()
