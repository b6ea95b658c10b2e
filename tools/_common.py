# Copyright (c) mmsb contributors. All rights reserved.
"""What tools/train.py and tools/test.py share: arguments, the config and
its work dir, the checks made before any work starts, multi-process set-up
on hosts without CUDA, and the Runner.

The checks turn each problem into one :class:`PreflightError` line naming the
file or config key (``error: ...``, exit 2) instead of a traceback from deep
inside a Runner that may already have written to the work dir. They do no
work that the Runner then repeats: the model they build is the one the
Runner trains or tests, and a checkpoint is only opened (memory-mapped), not
read, before the Runner loads it.
"""
import argparse
import copy
import os
import os.path as osp
import sys


class PreflightError(Exception):
    """A problem with the user's input, reported as one line."""


def fail(err):
    print(f'error: {err}', file=sys.stderr, flush=True)
    sys.exit(2)


def _one_line(e):
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


# ------------------------------------------------------------- arguments
def make_parser(description, checkpoint=False):
    """The arguments every tool takes; tools add their own."""
    from mmengine.config import DictAction
    p = argparse.ArgumentParser(description=description)
    p.add_argument('config', help='config file path')
    if checkpoint:
        p.add_argument('checkpoint', help='checkpoint file')
    p.add_argument('--work-dir', help='the dir to save logs and models')
    p.add_argument('--cfg-options', nargs='+', action=DictAction,
                   help='override config settings, key=value')
    p.add_argument('--launcher', default='none',
                   choices=['none', 'pytorch', 'slurm', 'mpi'],
                   help='job launcher')
    p.add_argument('--local_rank', '--local-rank', type=int, default=0)
    return p


def parse(parser, argv=None):
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


# ---------------------------------------------------------------- config
def load_config(path, cfg_options=None):
    if not osp.isfile(path):
        raise PreflightError(f'config file not found: {path}')
    from mmengine.config import Config
    try:
        cfg = Config.fromfile(path)
    except Exception as e:  # syntax errors, a missing _base_, bad imports
        raise PreflightError(
            f'{path}: cannot load config ({type(e).__name__}: '
            f'{_one_line(e)})') from e
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    return cfg


def config_with_work_dir(args):
    """The config with the launcher and the work dir the user asked for
    (default: ``work_dirs/<config name>``)."""
    cfg = load_config(args.config, args.cfg_options)
    cfg.launcher = args.launcher
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])
    return cfg


# ------------------------------------------------------------- preflight
_REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


def _datasets(cfg):
    """(config key, dataset cfg) of every dataset the config names."""
    for split in ('train', 'val', 'test'):
        loader = cfg.get(f'{split}_dataloader')
        if not loader or 'dataset' not in loader:
            continue
        stack = [(f'{split}_dataloader.dataset', loader['dataset'])]
        while stack:
            key, ds = stack.pop()
            if 'dataset' in ds:  # RepeatDataset, ClassBalancedDataset ...
                stack.append((f'{key}.dataset', ds['dataset']))
            for i, sub in enumerate(ds.get('datasets', []) or []):
                stack.append((f'{key}.datasets[{i}]', sub))
            yield key, ds


def _is_remote(path):
    return isinstance(path, str) and '://' in path


def _dataset_class(ds, cfg):
    """The class of a dataset cfg, looked up in the config's scope (None if
    unknown: an unknown type fails later, when the Runner builds it)."""
    cls = ds.get('type')
    if isinstance(cls, str):
        from mmengine.registry import DATASETS
        try:
            with DATASETS.switch_scope_and_registry(
                    cfg.get('default_scope')) as registry:
                cls = registry.get(cls)
        except Exception:
            cls = None
    return cls if isinstance(cls, type) else None


