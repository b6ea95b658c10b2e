# SB-ResNet-50 on ImageNet-1k, the paper's 224 px SGD recipe (Go & Ryu,
# arXiv 2302.12505, section 4.2; Tables 8-10). Same recipe as the plain
# baseline beside it; only the backbone differs. Random init.
_base_ = './resnet50_8xb32-90e_in1k.py'

custom_imports = dict(imports=['mmsb'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        type='SBResNet',
        # Stages 1-3, 3 bias maps pooled to 10x10 (Table 6's best).
        sb_stages=(True, True, True, False),
        sb_cfg=dict(num_bias=3, kernel_size=3, pooled_size=10)))
