# The paper's CIFAR-style bottleneck ResNet-20 (3x3 stem, 3 stages of
# 16/32/64 planes, two bottlenecks each: stage outputs 64, 128, 256) with
# spatial bias switched off, in mmpretrain's CIFAR classifier. A config sets
# the head's num_classes; its SB twin sets sb_stages.
_base_ = 'mmpretrain::_base_/models/resnet18_cifar.py'

model = dict(
    backbone=dict(
        _delete_=True,
        type='SBResNetCIFAR',
        depth=20,  # 9n+2 with n=2
        sb_stages=(False, False, False),
        init_cfg=None),
    head=dict(in_channels=256))
