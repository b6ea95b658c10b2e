# Plain bottleneck ResNet-65 for CIFAR-100 (Go & Ryu, arXiv 2302.12505,
# Table 1); recipe as ResNet-38's.
_base_ = './resnet38_1xb64-300e_cifar100.py'

custom_imports = dict(imports=['mmsb'], allow_failed_imports=False)

model = dict(backbone=dict(depth=65))
