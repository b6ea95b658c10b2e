# Image classifier with a CIFAR-style SB-ResNet-20 (two bottlenecks per stage)
# on the embedded shapes set (CustomDataset folders, 32x32, 3 classes).
_base_ = [
    'mmpretrain::_base_/models/resnet18_cifar.py',
    'mmpretrain::_base_/default_runtime.py',
]
custom_imports = dict(
    imports=['mmsb', 'mmsb.data'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        _delete_=True,
        type='SBResNetCIFAR',
        depth=20,  # 9n+2 with n=2: stage outputs 64, 128, 256
        init_cfg=None),
    head=dict(num_classes=3, in_channels=256))

data_preprocessor = dict(
    num_classes=3,
    mean=[127.5, 127.5, 127.5],
    std=[64.0, 64.0, 64.0],
    to_rgb=True)  # LoadImageFromFile reads BGR

dataset_type = 'DemoClsDataset'
data_root = 'data/demo/cls/'
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=32,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix='train',
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=50,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix='val',
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_evaluator = val_evaluator

# 600 iterations of 32 images: about 4 minutes on one CPU core.
max_iters = 600
train_cfg = dict(
    type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
val_cfg = dict()
test_cfg = dict()
optim_wrapper = dict(
    optimizer=dict(type='AdamW', lr=0.003, weight_decay=0.05))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=20),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=20, end=max_iters,
         eta_min=1e-5)
]
default_hooks = dict(
    logger=dict(interval=20),
    checkpoint=dict(by_epoch=False, interval=100, max_keep_ckpts=2))
log_processor = dict(by_epoch=False, window_size=20)
randomness = dict(seed=0)
