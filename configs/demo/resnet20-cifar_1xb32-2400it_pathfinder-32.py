# Plain twin of sb-resnet20-cifar_1xb32-2400it_pathfinder-32.py: the paper's
# CIFAR-style bottleneck ResNet (3x3 stem, 3 stages of 16/32/64 planes, here
# 2 bottlenecks each: depth 20) with spatial bias switched off, on Pathfinder
# (32x32, connected vs disconnected; mmsb.data.pathfinder). The long-range
# task of tools/analysis/evidence.py. Difficulty and recipe were chosen on
# pilots of this plain model and of the shortcut probes only, before any SB
# run (docs/evidence.md, "Recipe").
_base_ = [
    './_base_/models/resnet20_cifar.py',
    './_base_/datasets/pathfinder_32.py',
    './_base_/schedules/schedule_2400it.py',
    'mmpretrain::_base_/default_runtime.py',
]
custom_imports = dict(
    imports=['mmsb', 'mmsb.data'], allow_failed_imports=False)

model = dict(head=dict(num_classes=2))

default_hooks = dict(
    logger=dict(interval=50),
    # one checkpoint, at the end of the 2400 iterations
    checkpoint=dict(by_epoch=False, interval=2400, max_keep_ckpts=1))
log_processor = dict(by_epoch=False, window_size=50)
randomness = dict(seed=0)
