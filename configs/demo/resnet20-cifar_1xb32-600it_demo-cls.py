# Image classifier with the paper's CIFAR-style bottleneck ResNet-20 (two
# bottlenecks per stage) on the embedded shapes set (CustomDataset folders,
# 32x32, 3 classes), with spatial bias switched off. Its SB twin,
# sb-resnet20-cifar_1xb32-600it_demo-cls.py, changes only that.
_base_ = [
    './_base_/models/resnet20_cifar.py',
    './_base_/datasets/demo_cls.py',
    './_base_/schedules/schedule_600it.py',
    'mmpretrain::_base_/default_runtime.py',
]
custom_imports = dict(
    imports=['mmsb', 'mmsb.data'], allow_failed_imports=False)

model = dict(head=dict(num_classes=3))

default_hooks = dict(
    logger=dict(interval=20),
    checkpoint=dict(by_epoch=False, interval=100, max_keep_ckpts=2))
log_processor = dict(by_epoch=False, window_size=20)
randomness = dict(seed=0)
