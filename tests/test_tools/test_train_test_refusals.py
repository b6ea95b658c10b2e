"""tools/train.py and tools/test.py refuse a user's mistake with one
``error: ...`` line on stderr (exit status 2) that names the file or key,
before anything is written: in-process ``main(argv)`` calls on small bad
inputs written here, then faults made with the demo configs (a model that
cannot be built, an unreadable checkpoint, a dataset's data_root), one of
them through the real process. The runs that succeed are in
test_train_test.py."""
import pytest
import torch
from utils import (CONFIGS, explain, listing, load_tool, overrides, run,
                   tool)

MODEL = """
default_scope = 'mmpretrain'
model = dict(type='ImageClassifier',
             backbone=dict(type='SBResNetCIFAR', depth=11, base_channels=8),
             neck=dict(type='GlobalAveragePooling'),
             head=dict(type='LinearClsHead', num_classes=2, in_channels=128))
"""


@pytest.fixture
def refused(tmp_path, capsys, monkeypatch):
    """``refused(tool, *argv)`` runs tools/<tool>.py's main(argv) in the tmp
    dir and returns the one line it ends with, after checking the exit
    status and that nothing under the tmp dir was written (neither the
    --work-dir given nor the default ./work_dirs)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv('LOCAL_RANK', '0')  # parse() sets it if unset

    def run(tool, *argv):
        before = listing(tmp_path)
        module = load_tool(tool)
        capsys.readouterr()
        with pytest.raises(SystemExit) as exc:
            module.main([str(a) for a in argv])
        out, err = capsys.readouterr()
        assert exc.value.code == 2, (exc.value.code, err)
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1, err
        assert listing(tmp_path) == before
        return lines[0]

    return run


def write(path, text):
    path.write_text(text)
    return path


# Each tool's arguments after the config: test.py needs a checkpoint.
def tool_args(tool, tmp_path):
    ckpt = tmp_path / 'epoch_1.pth'
    return ([str(ckpt)] if tool == 'test' else []) + [
        '--work-dir', str(tmp_path / 'work')]


# ---------------------------------------------------------------- config
@pytest.mark.parametrize('tool', ['train', 'test'])
def test_missing_config(tmp_path, refused, tool):
    cfg = tmp_path / 'configs' / 'nowhere.py'
    line = refused(tool, cfg, *tool_args(tool, tmp_path))
    assert line == f'error: config file not found: {cfg}'


@pytest.mark.parametrize('tool', ['train', 'test'])
def test_syntax_error_in_config(tmp_path, refused, tool):
    text = MODEL + 'train_cfg = dict(max_iters=\n'
    cfg = write(tmp_path / 'broken.py', text)
    line = refused(tool, cfg, *tool_args(tool, tmp_path))
    assert line == (f"error: {cfg}: cannot load config (SyntaxError: '(' was "
                    f'never closed (<unknown>, line {text.count(chr(10))}))')


def test_missing_base_config(tmp_path, refused):
    cfg = write(tmp_path / 'child.py', "_base_ = './parent.py'\n")
    line = refused('train', cfg, *tool_args('train', tmp_path))
    assert line == (f'error: {cfg}: cannot load config (FileNotFoundError: '
                    f"[Errno 2] No such file or directory: "
                    f"'{tmp_path}/./parent.py')")


@pytest.mark.parametrize('tool', ['train', 'test'])
def test_config_without_model(tmp_path, refused, tool):
    cfg = write(tmp_path / 'no_model.py', "default_scope = 'mmpretrain'\n")
    line = refused(tool, cfg, *tool_args(tool, tmp_path))
    assert line == f'error: {cfg}: the config has no `model`'


# -------------------------------------------------------------- datasets
def dataset_config(tmp_path, **datasets):
    """A config whose ``<split>_dataloader.dataset`` are ``datasets`` (dict
    text), on mmpretrain's CustomDataset under ``tmp_path/data``."""
    (tmp_path / 'data' / 'train').mkdir(parents=True)
    (tmp_path / 'data' / 'meta').mkdir()
    (tmp_path / 'data' / 'meta' / 'train.txt').write_text('train/0.png 0\n')
    text = MODEL + f'root = {str(tmp_path / "data")!r}\n'
    for split, ds in datasets.items():
        text += (f'{split}_dataloader = dict(batch_size=2, num_workers=0, '
                 f'sampler=dict(type="DefaultSampler"), dataset={ds})\n')
    return write(tmp_path / 'cfg.py', text)


GOOD = ("dict(type='CustomDataset', data_root=root, "
        "ann_file='meta/train.txt', data_prefix='train', pipeline=[])")


