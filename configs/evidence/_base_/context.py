# Context at a distance (mmsb.data.context): a thin dense network on the
# generated scenes, read by mmseg's own dataset machinery (ContextSegDataset,
# the ADE20K-like layout) and scored by mmseg's IoUMetric and mmsb's
# ContextObjectAccuracy (object accuracy by distance to the keys).
#
# The network keeps resolution: Table 1's CIFAR-style bottleneck ResNet-20
# (3x3 stem, no max pooling, 16/32/64 planes, strides 1/2/2, so stride 4 at
# the end) with spatial bias switched off, and a 1x1 FCN classifier on its
# stride-4 map, resized to the image. Nothing in this plain path pools
# globally, so its receptive field is finite: `field` below, measured from
# the built model (head and resize included) at the image size by
# mmsb.analysis.receptive_field(..., units=4), the bound over the four phases
# of the stride-4 map (the field is lopsided: one phase reaches 17 px up and
# left and 11 px down and right; the centre unit alone gives 25); a test
# keeps the two equal. A pixel sees nothing farther than (field - 1) / 2 =
# 17 px away.
# A config per rule sets data_root and demo_cfg.rule; its SB, non-local and
# GCNet twins change only the backbone.
_base_ = [
    'mmseg::_base_/models/fcn_r50-d8.py',
    'mmseg::_base_/default_runtime.py',
]
custom_imports = dict(
    imports=['mmsb', 'mmsb.data', 'mmsb.evaluation'],
    allow_failed_imports=False)

img_size = 112
field = 35  # receptive field of the plain network, pixels (see above)
norm_cfg = dict(type='BN', requires_grad=True)  # SyncBN needs CUDA
model = dict(
    pretrained=None,
    data_preprocessor=dict(size=(img_size, img_size)),
    backbone=dict(
        _delete_=True,
        type='SBResNetCIFAR',
        depth=20,  # 9n+2 with n=2: stage outputs 64, 128, 256
        sb_stages=(False, False, False),
        norm_cfg=norm_cfg,
        init_cfg=None),
    decode_head=dict(
        in_channels=256,
        in_index=0,
        channels=256,
        num_convs=0,  # the classifier alone: no 3x3 conv widens the field
        concat_input=False,
        dropout_ratio=0.0,
        num_classes=3,
        norm_cfg=norm_cfg),
    auxiliary_head=None)

dataset_type = 'ContextSegDataset'
data_root = 'data/demo/context-spatial/'
# keys 20 px from every side, more than the field's reach of 17 px plus half
# a key: no feature at a key can tell from the zero padding where it is
demo_cfg = dict(num_train=2000, num_val=400, img_size=img_size, seed=4,
                rule='spatial', key_border=20)
# Flips keep every rule's labels (the nearer key stays the nearer one).
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='RandomFlip', prob=0.5, direction=['horizontal', 'vertical']),
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
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
        demo_cfg=demo_cfg,
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
        demo_cfg=demo_cfg,
        data_prefix=dict(
            img_path='images/validation',
            seg_map_path='annotations/validation'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = [
    dict(type='IoUMetric', iou_metrics=['mIoU']),
    dict(type='ContextObjectAccuracy', field=field,
         meta_file=data_root + 'meta-val.json'),
]
test_evaluator = val_evaluator
log_processor = dict(by_epoch=False, window_size=50)
randomness = dict(seed=0)
