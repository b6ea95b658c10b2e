# UperNet with an SB-ResNet-50 (V1c) backbone on ADE20K, mmseg's 160k recipe
# at 512x512. Not in the paper (Go & Ryu, arXiv 2302.12505, report Semantic
# FPN). The plain twin is mmseg's own upernet_r50_4xb4-160k_ade20k-512x512:
# 4 GPUs x 4 images, 160k iterations, SGD lr 0.01, poly decay, SyncBN,
# ResNetV1c with contract_dilation. Everything but the backbone type and its
# spatial bias options is inherited.
_base_ = 'mmseg::upernet/upernet_r50_4xb4-160k_ade20k-512x512.py'

custom_imports = dict(imports=['mmsb'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        # mmseg's ResNetV1c (deep stem) with spatial bias in stages 1-3,
        # 3 bias maps pooled to 10x10 (Table 6). The inherited
        # model.pretrained='open-mmlab://resnet50_v1c' loads
        # function-preservingly.
        type='SBResNetV1c',
        sb_stages=(True, True, True, False),
        sb_cfg=dict(num_bias=3, kernel_size=3, pooled_size=10)))
