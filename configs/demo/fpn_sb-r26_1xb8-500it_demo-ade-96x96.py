# Semantic FPN with a thin SB-ResNetV1c-26 on the embedded shapes set
# (ADE20K layout, 96x96, background + 3 shape classes), from scratch on CPU.
_base_ = [
    'mmseg::_base_/models/fpn_r50.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_20k.py',
]
custom_imports = dict(
    imports=['mmsb', 'mmsb.data'], allow_failed_imports=False)

img_size = 96
crop_size = (img_size, img_size)
norm_cfg = dict(type='BN', requires_grad=True)  # SyncBN needs CUDA
width = 64

model = dict(
    pretrained=None,
    data_preprocessor=dict(size=crop_size),
    backbone=dict(
        type='SBResNetV1c',
        depth=26,
        base_channels=16,  # stage outputs 64, 128, 256, 512
        sb_cfg=dict(pooled_size=4),  # stage maps are 24..6 px here
        norm_cfg=norm_cfg,
        init_cfg=None),
    neck=dict(in_channels=[64, 128, 256, 512], out_channels=width),
    decode_head=dict(
        in_channels=[width] * 4,
        channels=width,
        num_classes=4,
        norm_cfg=norm_cfg))

dataset_type = 'DemoSegDataset'
data_root = 'data/demo/ade/'
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=crop_size, keep_ratio=True),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs')
]
train_dataloader = dict(
    batch_size=8,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(
            img_path='images/training', seg_map_path='annotations/training'),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=8,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(
            img_path='images/validation',
            seg_map_path='annotations/validation'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator

# 500 iterations of 8 images: about 2 minutes on one CPU core.
max_iters = 500
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
optimizer = dict(_delete_=True, type='AdamW', lr=0.004, weight_decay=0.05)
optim_wrapper = dict(optimizer=optimizer)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=30),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=30, end=max_iters,
         eta_min=1e-5)
]
default_hooks = dict(
    logger=dict(interval=20),
    checkpoint=dict(by_epoch=False, interval=100, max_keep_ckpts=2))
log_processor = dict(by_epoch=False, window_size=20)
randomness = dict(seed=0)
