# Copyright (c) mmsb contributors. All rights reserved.
"""The "Training on 1, 2, 4, 8 or 16 GPUs" tables of the paper configs'
READMEs say what a run gets, and their "Data" sections where the data goes.

Every table row is a command (``python tools/train.py ...`` or ``bash
tools/dist_train.sh CONFIG G ...``) with the images per step and the lr it
runs at. Each is read back: the command's arguments go through tools/train.py
(its parser and ``build_cfg``, which merges ``--cfg-options`` and turns on
``auto_scale_lr`` for ``--auto-scale-lr``), the world size is the one
torchrun would start, and the lr is what mmengine's own ``Runner.scale_lr``
leaves in an optimizer built from the config. Rows marked *(paper)* must
give the paper's batch and lr. Nothing is trained and no process group is
made.

The Data sections' ``--cfg-options`` must move every path the preflight
checks, and the preflight's missing-data error names the README.
"""
import glob
import os
import os.path as osp
import re
import shlex
from types import SimpleNamespace

import pytest
import torch.nn as nn
from test_configs_beyond_paper import BEYOND_PAPER
from utils import REPO, load_tool

SECTION = '## Training on 1, 2, 4, 8 or 16 GPUs'
HEADER = '| GPUs | command | images per step | lr |'
PAPER_MARK = '*(paper)*'
GPU_COUNTS = (1, 2, 4, 8, 16)
ALGOS = ('faster_rcnn', 'cascade_rcnn', 'sem_fpn', 'sb_resnet')

# The paper's total batch and lr (Go & Ryu, arXiv 2302.12505).
DET = (16, 0.02)  # section 4.5: 2 GPUs x 8 images, SGD lr 0.02
SEG = (28, 2e-4)  # section 4.6: 2 GPUs x 14 images, AdamW lr 2e-4
IN1K_SGD = (256, 0.1)  # section 4.2, second recipe
IN1K_LAMB = (512, 8e-3)  # section 4.2, first recipe
CIFAR = (64, 0.25)  # section 4.1


def paper_recipe(config):
    """(images per step, lr) of the paper for a config under configs/."""
    algo, name = config.split('/')
    if algo in ('faster_rcnn', 'cascade_rcnn'):
        return DET
    if algo == 'sem_fpn':
        return SEG
    if name.endswith('_cifar100.py'):
        return CIFAR
    return IN1K_LAMB if '-lamb-' in name else IN1K_SGD


def paper_configs():
    found = []
    for algo in ALGOS:
        for path in glob.glob(osp.join(REPO, 'configs', algo, '*.py')):
            rel = f'{algo}/{osp.basename(path)}'
            if rel not in BEYOND_PAPER:
                found.append(rel)
    return sorted(found)


# ------------------------------------------------------------ the tables
def section(text, heading):
    """The lines of a ``## `` section, without its heading."""
    lines = text.splitlines()
    start = lines.index(heading)
    end = next((i for i in range(start + 1, len(lines))
                if lines[i].startswith('## ')), len(lines))
    return lines[start + 1:end]


def _cells(line):
    return [c.strip() for c in line.strip().strip('|').split('|')]


def gpu_tables(algo):
    """[(configs, rows)] of a README's GPU section: the config each table's
    commands name, plus those of the "Same commands for" line after it;
    rows are dicts with gpus, argv, images, lr (the cell's text)."""
    with open(osp.join(REPO, 'configs', algo, 'README.md'),
              encoding='utf-8') as f:
        lines = section(f.read(), SECTION)
    tables = []
    i = 0
    while i < len(lines):
        if lines[i].strip() != HEADER:
            i += 1
            continue
        rows = []
        i += 2  # the header and the alignment row
        while i < len(lines) and lines[i].startswith('|'):
            gpus, command, images, lr = _cells(lines[i])
            assert command.startswith('`') and command.endswith('`'), command
            rows.append(dict(gpus=int(gpus), argv=shlex.split(command[1:-1]),
                             images=int(images), lr=lr))
            i += 1
        configs = {command_config(r['argv']) for r in rows}
        assert len(configs) == 1, configs  # one config per table
        while i < len(lines) and not lines[i].strip():
            i += 1
        if i < len(lines) and lines[i].startswith('Same commands for'):
            configs |= {f'{algo}/{n}' for n in
                        re.findall(r'\(\./([\w.-]+\.py)\)', lines[i])}
        tables.append((sorted(configs), rows))
    return tables


