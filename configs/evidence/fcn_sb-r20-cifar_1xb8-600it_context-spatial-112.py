# SB-ResNet-20: its plain twin with spatial bias in stages 1 and 2 at the
# paper's CIFAR defaults (3 bias maps pooled to 6x6, Tables 1 and 3).
_base_ = './fcn_r20-cifar_1xb8-600it_context-spatial-112.py'

model = dict(backbone=dict(sb_stages=(True, True, False)))
