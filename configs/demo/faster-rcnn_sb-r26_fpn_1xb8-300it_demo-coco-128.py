# Faster R-CNN + FPN with a thin SB-ResNet-26 on the embedded shapes set
# (COCO format, 128x128, 3 classes), trained from scratch on the CPU.
_base_ = [
    'mmdet::_base_/models/faster-rcnn_r50_fpn.py',
    'mmdet::_base_/datasets/coco_detection.py',
    'mmdet::_base_/default_runtime.py',
]
custom_imports = dict(
    imports=['mmsb', 'mmsb.data'], allow_failed_imports=False)

img_size = 128
num_classes = 3
width = 64  # FPN / head channels

model = dict(
    backbone=dict(
        type='SBResNet',
        depth=26,
        base_channels=16,  # stage outputs 64, 128, 256, 512
        sb_cfg=dict(pooled_size=4),  # stage maps are 32..8 px here
        frozen_stages=-1,
        norm_eval=False,
        init_cfg=None),
    neck=dict(in_channels=[64, 128, 256, 512], out_channels=width),
    rpn_head=dict(
        in_channels=width,
        feat_channels=width,
        # objects are 16-60 px: anchors of 16, 32, 64 ... px
        anchor_generator=dict(scales=[4])),
    roi_head=dict(
        # a fixed 2x2 sampling grid keeps RoIAlign cheap on the CPU
        bbox_roi_extractor=dict(
            out_channels=width, roi_layer=dict(sampling_ratio=2)),
        bbox_head=dict(
            in_channels=width, fc_out_channels=256,
            num_classes=num_classes)),
    train_cfg=dict(
        rpn_proposal=dict(nms_pre=500, max_per_img=200),
        rcnn=dict(sampler=dict(num=64))),
    test_cfg=dict(
        rpn=dict(nms_pre=500, max_per_img=100),
        rcnn=dict(max_per_img=20)))

dataset_type = 'DemoCocoDataset'
data_root = 'data/demo/coco/'
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=(img_size, img_size), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(img_size, img_size), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor'))
]
train_dataloader = dict(
    batch_size=8,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        filter_cfg=dict(filter_empty_gt=True, min_size=8),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=8,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        type=dataset_type, data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val2017.json')
test_evaluator = val_evaluator

# 300 iterations of 8 images: about 3 minutes on one CPU core. AdamW
# learns this from-scratch model much faster than the 1x recipe's SGD.
max_iters = 300
train_cfg = dict(
    type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=0.002, weight_decay=0.05),
    clip_grad=dict(max_norm=10, norm_type=2))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0,
         end=50),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=50, end=max_iters,
         eta_min=1e-5)
]
default_hooks = dict(
    logger=dict(interval=20),
    checkpoint=dict(by_epoch=False, interval=100, max_keep_ckpts=2))
log_processor = dict(by_epoch=False, window_size=20)
randomness = dict(seed=0)
auto_scale_lr = dict(enable=False, base_batch_size=8)