def command_config(argv):
    """The config a command names, relative to configs/."""
    argv = [a for a in argv if not re.match(r'^[A-Z_]+=', a)]
    assert argv[:2] in (['python', 'tools/train.py'],
                        ['bash', 'tools/dist_train.sh']), argv
    assert argv[2].startswith('configs/'), argv
    return argv[2][len('configs/'):]


def with_config(argv, config):
    """The command for ``config`` (a twin named under the table)."""
    old = 'configs/' + command_config(argv)
    return [('configs/' + config) if a == old else a for a in argv]


def as_launched(argv):
    """(world size, the argv tools/train.py receives), as tools/train.py or
    tools/dist_train.sh (torchrun with NNODES x NUM_PROCS processes, each
    given ``CONFIG --launcher pytorch ARGS``) start it."""
    env = {}
    while re.match(r'^[A-Z_]+=', argv[0]):
        key, value = argv[0].split('=', 1)
        env[key] = value
        argv = argv[1:]
    if argv[:2] == ['python', 'tools/train.py']:
        assert not env, env
        return 1, argv[2:]
    assert argv[:2] == ['bash', 'tools/dist_train.sh'], argv
    world = int(env.get('NNODES', 1)) * int(argv[3])
    return world, [argv[2], '--launcher', 'pytorch', *argv[4:]]


ROWS = [(algo, config, row) for algo in ALGOS
        for configs, rows in gpu_tables(algo) for config in configs
        for row in rows]


def _row_id(item):
    algo, config, row = item
    return (f"{config.split('/')[1][:-3]}-{row['gpus']}gpu"
            f"{'-scaled' if '--auto-scale-lr' in row['argv'] else ''}")


@pytest.fixture
def train_tool(monkeypatch):
    monkeypatch.chdir(REPO)  # the commands name configs/... from the root
    monkeypatch.setenv('LOCAL_RANK', '0')  # parse() would set it
    return load_tool('train')


def runner_lr(cfg, world):
    """The lr the Runner would train with: the config's optimizer built on
    a small module, then mmengine's own Runner.scale_lr, given a stand-in
    for the Runner that carries only what scale_lr reads."""
    from mmengine.logging import MMLogger
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import init_default_scope
    from mmengine.runner import Runner

    init_default_scope(cfg.default_scope)
    module = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    optim_wrapper = build_optim_wrapper(module, cfg.optim_wrapper)
    runner = SimpleNamespace(
        world_size=world, _train_dataloader=cfg.train_dataloader,
        param_schedulers=cfg.get('param_scheduler'),
        logger=MMLogger.get_instance('test_configs_gpu_counts'))
    Runner.scale_lr(runner, optim_wrapper, cfg.get('auto_scale_lr'))
    lrs = {g['lr'] for g in optim_wrapper.optimizer.param_groups}
    assert len(lrs) == 1, lrs
    return lrs.pop()


@pytest.mark.parametrize('item', ROWS, ids=_row_id)
def test_row_gives_its_batch_and_lr(train_tool, item):
    algo, config, row = item
    argv = with_config(row['argv'], config)
    world, train_argv = as_launched(argv)
    assert world == row['gpus']
    args = train_tool.parse_args(train_argv)
    cfg = train_tool.build_cfg(args)
    images = world * cfg.train_dataloader.batch_size
    assert images == row['images']
    lr = runner_lr(cfg, world)
    stated = float(row['lr'].split()[0])
    assert lr == pytest.approx(stated, rel=1e-3), row['lr']

    paper_images, paper_lr = paper_recipe(config)
    if row['lr'].endswith(PAPER_MARK):
        assert (images, lr) == (paper_images, pytest.approx(paper_lr))
        assert not args.auto_scale_lr
    else:
        # a scaled alternative, and the cell says how: "lr = paper x n/base"
        assert args.auto_scale_lr and images != paper_images
        m = re.fullmatch(r'\S+ = (\S+) x (\d+)/(\d+)', row['lr'])
        assert m, row['lr']
        assert float(m.group(1)) == pytest.approx(paper_lr)
        assert int(m.group(2)) == images
        assert int(m.group(3)) == cfg.auto_scale_lr.base_batch_size


