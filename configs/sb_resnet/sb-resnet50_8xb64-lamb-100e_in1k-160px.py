# SB-ResNet-50 on ImageNet-1k, the paper's LAMB recipe (Go & Ryu, arXiv
# 2302.12505, section 4.2; Tables 6 and 7): 160 px, batch 512, LAMB lr 8e-3,
# cosine, 100 epochs. Same recipe as the plain baseline beside it; only the
# backbone differs. Random init.
_base_ = './resnet50_8xb64-lamb-100e_in1k-160px.py'

custom_imports = dict(imports=['mmsb'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        type='SBResNet',
        # Stages 1-3, 3 bias maps pooled to 10x10 (Table 6's best).
        sb_stages=(True, True, True, False),
        sb_cfg=dict(num_bias=3, kernel_size=3, pooled_size=10)))
