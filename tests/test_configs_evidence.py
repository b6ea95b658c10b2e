# Copyright (c) mmsb contributors. All rights reserved.
"""configs/evidence: SB-ResNet-20 and its plain twin on Fashion-MNIST, read by
mmpretrain's own FashionMNIST dataset, and ``make data-fashion``
(tools/data/fashion_mnist.sh).

Nothing here needs the real data: each test writes a few images in the IDX
format the data set is published in (the real files are 60,000 + 10,000 of
them), builds the configs' datasets through mmpretrain's registry on them and
runs the configs' pipelines, models and optimiser on what comes out.
"""
import gzip
import os
import os.path as osp
import subprocess

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope

from mmsb.data.idx import FILES, tiny_fashion_mnist

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
PLAIN = 'resnet20-cifar_1xb128-600it_fashion-mnist.py'
SB = 'sb-resnet20-cifar_1xb128-600it_fashion-mnist.py'
SCRIPT = osp.join(ROOT, 'tools', 'data', 'fashion_mnist.sh')
CLASSES = ('T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal',
           'Shirt', 'Sneaker', 'Bag', 'Ankle boot')
N_TRAIN, N_TEST = 8, 4


def _tiny_set():
    """{file name: IDX bytes}: random pixels, so that a flip, a shift or the
    wrong split shows; labels that run through the classes (train from 0,
    test from 3)."""
    return tiny_fashion_mnist(N_TRAIN, N_TEST)


@pytest.fixture
def data_root(tmp_path):
    """A folder holding the four unzipped IDX files, as FashionMNIST reads
    them with download=False."""
    root = tmp_path / 'fashion-mnist'
    root.mkdir()
    for name, data in _tiny_set().items():
        (root / name).write_bytes(data)
    return root


def _cfg(name, data_root=None):
    cfg = Config.fromfile(osp.join(ROOT, 'configs', 'evidence', name))
    if data_root is not None:
        for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
            cfg[key].dataset.data_root = str(data_root)
    return cfg


def _dataset(cfg, key):
    init_default_scope(cfg.default_scope)
    from mmpretrain.registry import DATASETS
    return DATASETS.build(cfg[key].dataset)


def _read(root, name):
    return np.frombuffer((root / name).read_bytes(), dtype=np.uint8)


# ------------------------------------------------------------- the configs
def test_sb_config_is_its_plain_twin_but_sb_stages():
    plain, sb = _cfg(PLAIN).to_dict(), _cfg(SB).to_dict()
    assert plain['custom_imports'] == sb['custom_imports'] == dict(
        imports=['mmsb'], allow_failed_imports=False)
    assert plain['model']['backbone'].pop('sb_stages') == (False, ) * 3
    assert sb['model']['backbone'].pop('sb_stages') == (True, True, False)
    assert plain == sb
    with open(osp.join(ROOT, 'configs', 'evidence', SB)) as f:
        assert f"_base_ = './{PLAIN}'" in f.read()


def test_the_full_test_set_is_val_and_test():
    cfg = _cfg(PLAIN)
    assert cfg.val_dataloader == cfg.test_dataloader
    ds = cfg.test_dataloader.dataset
    # mmpretrain 1.2 picks the t10k files by test_mode, not by split
    assert ds.type == 'FashionMNIST' and ds.split == 'test' and ds.test_mode
    assert ds.download is False and cfg.train_dataloader.dataset.download \
        is False
    assert cfg.train_cfg.max_iters == 600  # the "600it" of the file name
    assert cfg.train_dataloader.batch_size == 128  # the "1xb128"


def test_datasets_and_pipelines_read_idx_files(data_root):
    cfg = _cfg(PLAIN, data_root)
    train = _dataset(cfg, 'train_dataloader')
    test = _dataset(cfg, 'test_dataloader')
    assert (len(train), len(test)) == (N_TRAIN, N_TEST)
    assert train.metainfo['classes'] == test.metainfo['classes'] == CLASSES

    for ds, split, first in ((train, 'train', 0), (test, 't10k', 3)):
        images = _read(data_root, f'{split}-images-idx3-ubyte')[16:]
        images = images.reshape(-1, 28, 28)
        for i in range(len(ds)):
            sample = ds[i]
            x = sample['inputs']
            assert x.shape == (1, 32, 32) and x.dtype == torch.uint8
            assert int(sample['data_samples'].gt_label) == (first + i) % 10
            # 28 px centred in 32: 2 px of black on every side
            inner = x[0, 2:30, 2:30].numpy()
            assert int(x.sum()) == int(inner.astype(np.int64).sum())
            if split == 't10k':
                assert np.array_equal(inner, images[i])
            else:  # the image or its mirror, nothing else
                assert np.array_equal(inner, images[i]) or \
                    np.array_equal(inner, images[i][:, ::-1])
    # the training pipeline flips about half of the time (32 draws: all
    # alike with probability 2**-31)
    images = _read(data_root, 'train-images-idx3-ubyte')[16:]
    images = images.reshape(-1, 28, 28)
    flipped = [
        not np.array_equal(train[i]['inputs'][0, 2:30, 2:30].numpy(),
                           images[i])
        for i in range(N_TRAIN) for _ in range(4)]
    assert any(flipped) and not all(flipped)


