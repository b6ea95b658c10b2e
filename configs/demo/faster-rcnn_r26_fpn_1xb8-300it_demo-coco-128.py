# Faster R-CNN + FPN with a thin ResNet-26 on the embedded shapes set
# (COCO format, 128x128, 3 classes), trained from scratch on the CPU.
# mmdet's ResNet has no depth 26, so the backbone is SBResNet with spatial
# bias switched off: plain bottlenecks. Its SB twin,
# faster-rcnn_sb-r26_fpn_1xb8-300it_demo-coco-128.py, changes only that.
_base_ = [
    'mmdet::_base_/models/faster-rcnn_r50_fpn.py',
    './_base_/datasets/demo_coco.py',
    './_base_/schedules/schedule_300it.py',
    'mmdet::_base_/default_runtime.py',
]
custom_imports = dict(
    imports=['mmsb', 'mmsb.data'], allow_failed_imports=False)

num_classes = 3
width = 64  # FPN / head channels

model = dict(
    backbone=dict(
        type='SBResNet',
        depth=26,
        base_channels=16,  # stage outputs 64, 128, 256, 512
        sb_stages=(False, False, False, False),
        # for the SB twin: the stage maps are 32..8 px here
        sb_cfg=dict(pooled_size=4),
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

default_hooks = dict(
    logger=dict(interval=20),
    checkpoint=dict(by_epoch=False, interval=100, max_keep_ckpts=2))
log_processor = dict(by_epoch=False, window_size=20)
randomness = dict(seed=0)
