# SB-ResNet-20 (CIFAR-style) on the embedded shapes set: its plain twin with
# spatial bias in stages 1 and 2 at the CIFAR defaults (3 bias maps pooled to
# 6x6, paper Tables 1 and 3). Everything else is the plain twin's.
_base_ = './resnet20-cifar_1xb32-600it_demo-cls.py'

model = dict(backbone=dict(sb_stages=(True, True, False)))