def test_without_the_files_the_dataset_names_the_folder(tmp_path):
    cfg = _cfg(PLAIN, tmp_path)
    with pytest.raises(RuntimeError, match=str(tmp_path)):
        _dataset(cfg, 'train_dataloader')


@pytest.mark.parametrize('name', [PLAIN, SB])
def test_model_trains_one_step_on_the_pipeline_output(data_root, name):
    cfg = _cfg(name, data_root)
    train = _dataset(cfg, 'train_dataloader')
    init_default_scope(cfg.default_scope)
    from mmpretrain.registry import MODELS
    # as the Runner builds it: the top-level data_preprocessor joins the model
    cfg.model.setdefault('data_preprocessor', cfg.data_preprocessor)
    model = MODELS.build(cfg.model)
    backbone = model.backbone
    assert type(backbone).__name__ == 'SBResNetCIFAR' and backbone.depth == 20
    assert backbone.conv1.in_channels == 1  # the 3x3 stem on gray images
    with_sb = [
        [b.spatial_bias for b in getattr(backbone, layer)
         if getattr(b, 'spatial_bias', None) is not None]
        for layer in backbone.res_layers]
    if name == SB:
        assert [bool(s) for s in with_sb] == [True, True, False]
        assert all(m.pooled_size == 6 for s in with_sb for m in s)  # P = 6
    else:
        assert not any(with_sb)

    optim = build_optim_wrapper(model, cfg.optim_wrapper)
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    batch = pseudo_collate([train[i] for i in range(N_TRAIN)])
    # what the data preprocessor makes of it: one normalised gray channel
    data = model.data_preprocessor(batch, training=True)
    assert data['inputs'].shape == (N_TRAIN, 1, 32, 32)
    assert data['inputs'].dtype == torch.float32
    assert float(data['inputs'].min()) == pytest.approx(-72.94 / 90.02)

    model.train()
    losses = model.train_step(batch, optim)
    assert torch.isfinite(losses['loss'])
    moved = {k for k, v in model.named_parameters()
             if not torch.equal(v.detach(), before[k])}
    assert 'backbone.conv1.weight' in moved and 'head.fc.weight' in moved
    if name == SB:
        assert any('spatial_bias' in k for k in moved)


# ------------------------------------------------------ make data-fashion
def _run_script(dest, deb_dir, **env):
    return subprocess.run(
        ['bash', SCRIPT, str(dest)], capture_output=True, text=True,
        env=dict(os.environ, MMSB_DATA_NO_INSTALL='1',
                 FASHION_MNIST_DEB_DIR=str(deb_dir), **env))


def test_make_target_calls_the_script():
    res = subprocess.run(['make', '-n', 'data-fashion'], cwd=ROOT,
                         capture_output=True, text=True)
    if res.returncode == 127 or 'not found' in res.stderr:
        pytest.skip('make is not installed')
    assert res.returncode == 0, res.stderr
    assert 'tools/data/fashion_mnist.sh' in res.stdout


def test_script_without_files_says_what_to_do_in_one_line(tmp_path):
    empty, dest = tmp_path / 'deb', tmp_path / 'dest'
    empty.mkdir()
    res = _run_script(dest, empty)
    assert res.returncode == 1
    assert res.stdout == ''
    [line] = res.stderr.splitlines()
    assert "apt-get install dataset-fashion-mnist" in line
    assert str(dest) in line and all(name in line for name in FILES)
    assert not dest.exists()


def test_script_unzips_checks_and_keeps(tmp_path):
    deb, dest = tmp_path / 'deb', tmp_path / 'dest'
    deb.mkdir()
    tiny = _tiny_set()
    for name, data in tiny.items():
        (deb / f'{name}.gz').write_bytes(gzip.compress(data))
    first = _run_script(dest, deb)
    assert first.returncode == 0, first.stderr
    assert sorted(os.listdir(dest)) == sorted(FILES)  # no temporary left
    for name, data in tiny.items():
        assert (dest / name).read_bytes() == data
    assert f'train: {N_TRAIN} images' in first.stdout
    assert f't10k: {N_TEST} images' in first.stdout

    # a second run keeps what is there, even without any source
    mtime = (dest / FILES[0]).stat().st_mtime_ns
    again = _run_script(dest, tmp_path / 'nowhere')
    assert again.returncode == 0, again.stderr
    assert 'already holds the four' in again.stdout
    assert (dest / FILES[0]).stat().st_mtime_ns == mtime

    # the data set reads what the script wrote
    cfg = _cfg(PLAIN, dest)
    assert len(_dataset(cfg, 'test_dataloader')) == N_TEST


def test_script_refuses_a_truncated_file(tmp_path):
    deb, dest = tmp_path / 'deb', tmp_path / 'dest'
    deb.mkdir()
    for name, data in _tiny_set().items():
        if name == 't10k-images-idx3-ubyte':
            data = data[:-28]  # one row short
        (deb / f'{name}.gz').write_bytes(gzip.compress(data))
    res = _run_script(dest, deb)
    assert res.returncode == 1
    assert 't10k-images-idx3-ubyte' in res.stderr
    assert 'its IDX header says' in res.stderr
    assert 't10k-images-idx3-ubyte' not in os.listdir(dest)
    assert not [n for n in os.listdir(dest) if n.startswith('.')]
