# Faster R-CNN + FPN with an SB-ResNet-50 backbone, trained with automatic
# mixed precision (mmengine's AmpOptimWrapper, dynamic loss scaling). The
# plain twin is mmdet's own faster-rcnn_r50_fpn_amp-1x_coco (its 1x recipe
# with AmpOptimWrapper: 8 GPUs x 2 images, 12 epochs, SGD lr 0.02); the
# backbone is the one of faster-rcnn_sb-r50_fpn_2xb8-1x_coco.py beside it.
# AmpOptimWrapper needs a GPU (or NPU/MLU/MUSA); mmengine refuses it on the
# CPU.
_base_ = 'mmdet::faster_rcnn/faster-rcnn_r50_fpn_amp-1x_coco.py'

custom_imports = dict(imports=['mmsb'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        # Spatial bias in stages 1-3, 3 bias maps pooled to 10x10 (Table 6);
        # the inherited torchvision://resnet50 loads function-preservingly.
        type='SBResNet',
        sb_stages=(True, True, True, False),
        sb_cfg=dict(num_bias=3, kernel_size=3, pooled_size=10)))
