# SB-ResNet-65 on CIFAR-100 (Go & Ryu, arXiv 2302.12505, Table 1
# "s_1, s_2" row); recipe and spatial bias as SB-ResNet-38's.
_base_ = './sb-resnet38_1xb64-300e_cifar100.py'

custom_imports = dict(imports=['mmsb'], allow_failed_imports=False)

model = dict(backbone=dict(depth=65))
