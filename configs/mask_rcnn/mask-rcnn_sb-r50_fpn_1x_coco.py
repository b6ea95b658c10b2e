# Mask R-CNN + FPN with an SB-ResNet-50 backbone on COCO, mmdet's 1x recipe.
# Not in the paper (Go & Ryu, arXiv 2302.12505, report Faster/Cascade R-CNN).
# The plain twin is mmdet's own mask-rcnn_r50_fpn_1x_coco: 8 GPUs x 2 images,
# 12 epochs, SGD lr 0.02, 1333x800, frozen stem + stage 1, frozen BN.
# Everything but the backbone type and its spatial bias options is inherited.
_base_ = 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py'

custom_imports = dict(imports=['mmsb'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        # Spatial bias in stages 1-3, 3 bias maps pooled to 10x10 (the
        # paper's ImageNet SB-ResNet-50, Table 6). The inherited init_cfg
        # (torchvision://resnet50) loads function-preservingly: the bias
        # channels start with zero weight in the next conv.
        type='SBResNet',
        sb_stages=(True, True, True, False),
        sb_cfg=dict(num_bias=3, kernel_size=3, pooled_size=10)))
