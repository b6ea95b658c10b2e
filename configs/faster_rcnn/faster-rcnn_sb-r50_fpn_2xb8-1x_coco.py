# Faster R-CNN + FPN with an SB-ResNet-50 backbone: the paper's COCO recipe
# (Go & Ryu, arXiv 2302.12505, section 4.5, Table 12). Everything but the
# backbone and the per-GPU batch comes from mmdet's R-50 1x recipe, which is
# the plain baseline: 12 epochs, SGD lr 0.02 / momentum 0.9 / wd 1e-4,
# steps at epochs 8 and 11, 1333x800.
_base_ = 'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py'

custom_imports = dict(imports=['mmsb'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        type='SBResNet',
        depth=50,
        # Spatial bias in stages 1-3 with 3 bias maps pooled to 10x10 (the
        # paper's ImageNet SB-ResNet-50, Table 6).
        sb_stages=(True, True, True, False),
        sb_cfg=dict(num_bias=3, kernel_size=3, pooled_size=10),
        # SBResNet defaults to norm_eval=False; keep mmdet's frozen BN.
        norm_eval=True,
        # The plain torchvision ResNet-50 loads function-preservingly (the
        # bias channels start with zero weight in the next conv). To start
        # from an ImageNet SB-ResNet-50 trained with the authors' train.py
        # instead (they publish no weights), convert it with
        #   python tools/model_converters/sbnet_to_mmsb.py \
        #       model_best.pth.tar checkpoints/sb-r50_backbone.pth \
        #       --backbone-only
        # and set checkpoint='checkpoints/sb-r50_backbone.pth'.
        init_cfg=dict(type='Pretrained',
                      checkpoint='torchvision://resnet50')))

# 2 GPUs x 8 images: the same 16 images per step as mmdet's 8 GPUs x 2, so
# lr 0.02 needs no scaling.
train_dataloader = dict(batch_size=8)
auto_scale_lr = dict(enable=False, base_batch_size=16)
