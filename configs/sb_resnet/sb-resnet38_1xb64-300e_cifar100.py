# SB-ResNet-38 on CIFAR-100 (Go & Ryu, arXiv 2302.12505, section 4.1,
# Table 1 "s_1, s_2" row): spatial bias in stages 1 and 2, 3 bias maps pooled
# to 6x6 (Table 3's SB_6). Same recipe as the plain baseline beside it.
# For Table 1's other rows set sb_stages=(True, False, False) or
# (True, True, True). Random init.
_base_ = './resnet38_1xb64-300e_cifar100.py'

custom_imports = dict(imports=['mmsb'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        sb_stages=(True, True, False),
        sb_cfg=dict(num_bias=3, kernel_size=3, pooled_size=6)))
