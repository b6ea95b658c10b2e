"""Faults a user makes with the demo configs end in one ``error: ...`` line
that names the file or key, exit code 2, before anything is written."""
import importlib.util
import os.path as osp

import pytest
import torch
from demo_utils import (CONFIGS, REPO, explain, listing, overrides, run,
                        tool)


def load_tool(name):
    """tools/<name>.py as a module (tools/ is not a package)."""
    spec = importlib.util.spec_from_file_location(
        f'mmsb_tools_{name}', osp.join(REPO, 'tools', f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def work_dir(tmp_path):
    """A work dir that already holds an earlier run's files."""
    work = tmp_path / 'work'
    (work / '20240101_000000').mkdir(parents=True)
    (work / '20240101_000000' / '20240101_000000.log').write_text('old\n')
    (work / 'last_checkpoint').write_text(str(work / 'iter_8.pth'))
    return work


def run_failing(capsys, name, argv):
    with pytest.raises(SystemExit) as exc:
        load_tool(name).main(argv)
    err = capsys.readouterr().err
    return exc.value.code, err


def one_error_line(err):
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith('error: '), err
    return lines[0]


def test_unknown_backbone_option(tmp_path, work_dir, capsys):
    cfg = tmp_path / 'bad_backbone.py'
    cfg.write_text(f'_base_ = {CONFIGS["det"]!r}\n'
                   'model = dict(backbone=dict(bogus_option=3))\n')
    before = listing(work_dir)
    code, err = run_failing(capsys, 'train', [
        str(cfg), '--work-dir', str(work_dir), '--cfg-options',
        *overrides('det', tmp_path)
    ])
    line = one_error_line(err)
    assert code == 2
    assert str(cfg) in line and 'bogus_option' in line, line
    assert listing(work_dir) == before
    assert not (tmp_path / 'data').exists()  # no data generated either


def test_truncated_checkpoint_to_resume(tmp_path, work_dir, capsys):
    from mmengine.logging import HistoryBuffer
    ckpt = tmp_path / 'iter_8.pth'
    torch.save(dict(meta=dict(iter=8, epoch=0), message_hub=dict(
        log_scalars={'train/loss': HistoryBuffer([1.0, 0.5], [1, 1])}),
        state_dict={'w': torch.zeros(64, 64)}), str(ckpt))
    data = ckpt.read_bytes()
    ckpt.write_bytes(data[:len(data) // 2])
    before = listing(work_dir)
    code, err = run_failing(capsys, 'train', [
        CONFIGS['cls'], '--work-dir', str(work_dir), '--resume', str(ckpt),
        '--cfg-options', *overrides('cls', tmp_path)
    ])
    line = one_error_line(err)
    assert code == 2
    assert str(ckpt) in line and 'not a readable checkpoint' in line, line
    assert listing(work_dir) == before


def test_truncated_checkpoint_to_test(tmp_path, work_dir, capsys):
    ckpt = tmp_path / 'broken.pth'
    ckpt.write_bytes(b'PK\x03\x04 not really a checkpoint')
    before = listing(work_dir)
    code, err = run_failing(capsys, 'test', [
        CONFIGS['seg'], str(ckpt), '--work-dir', str(work_dir)])
    line = one_error_line(err)
    assert code == 2 and str(ckpt) in line, line
    assert listing(work_dir) == before


@pytest.mark.parametrize('task', ['det', 'seg', 'cls'])
def test_demo_dataset_root_may_be_missing(tmp_path, task):
    """The one exception of the preflight: a demo dataset's data_root is
    made on first use, so its absence is not an error (and checking it
    writes nothing)."""
    common = load_tool('_common')
    cfg = common.load_config(CONFIGS[task])
    for split in ('train', 'val', 'test'):
        cfg[f'{split}_dataloader'].dataset.data_root = str(tmp_path / 'new')
    common.check_datasets(cfg, CONFIGS[task])
    assert not (tmp_path / 'new').exists()


def test_missing_root_of_other_dataset_types_still_fails(tmp_path):
    common = load_tool('_common')
    cfg = common.load_config(CONFIGS['det'])
    cfg.train_dataloader.dataset.type = 'CocoDataset'
    cfg.train_dataloader.dataset.data_root = str(tmp_path / 'coco')
    with pytest.raises(common.PreflightError,
                       match=r'train_dataloader\.dataset\.data_root does '
                       r'not exist'):
        common.check_datasets(cfg, CONFIGS['det'])


@pytest.mark.slow
def test_missing_dataset_path_cli(tmp_path, work_dir):
    """The real process: exit status 2 and one line on stderr."""
    missing = tmp_path / 'nowhere' / 'coco'
    before = listing(work_dir)
    proc = run(tool('train.py') + [
        CONFIGS['det'], '--work-dir', str(work_dir), '--cfg-options',
        'train_dataloader.dataset.type=CocoDataset',
        f'train_dataloader.dataset.data_root={missing}/'
    ], cwd=tmp_path, extra_env=dict(PYTHONWARNINGS='ignore'))
    # (else the environment's pkg_resources UserWarnings, raised when
    # mmengine is imported, would precede the error line on stderr)
    assert proc.returncode == 2, explain(proc)
    line = one_error_line(proc.stderr)
    assert 'train_dataloader.dataset.data_root does not exist' in line
    assert str(missing) in line
    assert listing(work_dir) == before
    assert not (tmp_path / 'nowhere').exists()