@pytest.mark.parametrize('algo', ALGOS)
def test_two_machine_commands_match_the_16_gpu_row(train_tool, algo):
    """A section's NNODES=2 commands (one per machine) run the 16-GPU row."""
    with open(osp.join(REPO, 'configs', algo, 'README.md'),
              encoding='utf-8') as f:
        text = '\n'.join(section(f.read(), SECTION))
    commands = [line for block in re.findall(r'```bash\n(.*?)```', text, re.S)
                for line in block.splitlines() if line.startswith('NNODES=')]
    sixteen = {tuple(r['argv']) for _, _, r in ROWS
               if r['gpus'] == 16 and r['argv'][2].startswith(
                   f'configs/{algo}/')}
    for command in commands:
        world, argv = as_launched(shlex.split(command, comments=True))
        assert world == 16
        assert any(as_launched(list(r)) == (16, argv) for r in sixteen), argv


def test_every_paper_config_has_every_gpu_count():
    counts = {}
    for _, config, row in ROWS:
        counts.setdefault(config, set()).add(row['gpus'])
    assert sorted(counts) == paper_configs()
    for config, gpus in counts.items():
        assert gpus == set(GPU_COUNTS), (config, gpus)
    # where the paper's batch splits evenly, a row keeps it
    for config in counts:
        paper_images = paper_recipe(config)[0]
        for gpus in GPU_COUNTS:
            if paper_images % gpus == 0:
                assert any(r['lr'].endswith(PAPER_MARK)
                           for _, c, r in ROWS
                           if c == config and r['gpus'] == gpus), (config,
                                                                   gpus)


def test_configs_alone_are_the_paper_recipe_at_their_gpu_count(train_tool):
    """Without options, ``NxbM`` in the name is N GPUs x M images: the
    paper's batch, and the lr needs no scaling (auto_scale_lr is off, with
    the paper's batch as its base)."""
    for config in paper_configs():
        gpus = int(re.search(r'_(\d+)xb\d+', config).group(1))
        cfg = train_tool.build_cfg(
            train_tool.parse_args([f'configs/{config}']))
        paper_images, paper_lr = paper_recipe(config)
        assert gpus * cfg.train_dataloader.batch_size == paper_images
        assert cfg.auto_scale_lr.base_batch_size == paper_images
        assert not cfg.auto_scale_lr.get('enable', False)
        assert runner_lr(cfg, gpus) == pytest.approx(paper_lr)


# -------------------------------------------------------------- the data
# What each dataset's README tree shows, made under a tmp root.
LAYOUTS = {
    'coco': ['annotations/instances_train2017.json',
             'annotations/instances_val2017.json', 'train2017/',
             'val2017/'],
    'ADEChallengeData2016': ['annotations/training/',
                             'annotations/validation/', 'images/training/',
                             'images/validation/'],
    'imagenet': ['train/', 'val/'],
}
DATA_READMES = ('faster_rcnn', 'cascade_rcnn', 'sem_fpn', 'sb_resnet',
                'mask_rcnn', 'upernet')


def data_command(algo):
    """(config, cfg_options) of the ``--cfg-options`` command of a README's
    Data section."""
    with open(osp.join(REPO, 'configs', algo, 'README.md'),
              encoding='utf-8') as f:
        text = '\n'.join(section(f.read(), '## Data'))
    blocks = re.findall(r'```bash\n(.*?)```', text, re.S)
    (block, ) = [b for b in blocks if '--cfg-options' in b]
    argv = shlex.split(block.replace('\\\n', ' '))
    assert argv[:2] == ['python', 'tools/train.py'], argv
    args = load_tool('train').parse_args(argv[2:])
    return args.config, args.cfg_options, text


def make_layout(root, name):
    for rel in LAYOUTS[name]:
        path = osp.join(root, rel)
        os.makedirs(osp.dirname(path), exist_ok=True)
        if not rel.endswith('/'):
            open(path, 'w').close()


