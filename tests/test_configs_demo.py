# Copyright (c) mmsb contributors. All rights reserved.
"""configs/demo and configs/evidence resolve to what they were.

tests/data/config_snapshot.json holds, for every config in the two folders,
what the Runner reads from it once mmengine has merged its ``_base_`` files,
and a hash of the weights its model starts from. A change to how the configs
are written (their ``_base_`` files, which twin inherits which) must leave
all of it as it is. A change to what a config means must come with a new
snapshot, written from the changed configs by::

    PYTHONPATH=. python tests/test_configs_demo.py --update
"""
import copy
import glob
import hashlib
import importlib
import json
import os.path as osp
import sys

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
SNAPSHOT = osp.join(ROOT, 'tests', 'data', 'config_snapshot.json')
FOLDERS = ('demo', 'evidence')
# What mmengine's Runner (and tools/test.py --tta) reads from a config,
# and the imports that register our types.
KEYS = ('model', 'data_preprocessor', 'custom_imports', 'default_scope',
        'train_dataloader', 'val_dataloader', 'test_dataloader',
        'val_evaluator', 'test_evaluator', 'train_cfg', 'val_cfg', 'test_cfg',
        'optim_wrapper', 'param_scheduler', 'auto_scale_lr', 'default_hooks',
        'custom_hooks', 'log_processor', 'log_level', 'visualizer',
        'randomness', 'env_cfg', 'load_from', 'resume', 'launcher',
        'tta_model', 'tta_pipeline')


def configs():
    """Every config of configs/demo and configs/evidence (not their
    ``_base_`` files), relative to configs/."""
    found = []
    for folder in FOLDERS:
        for path in glob.glob(osp.join(ROOT, 'configs', folder, '*.py')):
            found.append(f'{folder}/{osp.basename(path)}')
    return sorted(found)


def _jsonable(value):
    """``value`` as JSON reads it back: tuples become lists, anything JSON
    cannot hold becomes its repr."""
    return json.loads(json.dumps(value, sort_keys=True, default=repr))


def _build(cfg):
    """The model as the Runner builds it: in the config's scope, with the
    top-level data_preprocessor, seeded, after init_weights()."""
    model_cfg = copy.deepcopy(cfg.model)
    if cfg.get('data_preprocessor') is not None:
        model_cfg.setdefault('data_preprocessor', cfg.data_preprocessor)
    scope = cfg.default_scope
    models = importlib.import_module(f'{scope}.registry').MODELS
    with DefaultScope.overwrite_default_scope(scope):
        torch.manual_seed(0)
        model = models.build(model_cfg)
        model.init_weights()
    return model


def _weights(model):
    """sha256 of the names, shapes and dtypes of the state dict, and of the
    same with every tensor's bytes."""
    layout, data = hashlib.sha256(), hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        head = f'{name} {tuple(tensor.shape)} {tensor.dtype}\n'.encode()
        layout.update(head)
        data.update(head)
        data.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return layout.hexdigest(), data.hexdigest()


def snapshot(name):
    """What the Runner reads from configs/``name``, and its model's first
    weights."""
    cfg = Config.fromfile(osp.join(ROOT, 'configs', name))
    model = _build(cfg)
    resolved = cfg.to_dict()
    taken = {key: resolved[key] for key in KEYS if key in resolved}
    # The stages with spatial bias as the backbone was built: the same
    # whether a config states the backbone's default or leaves it out.
    taken['model']['backbone']['sb_stages'] = list(model.backbone.sb_stages)
    layout, data = _weights(model)
    return dict(config=_jsonable(taken), weights_layout=layout, weights=data)


def _load():
    with open(SNAPSHOT) as f:
        return json.load(f)


def test_every_config_has_a_snapshot():
    assert configs() == sorted(_load()['configs'])


@pytest.mark.parametrize('name', configs())
def test_resolved_config_and_first_weights_unchanged(name):
    stored = _load()
    expected = stored['configs'][name]
    got = snapshot(name)
    for key in sorted(set(expected['config']) | set(got['config'])):
        assert got['config'].get(key) == expected['config'].get(key), key
    assert got['weights_layout'] == expected['weights_layout']
    # Initial values follow torch's random number generator: compared under
    # the torch release the snapshot was taken with.
    if torch.__version__ == stored['torch']:
        assert got['weights'] == expected['weights']


def update():
    """Write tests/data/config_snapshot.json from the configs as they are."""
    import mmsb  # noqa: F401  registers our models, as conftest.py does
    data = dict(
        torch=torch.__version__,
        configs={name: snapshot(name) for name in configs()})
    with open(SNAPSHOT, 'w') as f:
        json.dump(data, f, indent=1, sort_keys=True)
        f.write('\n')
    print(f'wrote {len(data["configs"])} snapshots to {SNAPSHOT}')


if __name__ == '__main__':
    if sys.argv[1:] != ['--update']:
        sys.exit(f'usage: PYTHONPATH=. python {sys.argv[0]} --update')
    update()
