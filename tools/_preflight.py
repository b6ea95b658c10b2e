# Copyright (c) mmsb contributors. All rights reserved.
"""Checks that tools/train.py and tools/test.py run before any work starts.

Each problem becomes one :class:`PreflightError` line that names the file or
config key, instead of a traceback from deep inside a Runner that may already
have written to the work dir.
"""
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


def _generates_on_first_use(ds, cfg):
    """True for dataset types that write their own files when built (the
    demo datasets of mmsb.data set ``generates_on_first_use``)."""
    cls = ds.get('type')
    if isinstance(cls, str):
        from mmengine.registry import DATASETS
        try:
            with DATASETS.switch_scope_and_registry(
                    cfg.get('default_scope')) as registry:
                cls = registry.get(cls)
        except Exception:  # an unknown type fails later, when built
            cls = None
    return bool(getattr(cls, 'generates_on_first_use', False))


def check_datasets(cfg, cfg_path):
    for key, ds in _datasets(cfg):
        if ds.get('download', False):
            continue  # torchvision-style datasets fetch themselves
        if _generates_on_first_use(ds, cfg):
            continue
        root = ds.get('data_root', '') or ''
        if _is_remote(root):
            continue
        if root and not osp.isdir(root):
            raise PreflightError(
                f'{cfg_path}: {key}.data_root does not exist: {root}')
        ann = ds.get('ann_file')
        if isinstance(ann, str) and ann and not _is_remote(ann):
            path = ann if osp.isabs(ann) else osp.join(root, ann)
            if not osp.exists(path):
                raise PreflightError(
                    f'{cfg_path}: {key}.ann_file does not exist: {path}')
        prefix = ds.get('data_prefix')
        items = prefix.items() if isinstance(prefix, dict) else \
            [('', prefix)] if isinstance(prefix, str) else []
        for name, sub in items:
            if not isinstance(sub, str) or not sub or _is_remote(sub):
                continue
            path = sub if osp.isabs(sub) else osp.join(root, sub)
            if not osp.exists(path):
                where = f'{key}.data_prefix' + (f'.{name}' if name else '')
                raise PreflightError(
                    f'{cfg_path}: {where} does not exist: {path}')


def check_model(cfg, cfg_path):
    """Build the model once on the CPU: unknown options fail here."""
    from mmengine.registry import MODELS, init_default_scope
    init_default_scope(cfg.get('default_scope', 'mmengine'))
    model_cfg = cfg.model.copy()
    try:
        model = MODELS.build(model_cfg)
    except Exception as e:
        raise PreflightError(
            f'{cfg_path}: model cannot be built ({type(e).__name__}: '
            f'{_one_line(e)})') from e
    del model


def check_config(cfg, cfg_path, build_model=True):
    if 'model' not in cfg:
        raise PreflightError(f'{cfg_path}: the config has no `model`')
    check_datasets(cfg, cfg_path)
    if build_model:
        check_model(cfg, cfg_path)


def check_checkpoint(path):
    """The checkpoint exists and loads (weights_only, mmsb's allowlist)."""
    if _is_remote(path):
        return
    if not osp.isfile(path):
        raise PreflightError(f'checkpoint not found: {path}')
    import torch

    import mmsb  # noqa: F401  allowlists Runner checkpoint globals
    try:
        torch.load(path, map_location='cpu')
    except Exception as e:
        raise PreflightError(
            f'{path}: not a readable checkpoint ({type(e).__name__}: '
            f'{_one_line(e)})') from e
