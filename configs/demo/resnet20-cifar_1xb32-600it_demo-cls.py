# Plain twin of sb-resnet20-cifar_1xb32-600it_demo-cls.py: the same CIFAR-style
# bottleneck ResNet-20 with spatial bias switched off.
_base_ = './sb-resnet20-cifar_1xb32-600it_demo-cls.py'

model = dict(backbone=dict(sb_stages=(False, False, False)))
