"""mmsb.data.datasets: the demo configs' dataset types, which generate their
data on first use."""
import os.path as osp

import pytest
from utils import CONFIGS, TINY

from mmsb.data.demo import CLASSES


@pytest.mark.parametrize('task,scope,type_name', [
    ('det', 'mmdet', 'DemoCocoDataset'),
    ('seg', 'mmseg', 'DemoSegDataset'),
    ('cls', 'mmpretrain', 'DemoClsDataset'),
])
def test_dataset_types_generate_on_first_use(tmp_path, task, scope,
                                             type_name):
    """The configs' dataset, built by its toolbox's registry on a fresh
    data_root, generates the data and loads it."""
    from mmengine.config import Config
    from mmengine.registry import DATASETS
    cfg = Config.fromfile(CONFIGS[task])
    ds_cfg = cfg.train_dataloader.dataset
    assert ds_cfg.type == type_name
    root = str(tmp_path / 'fresh') + '/'
    ds_cfg.update(data_root=root, demo_cfg=TINY[task])
    with DATASETS.switch_scope_and_registry(scope) as registry:
        dataset = registry.build(ds_cfg)
        assert type(dataset).generates_on_first_use
    assert len(dataset) == TINY[task]['num_train']
    assert osp.isfile(osp.join(root, 'demo_meta.json'))
    sample = dataset[0]
    assert 'inputs' in sample and 'data_samples' in sample
    if task == 'seg':
        assert dataset.metainfo['classes'][0] == 'background'
    else:
        assert tuple(dataset.metainfo['classes']) == CLASSES


def test_dataset_type_refuses_remote_root():
    from mmdet.registry import DATASETS
    from mmengine.registry import DefaultScope

    # Other tests leave another default scope current; build in mmdet's.
    with DefaultScope.overwrite_default_scope('mmdet'), \
            pytest.raises(ValueError, match='must be a local folder'):
        DATASETS.build(dict(type='DemoCocoDataset', data_root='s3://b/coco/',
                            ann_file='a.json'))


def test_lazy_coco_dataset_writes_nothing_until_read(tmp_path):
    """mmdet's DetInferencer builds the config's test dataset with
    lazy_init=True only for its palette: nothing may be generated then."""
    from mmdet.registry import DATASETS
    from mmengine.registry import DefaultScope
    root = str(tmp_path / 'coco') + '/'
    with DefaultScope.overwrite_default_scope('mmdet'):
        dataset = DATASETS.build(dict(
            type='DemoCocoDataset', data_root=root, lazy_init=True,
            ann_file='annotations/instances_val2017.json',
            data_prefix=dict(img='val2017/'), demo_cfg=TINY['det']))
    assert tuple(dataset.metainfo['classes']) == CLASSES
    assert not osp.exists(root)
    dataset.full_init()  # first read: generated now
    assert len(dataset) == TINY['det']['num_val']
    assert osp.isfile(osp.join(root, 'demo_meta.json'))