@pytest.mark.parametrize('algo', DATA_READMES)
def test_data_options_move_every_checked_path(tmp_path, monkeypatch, algo):
    """With the README's options pointing at a copy in the README's layout,
    the preflight passes from a directory without data/; leaving out any one
    of the options makes it fail."""
    common = load_tool('_common')
    config, options, text = data_command(algo)
    (name, ) = {re.search(r'/path/to/(\w+)', v).group(1)
                for v in options.values()}
    for rel in LAYOUTS[name]:  # the README shows the layout made here
        assert osp.basename(rel.rstrip('/')) in text, rel
    root = tmp_path / 'elsewhere' / name
    make_layout(root, name)
    options = {k: v.replace(f'/path/to/{name}', str(root))
               for k, v in options.items()}
    monkeypatch.chdir(tmp_path)  # no data/ here
    cfg_path = osp.join(REPO, config)
    common.check_datasets(common.load_config(cfg_path, options), cfg_path)
    for key in options:
        cfg = common.load_config(
            cfg_path, {k: v for k, v in options.items() if k != key})
        with pytest.raises(common.PreflightError,
                           match=re.escape(f'{key} does not exist')):
            common.check_datasets(cfg, cfg_path)


def test_missing_coco_names_the_readme(tmp_path, monkeypatch):
    common = load_tool('_common')
    monkeypatch.chdir(REPO)
    config = 'configs/faster_rcnn/faster-rcnn_sb-r50_fpn_2xb8-1x_coco.py'
    missing = str(tmp_path / 'coco') + '/'
    cfg = common.load_config(config, {
        f'{s}_dataloader.dataset.data_root': missing
        for s in ('train', 'val', 'test')})
    with pytest.raises(common.PreflightError) as exc:
        common.check_datasets(cfg, config)
    assert str(exc.value) == (
        f'{config}: train_dataloader.dataset.data_root does not exist: '
        f'{missing} (where the data goes, and how to point the config '
        f'elsewhere: configs/faster_rcnn/README.md, section "Data")')
    assert not (tmp_path / 'coco').exists()


@pytest.mark.parametrize('evaluator', ['dict', 'list'])
def test_missing_evaluator_ann_file_is_refused(tmp_path, monkeypatch,
                                               evaluator):
    """A COCO run whose dataloaders were moved but not its evaluator would
    fail at the first validation; the preflight says so first."""
    common = load_tool('_common')
    make_layout(tmp_path / 'coco', 'coco')
    monkeypatch.chdir(tmp_path)  # data/coco/... does not exist here
    config = osp.join(
        REPO, 'configs/cascade_rcnn/cascade-rcnn_sb-r50_fpn_2xb8-1x_coco.py')
    cfg = common.load_config(config, {
        f'{s}_dataloader.dataset.data_root': str(tmp_path / 'coco')
        for s in ('train', 'val', 'test')})
    key = 'val_evaluator'
    if evaluator == 'list':
        good = dict(cfg.val_evaluator,
                    ann_file=str(tmp_path / 'coco' / 'annotations' /
                                 'instances_val2017.json'))
        cfg.val_evaluator = [good, dict(cfg.val_evaluator)]
        key = 'val_evaluator[1]'
    with pytest.raises(common.PreflightError) as exc:
        common.check_datasets(cfg, config)
    assert str(exc.value) == (
        f'{config}: {key}.ann_file does not exist: '
        f'data/coco/annotations/instances_val2017.json (where the data goes,'
        f' and how to point the config elsewhere: '
        f'configs/cascade_rcnn/README.md, section "Data")')


def test_cifar100_that_downloads_itself_may_be_missing(tmp_path,
                                                       monkeypatch):
    """mmpretrain's CIFAR100 downloads its files (``download`` defaults to
    True): a missing data_root is no error, unless download=False."""
    common = load_tool('_common')
    monkeypatch.chdir(REPO)
    config = 'configs/sb_resnet/sb-resnet38_1xb64-300e_cifar100.py'
    missing = str(tmp_path / 'cifar100')
    options = {f'{s}_dataloader.dataset.data_root': missing
               for s in ('train', 'val', 'test')}
    cfg = common.load_config(config, options)
    assert 'download' not in cfg.train_dataloader.dataset
    common.check_datasets(cfg, config)
    assert not (tmp_path / 'cifar100').exists()

    cfg = common.load_config(
        config, dict(options, **{'train_dataloader.dataset.download': False}))
    with pytest.raises(common.PreflightError) as exc:
        common.check_datasets(cfg, config)
    assert str(exc.value) == (
        f'{config}: train_dataloader.dataset.data_root does not exist: '
        f'{missing} (where the data goes, and how to point the config '
        f'elsewhere: configs/sb_resnet/README.md, section "Data")')
