# Semantic FPN with an SB-ResNet-50 (V1c) on ADE20K (Go & Ryu, arXiv
# 2302.12505, section 4.6, Table 13). Same recipe as the plain baseline
# beside it; only the backbone differs.
_base_ = './fpn_r50_2xb14-40k_ade20k-512x512.py'

custom_imports = dict(imports=['mmsb'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        # mmseg's ResNetV1c (deep stem, contract_dilation=True) with spatial
        # bias in stages 1-3, 3 bias maps pooled to 10x10 (Table 6).
        type='SBResNetV1c',
        sb_stages=(True, True, True, False),
        sb_cfg=dict(num_bias=3, kernel_size=3, pooled_size=10)))
# Init: the base's model.pretrained='open-mmlab://resnet50_v1c', a plain
# ResNetV1c that SBResNet loads function-preservingly. To start from an
# ImageNet SB-ResNet-50 trained with the authors' train.py instead (they
# publish no weights), convert it with
#   python tools/model_converters/sbnet_to_mmsb.py \
#       model_best.pth.tar checkpoints/sb-r50_backbone.pth --backbone-only
# and set model = dict(pretrained=None, backbone=dict(..., init_cfg=dict(
#     type='Pretrained', checkpoint='checkpoints/sb-r50_backbone.pth'))).
# Note the authors' SB-ResNet-50 has the plain 7x7 stem: use type='SBResNet'
# with contract_dilation=True there, not SBResNetV1c.
