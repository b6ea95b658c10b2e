# SB-ResNet-20 (CIFAR-style) on Fashion-MNIST: its plain twin with spatial
# bias in stages 1 and 2 at the CIFAR defaults (3 bias maps pooled to 6x6,
# paper Tables 1 and 3). Everything else, the recipe included, is the plain
# twin's, fixed before any SB run.
_base_ = './resnet20-cifar_1xb128-600it_fashion-mnist.py'

model = dict(backbone=dict(sb_stages=(True, True, False)))