def _makes_its_own_files(ds, cfg):
    """True for a dataset that writes its own files when built: the
    datasets of mmsb.data (``generates_on_first_use``) and those that
    download themselves, i.e. whose ``download`` is true in the config or,
    if the config leaves it out, by default in the class's ``__init__``
    (mmpretrain's CIFAR10/100, MNIST, FashionMNIST ...)."""
    cls = _dataset_class(ds, cfg)
    if getattr(cls, 'generates_on_first_use', False):
        return True
    if 'download' in ds:
        return bool(ds['download'])
    if cls is None:
        return False
    import inspect
    try:
        param = inspect.signature(cls.__init__).parameters.get('download')
    except (TypeError, ValueError):
        return False
    return param is not None and param.default is True


def _where_data_is_explained(cfg_path):
    """For a config of this repository's configs/<algo>/ whose README has a
    "Data" section, the pointer to it that ends a missing-data error; else
    ''."""
    configs = osp.join(osp.realpath(_REPO), 'configs')
    path = osp.realpath(cfg_path)
    if osp.commonpath([configs, path]) != configs:
        return ''
    parts = osp.relpath(path, configs).split(os.sep)
    readme = osp.join(configs, parts[0], 'README.md')
    if len(parts) < 2 or not osp.isfile(readme):
        return ''
    with open(readme, encoding='utf-8') as f:
        if not any(line.rstrip() == '## Data' for line in f):
            return ''
    return (f' (where the data goes, and how to point the config elsewhere: '
            f'configs/{parts[0]}/README.md, section "Data")')


def _missing(cfg_path, key, path):
    return PreflightError(
        f'{cfg_path}: {key} does not exist: {path}'
        f'{_where_data_is_explained(cfg_path)}')


def _evaluator_files(cfg):
    """(config key, path) of the local ``ann_file`` of each evaluator whose
    dataloader's datasets all read existing files (an evaluator may read
    what a self-making dataset is about to write)."""
    for split in ('val', 'test'):
        evaluator = cfg.get(f'{split}_evaluator')
        if isinstance(evaluator, dict):
            metrics = [(f'{split}_evaluator', evaluator)]
        elif isinstance(evaluator, (list, tuple)):
            metrics = [(f'{split}_evaluator[{i}]', m)
                       for i, m in enumerate(evaluator)]
        else:
            continue
        if any(_makes_its_own_files(ds, cfg) for key, ds in _datasets(cfg)
               if key.startswith(f'{split}_dataloader.')):
            continue
        for key, metric in metrics:
            ann = metric.get('ann_file') if isinstance(metric, dict) else None
            if isinstance(ann, str) and ann and not _is_remote(ann):
                yield f'{key}.ann_file', ann


def check_datasets(cfg, cfg_path):
    for key, ds in _datasets(cfg):
        if _makes_its_own_files(ds, cfg):
            continue  # mmsb.data's and downloading datasets make theirs
        root = ds.get('data_root', '') or ''
        if _is_remote(root):
            continue
        paths = [('data_root', root, osp.isdir)] if root else []
        if isinstance(ds.get('ann_file'), str) and ds['ann_file']:
            paths.append(('ann_file', osp.join(root, ds['ann_file']),
                          osp.exists))
        prefix = ds.get('data_prefix')
        for name, sub in (prefix.items() if isinstance(prefix, dict) else
                          [('', prefix)]):
            if isinstance(sub, str) and sub:
                where = 'data_prefix' + (f'.{name}' if name else '')
                paths.append((where, osp.join(root, sub), osp.exists))
        for where, path, exists in paths:
            if not _is_remote(path) and not exists(path):
                raise _missing(cfg_path, f'{key}.{where}', path)
    for key, path in _evaluator_files(cfg):
        if not osp.exists(path):
            raise _missing(cfg_path, key, path)


def build_model(cfg, cfg_path):
    """Build the model (unknown options fail here) under the seed the Runner
    will use, so that it can hand this very model to the Runner."""
    from mmengine.registry import MODELS, init_default_scope
    from mmengine.runner import set_random_seed

    from mmsb.apis import runner_model_cfg
    init_default_scope(cfg.get('default_scope', 'mmengine'))
    randomness = dict(cfg.get('randomness', {}) or {})
    seed = set_random_seed(
        seed=randomness.get('seed'),
        deterministic=randomness.get('deterministic', False),
        diff_rank_seed=randomness.get('diff_rank_seed', False))
    if randomness.get('seed') is None:  # the Runner would draw its own
        cfg.randomness = dict(randomness, seed=seed)
    model_cfg = runner_model_cfg(cfg)
    try:
        model = MODELS.build(copy.deepcopy(model_cfg))
    except Exception as e:
        raise PreflightError(
            f'{cfg_path}: model cannot be built ({type(e).__name__}: '
            f'{_one_line(e)})') from e
    return model, model_cfg


