# Semantic FPN with a thin ResNetV1c-26 on the embedded shapes set (ADE20K
# layout, 96x96, background + 3 shape classes), from scratch on the CPU. The
# backbone is SBResNetV1c with spatial bias switched off: plain bottlenecks.
# Its SB twin, fpn_sb-r26_1xb8-500it_demo-ade-96x96.py, changes only that.
_base_ = [
    'mmseg::_base_/models/fpn_r50.py',
    './_base_/datasets/demo_ade.py',
    './_base_/schedules/schedule_500it.py',
    'mmseg::_base_/default_runtime.py',
]
custom_imports = dict(
    imports=['mmsb', 'mmsb.data'], allow_failed_imports=False)

crop_size = (96, 96)  # the whole image
norm_cfg = dict(type='BN', requires_grad=True)  # SyncBN needs CUDA
width = 64

model = dict(
    pretrained=None,
    data_preprocessor=dict(size=crop_size),
    backbone=dict(
        type='SBResNetV1c',
        depth=26,
        base_channels=16,  # stage outputs 64, 128, 256, 512
        sb_stages=(False, False, False, False),
        # for the SB twin: the stage maps are 24..6 px here
        sb_cfg=dict(pooled_size=4),
        norm_cfg=norm_cfg,
        init_cfg=None),
    neck=dict(in_channels=[64, 128, 256, 512], out_channels=width),
    decode_head=dict(
        in_channels=[width] * 4,
        channels=width,
        num_classes=4,
        norm_cfg=norm_cfg))

default_hooks = dict(
    logger=dict(interval=20),
    checkpoint=dict(by_epoch=False, interval=100, max_keep_ckpts=2))
log_processor = dict(by_epoch=False, window_size=20)
randomness = dict(seed=0)