@pytest.mark.parametrize('tool', ['train', 'test'])
def test_missing_ann_file(tmp_path, refused, tool):
    cfg = dataset_config(
        tmp_path, train=GOOD, val=GOOD.replace('train.txt', 'val.txt'))
    line = refused(tool, cfg, *tool_args(tool, tmp_path))
    assert line == (f'error: {cfg}: val_dataloader.dataset.ann_file does not '
                    f'exist: {tmp_path}/data/meta/val.txt')


def test_missing_ann_file_of_a_wrapped_dataset(tmp_path, refused):
    wrapped = GOOD.replace("'meta/train.txt'", "'meta/all.txt'")
    cfg = dataset_config(tmp_path, train=(
        f"dict(type='RepeatDataset', times=2, dataset={wrapped})"))
    line = refused('train', cfg, *tool_args('train', tmp_path))
    assert line == (f'error: {cfg}: train_dataloader.dataset.dataset.ann_file '
                    f'does not exist: {tmp_path}/data/meta/all.txt')


def test_missing_data_prefix(tmp_path, refused):
    cfg = dataset_config(tmp_path, train=GOOD,
                         test=GOOD.replace("data_prefix='train'",
                                           "data_prefix='test'"))
    line = refused('test', cfg, *tool_args('test', tmp_path))
    assert line == (f'error: {cfg}: test_dataloader.dataset.data_prefix does '
                    f'not exist: {tmp_path}/data/test')


def test_missing_data_prefix_entry(tmp_path, refused):
    """mmdet/mmseg name their folders in a dict; the key is named."""
    cfg = dataset_config(tmp_path, train=GOOD.replace(
        "data_prefix='train'", "data_prefix=dict(img_path='images/train')"))
    line = refused('train', cfg, *tool_args('train', tmp_path))
    assert line == (f'error: {cfg}: train_dataloader.dataset.data_prefix.'
                    f'img_path does not exist: {tmp_path}/data/images/train')


# ----------------------------------------------------------- checkpoints
def test_missing_checkpoint_to_test(tmp_path, refused):
    cfg = dataset_config(tmp_path, test=GOOD)
    ckpt = tmp_path / 'epoch_1.pth'
    line = refused('test', cfg, ckpt, '--work-dir', tmp_path / 'work',
                   '--out', tmp_path / 'preds.pkl')
    assert line == f'error: checkpoint not found: {ckpt}'


def test_missing_checkpoint_to_resume(tmp_path, refused):
    cfg = dataset_config(tmp_path, train=GOOD)
    ckpt = tmp_path / 'work' / 'iter_8.pth'
    line = refused('train', cfg, '--work-dir', tmp_path / 'work',
                   '--resume', ckpt)
    assert line == f'error: checkpoint not found: {ckpt}'


# ------------------------------------------------------ options of train
@pytest.mark.parametrize('auto_scale_lr', [
    None, 'auto_scale_lr = None', 'auto_scale_lr = dict(enable=False)'])
def test_auto_scale_lr_without_base_batch_size(tmp_path, refused,
                                               auto_scale_lr):
    cfg = write(tmp_path / 'cfg.py', MODEL + (auto_scale_lr or '') + '\n')
    line = refused('train', cfg, '--auto-scale-lr')
    assert line == (f'error: {cfg}: --auto-scale-lr needs auto_scale_lr='
                    f'dict(enable=..., base_batch_size=...) in the config')


def test_amp_without_optim_wrapper(tmp_path, refused):
    cfg = write(tmp_path / 'cfg.py', MODEL)
    line = refused('train', cfg, '--amp')
    assert line == (f'error: {cfg}: --amp needs an optim_wrapper=dict(...) '
                    f'in the config')


# ------------------------------------------------------- options of test
@pytest.mark.parametrize('hooks', [
    None, 'default_hooks = None',
    "default_hooks = dict(logger=dict(type='LoggerHook'))"])
def test_show_dir_without_visualization_hook(tmp_path, refused, hooks):
    cfg = write(tmp_path / 'cfg.py', MODEL + (hooks or '') + '\n')
    line = refused('test', cfg, tmp_path / 'epoch_1.pth', '--show-dir', 'vis')
    assert line == (f'error: {cfg}: --show-dir needs a `visualization` hook '
                    f'in default_hooks of the config')


@pytest.mark.parametrize('out', ['preds.json', 'preds'])
def test_out_that_is_no_pickle(tmp_path, refused, out):
    """DumpResults takes only .pkl/.pickle, and would say so only once the
    Runner had started; the tool says it first (before reading the config)."""
    line = refused('test', tmp_path / 'nowhere.py', tmp_path / 'epoch_1.pth',
                   '--out', out)
    assert line == (f'error: --out {out}: expected a .pkl or .pickle file '
                    f'(the raw predictions are pickled)')


# ---------------------------------------------------------- demo configs
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