def check_checkpoint(path):
    """The checkpoint exists and opens (weights_only, mmsb's allowlist).

    Memory-mapped: the structure is unpickled but tensor data is not read,
    so the Runner's own load is the only full read. Files in torch's legacy
    (non-zip) format cannot be mapped and are read once more here.
    """
    if _is_remote(path):
        return
    if not osp.isfile(path):
        raise PreflightError(f'checkpoint not found: {path}')
    import torch

    import mmsb  # noqa: F401  allowlists Runner checkpoint globals
    try:
        try:
            torch.load(path, map_location='cpu', mmap=True)
        except RuntimeError as e:
            if 'mmap' not in str(e):
                raise
            torch.load(path, map_location='cpu')
    except Exception as e:
        raise PreflightError(
            f'{path}: not a readable checkpoint ({type(e).__name__}: '
            f'{_one_line(e)})') from e


def preflight(cfg, cfg_path, checkpoint=None):
    """All checks, in the order a user's mistakes are cheapest to report;
    returns the built model and the config it was built from."""
    if 'model' not in cfg:
        raise PreflightError(f'{cfg_path}: the config has no `model`')
    check_datasets(cfg, cfg_path)
    if checkpoint:
        check_checkpoint(checkpoint)
    return build_model(cfg, cfg_path)


# ------------------------------------------------- processes and Runner
def setup_distributed(cfg):
    """Multi-process runs (``--launcher pytorch``) on a host without CUDA.

    mmengine's launcher calls ``torch.cuda.set_device`` and NCCL, which
    fail there; here the process group is initialised with gloo before the
    Runner starts (it then skips its own launcher), and DDP gets mmsb's
    wrapper, which drops ``device_ids`` for CPU modules. On CUDA hosts
    nothing changes. Must run before :func:`preflight`, which may need the
    group to agree on a random seed.
    """
    if cfg.launcher != 'pytorch':
        return
    import torch

    from mmsb.compat import init_cpu_distributed_from_env
    if torch.cuda.is_available():
        return
    if init_cpu_distributed_from_env():
        cfg.setdefault('model_wrapper_cfg',
                       dict(type='MMSBDistributedDataParallel'))
        cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})
        cfg.env_cfg.dist_cfg['backend'] = 'gloo'
        import torch.distributed as dist
        print(f'mmsb: no CUDA on this host: rank {dist.get_rank()}/'
              f'{dist.get_world_size()} joined a gloo process group; DDP '
              f'runs on the CPU (MMSBDistributedDataParallel)', flush=True)


def finish_distributed():
    """Destroy the default process group after a run, if there is one.

    Without it the interpreter's exit can race gloo's worker threads: a run
    that trained and saved its checkpoint then dies with SIGABRT ("terminate
    called without an active exception") and torchrun reports it failed
    (pytorch/pytorch#190489). Since torch 2.4 NCCL also warns when a group
    is left to its destructor.
    """
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def build_runner(cfg, model, model_cfg):
    """The Runner of ``cfg`` (or its ``runner_type``), given the model that
    :func:`preflight` built from ``model_cfg``."""
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner

    class PrebuiltModelRunner(Runner):
        """Takes the model the preflight built instead of building it
        again (only if the Runner asks for exactly that config)."""

        def build_model(self, model_or_cfg):
            if model_or_cfg == model_cfg:
                return model
            return super().build_model(model_or_cfg)

    if 'runner_type' in cfg:  # a custom Runner builds its model itself
        return RUNNERS.build(cfg)
    return PrebuiltModelRunner.from_cfg(cfg)
